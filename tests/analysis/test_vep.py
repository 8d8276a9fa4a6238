"""evo2kit-vep (evo2kit.analysis.vep) against bad input: its output columns never replace the
input's, its resumable parts are keyed by everything that changes their numbers and checked
before use, a NaN is never a score, and what cannot be written is said before anything is scored
(issue 30). The reader, the windows and resumption are tested in tests/data/test_variants.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from evo2kit import load_model
from evo2kit.analysis import prefix, vep
from evo2kit.checkpoints import rehearsal
from evo2kit.checkpoints.official import save_pretrained
from evo2kit.cli import DataError
from evo2kit.data.variants import Genome, read_variants

W = 40
rng = np.random.default_rng(11)
CHR1 = "".join(rng.choice(list("ACGT"), 240))


@pytest.fixture
def fasta(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "genome.fa"
    path.write_text(">chr1\n" + "\n".join(CHR1[i:i + 60] for i in range(0, len(CHR1), 60)) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny():
    return load_model(device="cpu")


def other(base: str) -> str:
    return next(b for b in "ACGT" if b != base)


def vcf(path: Path, positions, info: str = ".", header: str = "") -> Path:
    rows = [f"chr1\t{p}\t.\t{CHR1[p - 1]}\t{other(CHR1[p - 1])}\t.\t.\t{info}\n" for p in positions]
    path.write_text("##fileformat=VCFv4.2\n" + header + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                    + "".join(rows))
    return path


def test_computed_columns_never_replace_input_ones(fasta, tmp_path, tiny, capsys):
    header = "".join(f'##INFO=<ID={k},Number=1,Type=Float,Description="x">\n' for k in ("delta", "scored"))
    path = vcf(tmp_path / "v.vcf", [50, 90], "delta=5;scored=0", header)
    table = vep.score_variants(tiny, read_variants(path), Genome(fasta), W)
    assert table["INFO/delta"].tolist() == [5.0, 5.0] and table["INFO/scored"].tolist() == [0.0, 0.0]
    assert table["scored"].all() and (table["delta"] != 5).all()
    want = np.subtract(*tiny.score_sequences([CHR1[29:49] + other(CHR1[49]) + CHR1[50:69], CHR1[29:69]]))
    assert table.loc[0, "delta"] == pytest.approx(want, abs=1e-6)
    assert table.attrs["renamed"] == {"delta": "INFO/delta", "scored": "INFO/scored"}

    mine = read_variants(path).rename(columns={"INFO/delta": "delta", "INFO/scored": "l2:mine"})
    with pytest.raises(DataError, match=r"the variants already have column\(s\) \['delta', 'l2:mine'\], which "
                                        "score_variants writes: rename them"):
        vep.score_variants(tiny, mine, Genome(fasta), W)

    out = tmp_path / "o.tsv"
    assert vep.main(["--vcf", str(path), "--fasta", str(fasta), "--window", str(W), "--out", str(out)]) == 0
    assert "input column(s) 'delta' kept as 'INFO/delta', 'scored' kept as 'INFO/scored'" in capsys.readouterr().err
    written = pd.read_csv(out, sep="\t")
    assert written["INFO/delta"].tolist() == [5.0, 5.0] and written["scored"].all()


def test_parts_are_keyed_by_the_fp8_mode(fasta, tmp_path):
    yml, pt = rehearsal.write_checkpoint(tmp_path / "ckpt", parts=1)
    with pytest.warns(UserWarning, match="FP8 OFF"):
        off = load_model(yml, local_path=pt, device="cpu", fp8="off")
    fp8 = load_model(yml, local_path=pt, device="cpu", fp8="emulate")
    df, genome, work = read_variants(vcf(tmp_path / "v.vcf", [50, 90, 130])), Genome(fasta), tmp_path / "work"
    first = vep.score_variants(off, df, genome, W, work=work)
    with prefix.counting_tokens(fp8) as seen:
        second = vep.score_variants(fp8, df, genome, W, work=work)
    assert seen["tokens"] > 0, "the FP8 run computes its own parts, not the plain run's"
    np.testing.assert_array_equal(second["delta"], vep.score_variants(fp8, df, genome, W)["delta"])
    assert not np.array_equal(first["delta"], second["delta"])
    assert off.digest() == fp8.digest() and off.fp8_state() is None and fp8.fp8_state().startswith("emulate:")
    stores = {vep.score_variants(m, df, genome, W, layers=["blocks.0.mlp.l3"], work=work).attrs["store"]
              for m in (off, fp8)}
    assert len(stores) == 2, "the embedding stores too"


def test_parts_are_keyed_by_the_weights_the_dtype_and_the_strands(fasta, tmp_path, tiny):
    """The rest of issue 30's item 4 (the window, batch size and variant set: test_zero_shot's cache
    test): a work folder holding the trained model's float32 '+' parts gives none of them to random
    weights, to bfloat16 or to the '-' strand. (These were keyed before the issue; the guard stays.)"""
    df, genome, work = read_variants(vcf(tmp_path / "v.vcf", [50, 90])), Genome(fasta), tmp_path / "work"
    vep.score_variants(tiny, df, genome, W, work=work)
    for model, strands in [(load_model("evo2kit-tiny", random_weights=True, device="cpu"), "+"),
                           (load_model(device="cpu", dtype="bfloat16"), "+"), (tiny, "-")]:
        with prefix.counting_tokens(model) as seen:
            got = vep.score_variants(model, df, genome, W, strands, work=work)
        assert seen["tokens"] > 0, (model.digest()[:8], next(model.model.parameters()).dtype, strands)
        np.testing.assert_array_equal(got["delta"], vep.score_variants(model, df, genome, W, strands)["delta"])


def test_a_damaged_part_is_computed_again(fasta, tmp_path, tiny):
    df, genome, work = read_variants(vcf(tmp_path / "v.vcf", [50, 90, 130, 170])), Genome(fasta), tmp_path / "work"
    whole = vep.score_variants(tiny, df, genome, W, part_size=2, work=work)
    parts = sorted(work.glob("deltas-*.npy"))
    assert len(parts) == 2
    np.save(parts[0], np.zeros(2))  # a part altered in place: its values no longer match its name's checksum
    parts[1].write_bytes(parts[1].read_bytes()[:40])  # and a truncated one
    with pytest.warns(UserWarning, match=r"deltas-.*\.npy is damaged \(its values do not match the checksum in its "
                                         r"name\): computing it again"):
        again = vep.score_variants(tiny, df, genome, W, part_size=2, work=work)
    pd.testing.assert_frame_equal(again, whole)
    assert (again["delta"] != 0).all()


def test_a_nan_score_is_never_counted_as_scored(fasta, tmp_path, capsys):
    broken = load_model(device="cpu")
    weights = broken.model.blocks[1].mlp.l1.weight
    with torch.no_grad():
        weights[0, 0] = 3e38  # finite, as a flipped exponent bit leaves it, and enough to overflow
    path = vcf(tmp_path / "v.vcf", [50, 90])
    table = vep.score_variants(broken, read_variants(path), Genome(fasta), W)
    assert table["delta"].isna().all() and not table["scored"].any()
    assert table["note"].eq(vep.NOT_FINITE).all()

    save_pretrained(broken.model, tmp_path / "w", "evo2kit-tiny")
    out = tmp_path / "o.tsv"
    assert vep.main(["--vcf", str(path), "--fasta", str(fasta), "--window", str(W), "--out", str(out),
                     "--weights", str(tmp_path / "w" / "evo2kit-tiny.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "2 variants from 2 records, 0 scored, 2 not scored (see 'note')" in err
    assert "2 score(s) not finite (NaN): are the model's weights damaged?" in err
    written = pd.read_csv(out, sep="\t")
    assert not written["scored"].any() and written["window_start"].tolist() == [30, 70]
    assert (tmp_path / "o.tsv").read_text().splitlines()[1].split("\t")[10] == "30", "whole numbers, not 30.0"


def test_integer_columns_stay_integers_when_a_row_is_unscored(fasta, tmp_path, tiny):
    path = tmp_path / "v.vcf"
    path.write_text("##fileformat=VCFv4.2\n##INFO=<ID=DP,Number=1,Type=Integer,Description=\"depth\">\n"
                    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                    f"chr1\t50\t.\t{CHR1[49]}\t{other(CHR1[49])}\t.\t.\tDP=7\n"
                    f"chr1\t90\t.\t{CHR1[89]}\t<DEL>\t.\t.\t.\n")
    out = tmp_path / "o.tsv"
    vep.write_table(vep.score_variants(tiny, read_variants(path), Genome(fasta), W), out)
    rows = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False).to_dict("records")
    assert [(r["DP"], r["window_start"], r["window_length"], r["scored"]) for r in rows] == [
        ("7", "30", "40", "True"), ("", "", "", "False")], "7 and 30, not 7.0 and 30.0"


def exit_status(argv) -> int:
    try:
        return vep.main(argv)
    except SystemExit as e:
        return e.code


def test_what_cannot_be_written_is_said_before_scoring(fasta, tmp_path, capsys):
    path = vcf(tmp_path / "v.vcf", [50])
    base = ["--vcf", str(path), "--fasta", str(fasta), "--window", str(W)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is loaded nor scored before the refusal
        cases = [(["--out", "/proc/evo2kit/o.tsv"], "--out /proc/evo2kit/o.tsv: /proc/evo2kit does not exist"),
                 (["--out", "/proc/o.tsv"], "--out /proc/o.tsv: cannot write into /proc ("),
                 (["--out", f"{path}/o.tsv"], f"--out {path}/o.tsv: {path} is a file, not a folder: write the output "
                                              "into an existing folder"),
                 (["--out", str(tmp_path / "o.tsv"), "--work", f"{path}/parts"],
                  f"--work {path}/parts: cannot make this folder")]
        for extra, text in cases:
            assert exit_status([*base, *extra]) == 64, extra
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith(f"evo2kit-vep: error: {text}"), err
    assert not (tmp_path / "o.tsv").exists()


def test_a_table_on_another_sheet_is_read_with_sheet(fasta, tmp_path, capsys):
    book = tmp_path / "book.xlsx"
    with pd.ExcelWriter(book) as w:
        pd.DataFrame({"about": ["variants on the next sheet"]}).to_excel(w, sheet_name="readme", index=False)
        pd.DataFrame({"chrom": ["chr1"], "pos": [50], "ref": [CHR1[49]], "alt": [other(CHR1[49])]}).to_excel(
            w, sheet_name="calls", index=False)
    base = ["--table", str(book), "--fasta", str(fasta), "--window", str(W), "--out", str(tmp_path / "o.tsv")]
    assert exit_status(base) == 65
    assert "the workbook's other sheets are ['calls']: choose one with --sheet" in capsys.readouterr().err
    assert exit_status([*base, "--sheet", "calls"]) == 0
    assert pd.read_csv(tmp_path / "o.tsv", sep="\t")["scored"].tolist() == [True]
