"""Tests for evo2kit.analysis.embeddings and evo2kit.analysis.store on a small random model (CPU, a few
seconds each, except torchrun)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from support import sigkill_when

from evo2kit import load_model
from evo2kit.analysis import embeddings, store
from evo2kit.analysis.embed_cli import main
from evo2kit.analysis.embeddings import extract, make_plan, probe_features, store_name, variant_features
from evo2kit.analysis.store import StoreBusyError, StoreError, StoreLock, verify
from evo2kit.data.brca1 import brca1_windows, load_brca1

ROOT = Path(__file__).resolve().parents[2]
CFG = dict(model_name="embed-test", hidden_size=32, num_layers=4, hcs_layer_idxs=[0], hcm_layer_idxs=[1],
           hcl_layer_idxs=[2], attn_layer_idxs=[3], num_attention_heads=4, inner_mlp_size=64, state_size=8,
           hcs_filter_groups=16, hcm_filter_groups=16, max_seqlen=1024)
LAYERS = ["blocks.0.mlp.l3", "blocks.1.mlp.l3", "blocks.2.pre_norm", "blocks.3.mlp.l3"]


def assert_close(got, want):
    """Equal to float32 rounding, relative to the size of ``want`` (random layers can be small)."""
    scale = float(np.abs(want).max())
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


@pytest.fixture(scope="module")
def model():
    return load_model(CFG, device="cpu")


def random_seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), n)) for n in lengths]


_ALONE: dict = {}


def alone(model, seq, layer) -> np.ndarray:
    """(L, d): one sequence, batch 1, no padding, one forward hooking one layer (memoised)."""
    key = (id(model), seq, layer)
    if key not in _ALONE:
        ids = torch.tensor([model.tokenizer.tokenize(seq)])
        _, emb = model(ids, return_embeddings=True, layer_names=[layer])
        _ALONE[key] = emb[layer][0].float().numpy()
    return _ALONE[key]


def pool(tokens, pooling, p=None):
    if pooling == "mean":
        return tokens.mean(0)
    if pooling == "last":
        return tokens[-1]
    if pooling == "position":
        return tokens[p]
    k = int(pooling.split(":")[1])
    return tokens[max(0, p - k): p + k + 1].mean(0)


class SeqCounter:
    """How many times each sequence went through the model (rows seen by its embedding layer)."""

    def __init__(self, model):
        self.tokenizer, self.seen = model.tokenizer, {}
        self.handle = model.model.embedding_layer.register_forward_hook(self)

    def __call__(self, _m, inp, _out):
        for row in inp[0]:
            seq = self.tokenizer.detokenize(row)  # drops the padding
            self.seen[seq] = self.seen.get(seq, 0) + 1

    def count(self, seqs) -> int:
        """Forward rows spent on ``seqs`` (each distinct one counted as often as it was computed)."""
        return sum(self.seen.get(s, 0) for s in set(seqs))


@pytest.mark.parametrize("pooling", ["mean", "last", "position", "window:3", None])
def test_one_pass_equals_per_layer_loop(model, pooling):
    seqs = random_seqs([40, 75, 23, 60, 75, 31])
    positions = [5, 70, 0, 59, 12, 30] if pooling in ("position", "window:3") else None
    got = extract(model, seqs, LAYERS, pooling=pooling, batch_size=4, positions=positions)
    for layer in LAYERS:
        for i, s in enumerate(seqs):
            tokens = alone(model, s, layer)
            if pooling is None:
                assert_close(got[layer][i, :len(s)], tokens)
                assert not got[layer][i, len(s):].any(), "per-token rows must be zero beyond the length"
            else:
                assert_close(got[layer][i], pool(tokens, pooling, positions and positions[i]))


def test_masked_mean_equals_unpadded_mean(model):
    seqs = random_seqs([90, 17, 64, 33])
    plan = make_plan(seqs, [str(i) for i in range(4)], None, batch_size=4)
    assert len(plan.batches) == 1 and len({len(s) for s in seqs}) == 4, "one batch with padding expected"
    got = extract(model, seqs, LAYERS, batch_size=4)
    one_by_one = extract(model, seqs, LAYERS, batch_size=1)
    for layer in LAYERS:
        want = np.stack([alone(model, s, layer).mean(0) for s in seqs])
        assert_close(got[layer], want)
        assert_close(got[layer], one_by_one[layer])


def test_identical_sequences_are_computed_once(model):
    a, b, c = random_seqs([30, 45, 30], seed=1)
    seqs = [a, b, a, c, b, a]
    positions = [3, 7, 20, 3, 7, 3]
    counter = SeqCounter(model)
    try:
        got = extract(model, seqs, LAYERS, pooling="position", positions=positions, batch_size=2)
    finally:
        counter.handle.remove()
    assert [counter.seen.get(s) for s in (a, b, c)] == [1, 1, 1], "each distinct sequence computed once"
    for layer in LAYERS:
        for i, s in enumerate(seqs):
            assert_close(got[layer][i], alone(model, s, layer)[positions[i]])
    np.testing.assert_array_equal(got[LAYERS[0]][0], got[LAYERS[0]][5])


@pytest.mark.parametrize("pooling", ["mean", None])
def test_chunked_equals_unchunked(model, pooling):
    seqs = random_seqs([300, 170, 229], seed=2)
    whole = extract(model, seqs, LAYERS, pooling=pooling, batch_size=2)
    chunked = extract(model, seqs, LAYERS, pooling=pooling, batch_size=2, chunk_size=64)
    for layer in LAYERS:
        assert_close(chunked[layer], whole[layer])


def subprocess_env(threads: int) -> dict[str, str]:
    """This environment for a child python: evo2kit importable from this checkout, ``threads``
    torch threads (float results can depend on the count), and no inherited torch.distributed
    variables (RANK, MASTER_PORT, ...) that would make a child join another job."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
           and not k.startswith("TORCHELASTIC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def store_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if not p.name.startswith(".")}


SLOW_RUN = textwrap.dedent("""
    import json, sys, time
    from evo2kit import load_model
    from evo2kit.analysis.embeddings import extract
    cfg, seqs, layers, out = json.load(open(sys.argv[1]))
    model = load_model(cfg, device="cpu")
    forward = model.model.forward
    def slow_forward(*args, **kwargs):  # a slow model, so that the kill lands mid-run
        time.sleep(0.4)
        return forward(*args, **kwargs)
    model.model.forward = slow_forward
    extract(model, seqs, layers, pooling="mean", batch_size=1, out=out)
""")


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_store(model, tmp_path):
    seqs = random_seqs([50, 41, 62, 37, 55, 48, 59, 44, 66, 39], seed=3)
    reference = tmp_path / "reference"
    extract(model, seqs, LAYERS, batch_size=1, out=reference)

    killed = tmp_path / "killed"
    args = tmp_path / "args.json"
    args.write_text(json.dumps([CFG, seqs, LAYERS, str(killed)]))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(args)], cwd=ROOT,
                            env=subprocess_env(torch.get_num_threads()))
    manifest = killed / "manifest.json"
    sigkill_when(proc, lambda: manifest.is_file() and len(json.loads(manifest.read_text())["batches_done"]) >= 3, 60)
    killed_manifest = json.loads(manifest.read_text())
    done = killed_manifest["batches_done"]
    assert 3 <= len(done) < len(seqs), f"killed after {len(done)} of {len(seqs)} batches"
    assert killed_manifest["rows_done"] == len(done) and not killed_manifest["complete"]

    plan = make_plan(seqs, seqs, None, batch_size=1)  # scribble over every unfinished row
    unfinished = [i for b in range(len(plan.batches)) if b not in done for u in plan.batches[b] for i in plan.rows[u]]
    for layer in LAYERS:
        arr = np.load(killed / f"{layer}.npy", mmap_mode="r+")
        arr[unfinished] = np.nan
        arr.flush()
        del arr

    counter = SeqCounter(model)
    try:
        extract(model, seqs, LAYERS, batch_size=1, out=killed)
    finally:
        counter.handle.remove()
    assert counter.count(seqs) == len(seqs) - len(done), "the rerun must compute only the unfinished batches"
    assert store_files(killed) == store_files(reference)


def test_store_made_by_another_call_is_refused(model, tmp_path):
    seqs = random_seqs([20, 30, 25], seed=4)
    out = tmp_path / "store"
    extract(model, seqs, LAYERS, out=out)
    before = store_files(out)
    other_model = load_model(dict(CFG, model_name="another"), device="cpu")
    perturbed = load_model(CFG, device="cpu")
    with torch.no_grad():
        perturbed.model.embedding_layer.weight[0, 0] += 1
    for field, call in [
        ("layers", lambda: extract(model, seqs, LAYERS[:2], out=out)),
        ("pooling", lambda: extract(model, seqs, LAYERS, pooling="last", out=out)),
        ("model", lambda: extract(other_model, seqs, LAYERS, out=out)),
        ("weights_sha256", lambda: extract(perturbed, seqs, LAYERS, out=out)),
        ("sequences_sha256", lambda: extract(model, seqs[::-1], LAYERS, out=out)),
        ("dtype", lambda: extract(model, seqs, LAYERS, out=out, dtype="float16")),
    ]:
        with pytest.raises(ValueError, match=f"differing: {field} "):
            call()
    assert store_files(out) == before, "a refused call must leave the store untouched"


def test_invalid_character_names_sequence_and_position(model, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"'X' at position 2 in sequence '#1'"):
        extract(model, ["ACGT", "ACXT"], LAYERS)
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">good\nACGTACGT\n>chr_bad some description\nACGTAC\nGT-A\n")
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(CFG))
    args = ["--model", str(tmp_path / "cfg.yml"), "--fasta", str(fasta), "--layers", "all",
            "--out", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"'-' at position 8 in sequence 'chr_bad'"):
        main([*args, "--debug"])
    assert not (tmp_path / "out").exists(), "nothing may be written before the input is checked"
    capsys.readouterr()
    assert main(args) == 64
    err = capsys.readouterr().err
    assert err.startswith("evo2kit-embed: error: invalid character '-' at position 8 in sequence 'chr_bad'")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path):
    seqs = random_seqs([40, 55, 23, 61, 40, 37, 50, 29, 44], seed=5)
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(CFG))
    args = ["--model", str(tmp_path / "cfg.yml"), "--fasta", str(fasta), "--layers", ",".join(LAYERS),
            "--pooling", "window:4", "--position", "20", "--batch-size", "2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process below: bitwise equal results
    try:
        main([*args, "--out", str(tmp_path / "one")])
    finally:
        torch.set_num_threads(threads)
    # --standalone: the rendezvous takes a free port, so parallel test runs cannot collide
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "evo2kit.analysis.embed_cli", *args, "--out", str(tmp_path / "two")],
                         cwd=ROOT, env=subprocess_env(1), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    for rank, share in [(0, "3/3"), (1, "2/2")]:  # 5 batches of 2: each rank did its own share only
        assert re.search(rf"rank {rank}: 100%.*\| {share} ", two.stderr), two.stderr[-3000:]
    assert store_files(tmp_path / "two") == store_files(tmp_path / "one")
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows_done"] == len(seqs)


@pytest.mark.slow
def test_cli_brca1_windows(model, real_dir, tmp_path, capsys):
    """``--brca1 --window N``: reference rows then variant rows, at the variant position."""
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(CFG))
    main(["--model", str(tmp_path / "cfg.yml"), "--brca1", "--window", "64", "--limit", "6",
          "--layers", ",".join(LAYERS[1:3]), "--pooling", "position", "--out", str(tmp_path / "out")])
    assert "embed: 100%" in capsys.readouterr().err, "no progress bar"
    vw = brca1_windows(load_brca1().head(6), 64)  # from $EVO2KIT_DATA_DIR, which real_dir checked
    assert len(vw.ref_seqs) < 6, "the first BRCA1 variants share reference windows"
    for layer in LAYERS[1:3]:
        stored = np.load(tmp_path / "out" / f"{layer}.npy")
        assert stored.shape == (12, CFG["hidden_size"])
        for i, (j, p) in enumerate(zip(vw.ref_index, vw.var_pos_in_window)):
            assert_close(stored[i], alone(model, vw.ref_seqs[j], layer)[p])
            assert_close(stored[6 + i], alone(model, vw.var_seqs[i], layer)[p])


@pytest.mark.slow
def test_variant_features_equal_naive(model):
    region = random_seqs([400], seed=6)[0]
    snvs = [(120, 0), (121, 1), (200, 2), (120, 2), (300, 0)]  # (0-based offset, which other base)
    df = pd.DataFrame({"pos": [p + 1 for p, _ in snvs], "ref": [region[p] for p, _ in snvs],
                       "alt": [[b for b in "ACGT" if b != region[p]][k] for p, k in snvs]})
    vw = brca1_windows(df, window=64, region=region, region_start=1)
    assert len(vw.ref_seqs) < len(vw.var_seqs), "fixture must share reference windows"
    for pooling in ["position", "window:2", "mean"]:
        counter = SeqCounter(model)
        try:
            got = variant_features(model, vw, LAYERS, pooling=pooling)
        finally:
            counter.handle.remove()
        assert set(counter.seen.values()) == {1} and counter.count(vw.ref_seqs + vw.var_seqs) == len(vw.ref_seqs) + len(
            vw.var_seqs), "each reference window and variant must be computed exactly once"
        for layer in LAYERS:
            for i, (j, p) in enumerate(zip(vw.ref_index, vw.var_pos_in_window)):
                ref = pool(alone(model, vw.ref_seqs[j], layer), pooling, p)
                var = pool(alone(model, vw.var_seqs[i], layer), pooling, p)
                assert_close(got[layer]["ref"][i], ref)
                assert_close(got[layer]["var"][i], var)
            r, v = got[layer]["ref"], got[layer]["var"]
            np.testing.assert_array_equal(probe_features(r, v, "concat"), np.hstack([r, v]))
            np.testing.assert_allclose(probe_features(r, v, "diff"), v - r)


def test_store_name_follows_every_input_that_changes_the_content(model):
    windows = (["ACGTACGTAC", "TTGACCAGTA"], ["ACGAACGTAC", "TTGACGAGTA", "ACGTCCGTAC"], np.array([0, 1, 0]))
    layers = ["blocks.0.mlp.l3"]
    name = store_name(model, windows, layers, "mean", 8)
    assert name == store_name(model, windows, layers, "mean", 8)
    assert name.startswith(f"{model.name}-") and "_w10_n3_mean_" in name
    other_seqs = (windows[0], ["ACGAACGTAC", "TTGACGAGTA", "ACGTCGGTAC"], windows[2])
    others = [store_name(model, other_seqs, layers, "mean", 8),
              store_name(model, windows, layers + ["blocks.1.mlp.l3"], "mean", 8),
              store_name(model, windows, layers, "last", 8), store_name(model, windows, layers, "mean", 4),
              store_name(model, (windows[0], windows[1], np.array([0, 1, 1])), layers, "mean", 8)]
    assert len({name, *others}) == 6
    with pytest.raises(ValueError, match="pooling"):
        store_name(model, windows, layers, "median", 8)


@pytest.mark.slow
def test_brca1_embeddings_one_store_per_setting(model, tmp_path, real_dir):
    """Notebooks 02 and 04's call: the same settings read the same store; another seed (another
    subset) or another layer list gets its own store instead of colliding with the first."""
    call = dict(window=64, n_variants=12, seed=0, layer_ids=[0, 2], batch_size=4, store_root=tmp_path, progress=False)
    first = embeddings.brca1_embeddings(model, **call)
    assert first.layers == ["blocks.0.mlp.l3", "blocks.2.mlp.l3"] and first.store.parent == tmp_path
    assert list(first.variants.index) == list(range(len(first.variants))) and len(first.is_lof) == len(first.variants)
    np.testing.assert_array_equal(first.is_lof, (first.variants["class"] == "LOF").to_numpy())
    want = variant_features(model, brca1_windows(first.variants, 64), first.layers, pooling="mean", batch_size=4)
    for layer in first.layers:
        assert_close(first.features[layer]["var"], want[layer]["var"])
    again = embeddings.brca1_embeddings(model, **call)
    assert again.store == first.store
    others = [embeddings.brca1_embeddings(model, **(call | change)).store
              for change in ({"seed": 1}, {"layer_ids": [0, 3]}, {"pooling": "last"})]
    assert len({first.store, *others}) == 4 and all(s.is_dir() for s in others)


@pytest.mark.parametrize("layer_ids", [5, [0, 4], [1.0], "0,2"])
def test_brca1_embeddings_refuses_layer_ids_that_are_not_block_indices(model, tmp_path, layer_ids):
    """issue 30: ``--set layer_ids=5`` reached notebook 02 and ended in "'int' object is not
    iterable"; now a sentence naming the parameter, said before any data is read."""
    with pytest.raises(ValueError, match=re.escape(f"layer_ids must be a list of block indices in [0, 4) (e.g. "
                                                   f"[2, 5]) or None for every block, got {layer_ids!r}")):
        embeddings.brca1_embeddings(model, window=64, layer_ids=layer_ids, store_root=tmp_path, progress=False)


# --------------------------------------------------------------------------- one writer, faults, damage

def fork_child(work) -> int:
    """Run ``work()`` in a forked child (on one thread: an OpenMP pool does not survive a fork);
    returns its pid. The child never returns into pytest: it ends with ``os._exit``."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            torch.set_num_threads(1)
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


@pytest.fixture
def one_thread():
    """Parent and forked children compute on one thread, so their stores agree to the bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_second_writer_is_refused_until_the_holder_dies(model, tmp_path, capsys):
    seqs = random_seqs([30, 22, 41], seed=7)
    out = tmp_path / "store"
    out.mkdir()
    ready_r, ready_w = os.pipe()

    def hold_lock():  # a writer that stops mid-run while holding the store
        StoreLock(out).acquire()
        os.write(ready_w, b"1")
        time.sleep(60)

    pid = fork_child(hold_lock)
    try:
        assert os.read(ready_r, 1) == b"1"
        host = re.escape(socket.gethostname())
        holder = rf"{out} is being written by pid {pid} on {host}, started \d{{4}}-\d\d-\d\dT"
        with pytest.raises(StoreBusyError, match=holder):
            extract(model, seqs, LAYERS, out=out)
        fasta = tmp_path / "in.fa"
        fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
        (tmp_path / "cfg.yml").write_text(yaml.safe_dump(CFG))
        capsys.readouterr()
        assert main(["--model", str(tmp_path / "cfg.yml"), "--fasta", str(fasta), "--layers", LAYERS[0],
                     "--out", str(out)]) == 75
        assert f"is being written by pid {pid}" in capsys.readouterr().err
        assert not (out / "manifest.json").exists(), "a refused writer must not touch the store"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    got = extract(model, seqs, LAYERS, out=out)  # the holder died (kill -9): its lock went with it
    np.testing.assert_array_equal(got[LAYERS[0]], extract(model, seqs, LAYERS)[LAYERS[0]])
    assert verify(out)["complete"]


FAULT_SEQS = random_seqs([57, 23, 44, 61, 23, 38, 50, 29, 47, 33, 52, 41], seed=8)
FAULT_CALL = dict(pooling=None, batch_size=2, chunk_size=16)  # several forwards per batch: rows half written


def die_at(model, event: str, n: int) -> None:
    """In a forked child: SIGKILL this process at the n-th ``event``: 'forward' (before a model
    forward, the batch's rows zeroed or half written), 'dump' (half-way through writing a manifest's
    temporary file) or 'replace' (the temporary manifest written, before its rename)."""
    calls = {"n": 0}

    def tick():
        calls["n"] += 1
        return calls["n"] == n

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if event == "forward":
        model.model.register_forward_pre_hook(lambda *_: die() if tick() else None)
    elif event == "dump":
        dump = json.dump

        def half_dump(obj, f, **kw):
            if tick():
                text = json.dumps(obj, **kw)
                f.write(text[: len(text) // 2])
                f.flush()
                die()
            dump(obj, f, **kw)
        store.json.dump = half_dump
    else:
        replace = os.replace
        store.os.replace = lambda a, b: die() if tick() else replace(a, b)


def test_resume_after_sigkill_at_random_points_equals_uninterrupted(model, tmp_path, one_thread):
    """24 extractions killed (SIGKILL) at random forwards and manifest writes, each resumed: every
    store equals the uninterrupted one byte for byte and verifies."""
    reference = tmp_path / "reference"
    forwards = {"n": 0}
    handle = model.model.register_forward_pre_hook(lambda *_: forwards.__setitem__("n", forwards["n"] + 1))
    try:
        extract(model, FAULT_SEQS, LAYERS, out=reference, **FAULT_CALL)
    finally:
        handle.remove()
    manifest_writes = json.loads((reference / "manifest.json").read_text())["n_batches"] + 1  # creation + per batch
    counts = {"forward": forwards["n"], "dump": manifest_writes, "replace": manifest_writes}
    rng = np.random.default_rng(14)
    points = [(event, int(rng.integers(1, counts[event] + 1))) for event in counts for _ in range(8)]
    for i, (event, n) in enumerate(points):
        out = tmp_path / f"killed{i}"
        pid = fork_child(lambda: (die_at(model, event, n), extract(model, FAULT_SEQS, LAYERS, out=out, **FAULT_CALL)))
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{event} #{n}: not killed"
        extract(model, FAULT_SEQS, LAYERS, out=out, **FAULT_CALL)
        assert store_files(out) == store_files(reference), f"killed at {event} #{n}: the resumed store differs"
        assert not list(out.glob(".*.tmp")), "a cut-short manifest write must be cleaned up"
        verify(out)


def test_damaged_rows_are_found_by_verify_and_recomputed(model, tmp_path, capsys):
    seqs = random_seqs([40, 33, 51, 28, 45], seed=9)
    out = tmp_path / "store"
    extract(model, seqs, LAYERS, batch_size=2, out=out)
    reference = store_files(out)
    plan = make_plan(seqs, seqs, None, batch_size=2)
    rows = sorted(i for u in plan.batches[1] for i in plan.rows[u])
    arr = np.load(out / f"{LAYERS[2]}.npy", mmap_mode="r+")
    arr[rows[0], 3] = 0  # what a second writer zeroing its batch does to a finished store
    arr.flush()
    del arr
    damaged = rf"1 batch\(es\) \[1\] \(rows {re.escape(str(rows))}\) no longer match their checksums\. Rerun the same"
    with pytest.raises(StoreError, match=damaged):
        verify(out)
    capsys.readouterr()
    assert main(["--verify", str(out)]) == 65
    assert "no longer match their checksums" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=r"1 finished batch\(es\) \[1\] no longer match"):
        extract(model, seqs, LAYERS, batch_size=2, out=out)
    assert store_files(out) == reference
    assert main(["--verify", str(out)]) == 0


@pytest.mark.parametrize("damage", ["manifest.json", "blocks.1.mlp.l3.npy", "manifest.json:list"])
def test_unreadable_store_file_is_named_with_the_way_out(model, tmp_path, damage):
    seqs = random_seqs([20, 31], seed=10)
    out = tmp_path / "store"
    extract(model, seqs, LAYERS, out=out)
    name, _, how = damage.partition(":")
    path = out / name
    path.write_text("[]") if how else path.write_bytes(path.read_bytes()[:70])  # truncated mid-file
    for call in (lambda: extract(model, seqs, LAYERS, out=out), lambda: verify(out)):
        with pytest.raises(StoreError, match=rf"{re.escape(str(path))} is unreadable \(.*\): the store is damaged\. "
                                             rf"Restore the file and rerun to resume, or delete {re.escape(str(out))} "
                                             "to start over"):
            call()


def test_cli_exit_status_for_missing_input_and_a_store_of_another_call(model, tmp_path, capsys):
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(CFG))
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nACGTACGTAA\n>b\nGGCATT\n")
    args = ["--model", str(tmp_path / "cfg.yml"), "--layers", LAYERS[0], "--out", str(tmp_path / "out")]
    for argv, status, message in [
        ([*args, "--fasta", str(tmp_path / "missing.fa")], 66, "No such file or directory"),
        (["--model", str(tmp_path / "no.yml"), "--fasta", str(fasta), *args[2:]], 66, "config file"),
        ([*args, "--fasta", str(fasta)], 0, "2 rows of 1 layer(s)"),
        ([*args, "--fasta", str(fasta), "--pooling", "last"], 65, "holds a store made by a different call; differing: "
                                                                  "pooling (store: 'mean', this call: 'last')"),
        ([*args, "--fasta", str(fasta), "--pooling", "median"], 64, "--pooling: pooling must be"),
        ([*args, "--fasta", str(fasta), "--layers", "blocks.99.mlp.l3"], 64, "no layer named 'blocks.99.mlp.l3'"),
        (["--fasta", str(fasta)], 64, "the following arguments are required to extract: --layers, --out"),
        (["--verify", str(tmp_path / "out")], 0, "complete, 1 batches (2 rows) match their checksums"),
        (["--verify", str(tmp_path / "nowhere")], 66, "no store at"),
        (["--verify", str(tmp_path)], 65, "manifest.json is unreadable"),
    ]:
        try:
            got = main(argv)
        except SystemExit as e:  # argparse's own errors
            got = e.code
        err = capsys.readouterr().err
        assert got == status and message in err, (argv, got, err)
        assert "Traceback" not in err
