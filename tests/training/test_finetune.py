"""Tests for evo2kit.training.finetune and the training pieces it shares with evo2kit.training.train, on
tiny random models (CPU, a few seconds in all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from support import sigkill_when

from evo2kit import Evo2Config, Evo2Model, StripedHyena2
from evo2kit.analysis.probes import Split
from evo2kit.cli import DataError
from evo2kit.model.tokenizer import CharLevelTokenizer
from evo2kit.training import finetune, stability, train

ROOT = Path(__file__).resolve().parents[2]
CFG = dict(model_name="finetune-test", hidden_size=16, num_layers=5, hcs_layer_idxs=[0], hcm_layer_idxs=[1],
           hcl_layer_idxs=[2, 4], attn_layer_idxs=[3], num_attention_heads=2, inner_mlp_size=32, state_size=4,
           hcs_filter_groups=8, hcm_filter_groups=8, max_seqlen=256)


def tiny_model(seed: int = 0) -> StripedHyena2:
    return StripedHyena2(Evo2Config.from_dict(CFG)).init_weights(seed)


def backward_once(model: StripedHyena2, seed: int = 0, length: int = 64) -> None:
    ids = torch.randint(0, 512, (2, length), generator=torch.Generator().manual_seed(seed))
    model.zero_grad(set_to_none=True)
    logits = model(ids[:, :-1])
    torch.nn.functional.cross_entropy(logits.reshape(-1, 512), ids[:, 1:].reshape(-1)).backward()


def by_module(model: StripedHyena2) -> dict[str, list[torch.nn.Parameter]]:
    """Each kind's parameters found through the module tree (not through names, as param_kind does)."""
    kinds = {k: [] for k in train.PARAM_KINDS}
    kinds["embedding"] += [model.embedding_layer.weight, *model.norm.parameters()]
    for i, block in enumerate(model.blocks):
        mlp = [*block.mlp.parameters(), *block.post_norm.parameters()]
        kinds["mlp"] += mlp
        kind = model.config.block_kind(i)
        modal = [block.filter.log_poles, block.filter.residues] if kind == "hcl" else []
        rest = [p for p in block.parameters() if all(p is not q for q in mlp + modal)]
        kinds["hcl_modal"] += modal
        kinds["hcl_other" if kind == "hcl" else kind] += rest
    return kinds


def total_norm(params) -> float:
    return float(torch.nn.utils.get_total_norm([p.grad for p in params]))


def test_kind_grad_norms_match_get_total_norm():
    model = tiny_model()
    backward_once(model)
    norms = train.kind_grad_norms(model, model.config)
    for kind, params in by_module(model).items():
        assert norms[kind] == pytest.approx(total_norm(params), rel=1e-5), kind
    assert norms["total"] == pytest.approx(total_norm(model.parameters()), rel=1e-5)
    assert sum(len(v) for v in by_module(model).values()) == len(list(model.parameters()))  # each counted once
    assert norms["hcl_modal"] > 0 and "head" not in norms


def test_param_kind_reads_wrapped_names():
    config = Evo2Config.from_dict(CFG)
    assert train.param_kind(config, "backbone.blocks.3.mlp.l1.lora_A.default.weight") == "mlp"
    assert train.param_kind(config, "backbone.blocks.2.filter.log_poles") == "hcl_modal"
    assert train.param_kind(config, "backbone.blocks.2.projections.base_layer.weight") == "hcl_other"
    assert train.param_kind(config, "backbone.blocks.3.inner_mha_cls.Wqkv.weight") == "attn"
    assert train.param_kind(config, "backbone.embedding_layer.weight") == "embedding"
    assert train.param_kind(config, "head.0.weight") is None


@pytest.mark.parametrize("mode", [None, "global", "modal"])
def test_clipping_groups_do_what_they_say(mode):
    model = tiny_model()
    backward_once(model)
    for p in model.parameters():  # norms far above clip_grad_norm_'s 1e-6 epsilon
        p.grad.mul_(1e4)
    modal = [p for n, p in model.named_parameters() if n.endswith(train.MODAL)]
    rest = [p for n, p in model.named_parameters() if not n.endswith(train.MODAL)]
    before = {id(p): p.grad.clone() for p in model.parameters()}
    n_modal, n_rest, n_all = total_norm(modal), total_norm(rest), total_norm(model.parameters())
    max_norm = 0.5 * min(n_modal, n_rest)  # both groups above it: each must be scaled
    returned = train.clip_gradients(model, max_norm, mode)
    assert returned == pytest.approx(n_all, rel=1e-5)  # the norm before clipping
    if mode is None:
        assert all(torch.equal(p.grad, before[id(p)]) for p in model.parameters())
        return
    groups = [list(model.parameters())] if mode == "global" else [modal, rest]
    for params in groups:
        assert total_norm(params) == pytest.approx(max_norm, rel=1e-4)
        factor = max_norm / total_norm([type("G", (), {"grad": before[id(p)]})() for p in params])
        for p in params:  # one factor per group: directions kept
            torch.testing.assert_close(p.grad, before[id(p)] * factor, rtol=1e-4, atol=1e-9)
    with pytest.raises(ValueError, match="clipping mode"):
        train.clip_gradients(model, 1.0, "per-layer")


def test_clamp_poles_keeps_them_inside_the_unit_circle():
    model = tiny_model()
    with torch.no_grad():
        model.blocks[2].filter.log_poles.fill_(0.3)
    train.clamp_poles(model)
    assert bool((model.blocks[2].filter.log_poles.detach() == torch.tensor(-1e-4)).all())
    assert bool((model.blocks[4].filter.log_poles.detach() < 0).all())  # inside already: left as it was


def test_clipping_before_backward_changes_nothing():
    ids = torch.randint(0, 512, (2, 65), generator=torch.Generator().manual_seed(1))
    table = stability.clip_order_check(tiny_model(), ids, max_norm=1e-3).set_index("order")
    assert table.iloc[1]["max |change| vs no clipping"] == 0.0
    assert table.iloc[1]["gradient norm seen by the optimiser"] == table.iloc[0]["gradient norm seen by the optimiser"]
    assert table.iloc[2]["gradient norm seen by the optimiser"] == pytest.approx(1e-3, rel=1e-4)


def toy_task(n: int = 24, length: int = 32, seed: int = 0) -> finetune.VariantTask:
    """Random windows with an SNV in the middle; label 1 where the variant base is G or C."""
    rng = np.random.default_rng(seed)
    tok = CharLevelTokenizer(512)
    refs = ["".join(rng.choice(list("ACGT"), length)) for _ in range(n // 2)]
    ref_index = np.repeat(np.arange(n // 2), 2)
    mid = length // 2
    vars_ = []
    for i in range(n):
        r = refs[ref_index[i]]
        alt = [b for b in "ACGT" if b != r[mid]][i % 3]
        vars_.append(r[:mid] + alt + r[mid + 1:])
    y = np.array([int(v[mid] in "GC") for v in vars_])
    split = Split(np.arange(0, 12), np.arange(12, 18), np.arange(18, 24))
    return finetune.VariantTask(pd.DataFrame({"pos": np.arange(n)}), y, tok.encode_batch(refs)[0],
                                tok.encode_batch(vars_)[0], ref_index, np.full(n, mid), split)


@pytest.mark.slow
def test_lora_leaves_base_weights_untouched_and_its_adapter_reloads(tmp_path):
    base = Evo2Model(tiny_model(), "finetune-test")
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    task = toy_task()
    clf = finetune.VariantClassifier(base, "blocks.3.mlp.l3", mode="lora", lora_r=2, pooling="window:2")
    targets = {n.split(".lora_A")[0] for n in clf.trainable() if ".lora_A." in n}
    assert targets == {f"backbone.blocks.{i}.{m}" for i in range(4) for m in (
        ["inner_mha_cls.Wqkv", "inner_mha_cls.out_proj"] if i == 3 else ["projections", "out_filter_dense"])
        + ["mlp.l1", "mlp.l2", "mlp.l3"]}  # every Linear of the blocks that run, none after
    finetune.fit(clf, task, finetune.FitConfig(epochs=2, batch_size=4, lr=1e-2, backbone_lr=1e-2, warmup=1))
    for k, v in base.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the model the classifier was built from
    for k, v in clf.backbone.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, before[k.replace(".base_layer", "")]), k  # and the classifier's base weights
    assert any(float(p.detach().abs().max()) > 0 for n, p in clf.trainable().items() if "lora_B" in n)  # LoRA did train

    path = finetune.save_adapter(clf, tmp_path / "adapter.safetensors", base)
    fresh = Evo2Model(tiny_model(), "finetune-test")
    again = finetune.load_adapter(fresh, path)
    rows = np.arange(24)
    np.testing.assert_array_equal(finetune.predict(again, task, rows), finetune.predict(clf, task, rows))
    with pytest.raises(ValueError, match="was trained on finetune-test"):
        finetune.load_adapter(Evo2Model(tiny_model(seed=1), "finetune-test"), path)


def test_an_adapter_is_refused_on_a_base_changed_in_place(tmp_path):
    from evo2kit import load_model

    base = load_model(device="cpu")  # the bundled model: its digest() is its weights file's
    clf = finetune.VariantClassifier(base, "blocks.1.mlp.l3", mode="frozen")
    finetune.fit(clf, toy_task(), finetune.FitConfig(epochs=1, batch_size=4))
    path = finetune.save_adapter(clf, tmp_path / "adapter.safetensors", base)
    assert finetune.load_adapter(load_model(device="cpu"), path).layer == "blocks.1.mlp.l3"
    before = finetune.base_digest(base)
    with torch.no_grad():
        base.model.blocks[0].mlp.l1.weight.data[0, 0] += 1.0  # changed in place, through .data
    assert base.digest() == load_model(device="cpu").digest(), "the file digest cannot see it"
    assert finetune.base_digest(base) != before, "nothing remembered goes stale"
    with pytest.raises(DataError, match=r"adapter.safetensors was trained on evo2kit-tiny \(tensors sha256 "
                                                 r"[0-9a-f]{12}\.\.\.\), not on this evo2kit-tiny, whose tensors "
                                                 r"\(sha256 [0-9a-f]{12}\.\.\.\) differ"):
        finetune.load_adapter(base, path)


def test_damaged_or_foreign_adapter_files_are_named(tmp_path):
    from safetensors.torch import save_file

    base = Evo2Model(tiny_model(), "finetune-test")
    clf = finetune.VariantClassifier(base, "blocks.1.mlp.l3", mode="frozen")
    path = finetune.save_adapter(clf, tmp_path / "adapter.safetensors", base)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=rf"^{cut} is not a complete safetensors file \(.*\): the adapter is "
                                                 "truncated or damaged; save it again$"):
        finetune.load_adapter(base, cut)
    bare = tmp_path / "bare.safetensors"
    save_file(clf.state_to_save(), str(bare), metadata={"format": finetune.ADAPTER_FORMAT, "mode": "frozen"})
    with pytest.raises(DataError, match=rf"^{bare}: the adapter's metadata lacks \['layer', 'pooling', "
                                                 r"'lora', 'base_model', 'base_sha256'\]: it was not written by "
                                                 "save_adapter"):
        finetune.load_adapter(base, bare)
    with pytest.raises(FileNotFoundError, match="no adapter file"):
        finetune.load_adapter(base, tmp_path / "none.safetensors")


SLOW_FIT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from test_finetune import finetune, Evo2Model, tiny_model, toy_task, FIT
    clf = finetune.VariantClassifier(Evo2Model(tiny_model(), "finetune-test"), "blocks.2.mlp.l3", mode="full")
    features = clf.features
    def slow_features(*args):  # a slow model, so that the kill lands mid-run
        time.sleep(0.2)
        return features(*args)
    clf.features = slow_features
    finetune.fit(clf, toy_task(), FIT, checkpoint=sys.argv[1])
""")
FIT = finetune.FitConfig(epochs=4, batch_size=4, lr=1e-2, backbone_lr=1e-3, warmup=2, checkpoint_minutes=0.0)


@pytest.mark.slow
def test_fit_resumes_after_sigkill_as_if_never_interrupted(tmp_path):
    task = toy_task()
    reference = finetune.VariantClassifier(Evo2Model(tiny_model(), "finetune-test"), "blocks.2.mlp.l3", mode="full")
    want = finetune.fit(reference, task, FIT)

    ckpt = tmp_path / "fit.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    here = [str(Path(__file__).parent), str(ROOT / "tests")]  # this module, and support.py it imports
    proc = subprocess.Popen([sys.executable, "-c", SLOW_FIT, str(ckpt), *here], cwd=ROOT, env=env)

    def progressed() -> bool:
        try:
            return torch.load(ckpt, weights_only=True)["progress"]["epoch"] >= 1
        except (OSError, RuntimeError, EOFError):
            return False

    sigkill_when(proc, progressed, 60)
    state = torch.load(ckpt, weights_only=True)["progress"]
    assert 1 <= state["epoch"] < FIT.epochs  # cut in the middle
    resumed = finetune.VariantClassifier(Evo2Model(tiny_model(), "finetune-test"), "blocks.2.mlp.l3", mode="full")
    got = finetune.fit(resumed, task, FIT, checkpoint=ckpt)
    assert got.best_epoch == want.best_epoch
    pd.testing.assert_frame_equal(got.log, want.log)
    for k, v in reference.state_to_save().items():
        torch.testing.assert_close(resumed.state_to_save()[k], v, rtol=0, atol=0, msg=k)
    assert json.dumps(list(got.epochs.val_auroc)) == json.dumps(list(want.epochs.val_auroc))
