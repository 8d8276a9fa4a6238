"""evo2kit.data.variants and evo2kit-vep: VCFs and FASTAs made here, every edge case of the reader,
equality with notebook 03's deltas on BRCA1, the command line's exit statuses and resumption."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import torch
from support import sigkill_when

from evo2kit import load_model
from evo2kit.analysis import prefix, store, vep, zero_shot
from evo2kit.data import variants
from evo2kit.data.brca1 import load_brca1
from evo2kit.data.variants import Genome, VariantError, read_variants, variant_windows

ROOT = Path(__file__).resolve().parents[2]
W = 40  # window (bp) of most tests

rng = np.random.default_rng(7)
CHR1 = "".join(rng.choice(list("ACGT"), 200))
CHR1 = CHR1[:60] + CHR1[60:80].lower() + CHR1[80:120] + "NNNNN" + CHR1[125:]  # soft-masked bases, then Ns
CHR2 = "".join(rng.choice(list("ACGT"), 30))  # shorter than the window
CHR3 = "".join(rng.choice(list("ACGT"), 100))  # a region: its index 0 is position 1001 of contig 3


@pytest.fixture
def fasta(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "genome.fa"
    lines = "\n".join(CHR1[i:i + 60] for i in range(0, len(CHR1), 60))  # an index needs lines of one length
    path.write_text(f">chr1 first\n{lines}\n>chr2\n{CHR2}\n>chr3:1001-1100 a region\n{CHR3}\n")
    return path


def vcf_text(rows: list[str], header: str = "") -> str:
    return ("##fileformat=VCFv4.2\n"
            '##INFO=<ID=AF,Number=A,Type=Float,Description="allele frequency">\n'
            '##INFO=<ID=CSQ,Number=1,Type=String,Description="consequence">\n' + header
            + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(r.replace(" ", "\t") + "\n" for r in rows))


def up(s: str) -> str:
    return s.upper()


def test_windows_for_every_kind_of_variant(fasta, tmp_path):
    g1 = up(CHR1)
    rows = [
        f"1 101 rs1 {g1[100]} {next(b for b in 'ACGT' if b != g1[100])},{'N'} . PASS AF=0.1,0.2;CSQ=missense",
        f"chr1 66 . {CHR1[65]} {'A' if g1[65] != 'A' else 'C'} . . .",  # lower-case base in the FASTA, chr naming
        f"1 90 . {g1[89]} {g1[89]}TTG . . .",  # insertion
        f"1 95 . {g1[94:99]} {g1[94]} . . .",  # deletion of 4 bases
        f"1 130 . {g1[129:131]} {'AA' if g1[129:131] != 'AA' else 'CC'} . . .",  # MNV
        f"chr2 12 . {CHR2[11]} {'G' if CHR2[11] != 'G' else 'T'} . . .",  # contig shorter than the window
        f"1 5 . {g1[4]} {'A' if g1[4] != 'A' else 'C'} . . .",  # window leaves the contig's start
        f"3 1050 . {CHR3[49]} {'A' if CHR3[49] != 'A' else 'C'} . . .",  # region record chr3:1001-1100
        f"1 150 . {g1[149]} <DEL>,* . . .",  # symbolic alleles: not scored
    ]
    path = tmp_path / "v.vcf"
    path.write_text(vcf_text(rows))
    df = read_variants(path)
    assert len(df) == 11 and df["record"].tolist() == [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert df.loc[:1, "AF"].tolist() == pytest.approx([0.1, 0.2]) and df.loc[0, "CSQ"] == "missense"
    cut = variant_windows(df, Genome(fasta), W)
    info, vw = cut.info, cut.windows
    assert info["scored"].tolist() == [True] * 9 + [False, False]
    assert all("not a sequence of bases" in n for n in info["note"][9:])
    seq = dict(zip(cut.rows, vw.var_seqs))
    ref = {i: vw.ref_seqs[j] for i, j in zip(cut.rows, vw.ref_index)}
    assert ref[0] == g1[80:120] and seq[0] == g1[80:100] + df.loc[0, "alt"] + g1[101:120]
    assert ref[1] == ref[0] and vw.ref_index[0] == vw.ref_index[1], "one reference window per position"
    assert ref[2] == g1[45:85] and "a" not in ref[2], "soft-masked bases are read upper-case"
    assert ref[3] == g1[69:109] and seq[3] == (g1[69:90] + "TTG" + g1[90:109])[:W], "insertion: tail trimmed"
    assert ref[4] == g1[74:114] and seq[4] == g1[74:95] + g1[99:118], "deletion: padded from the genome"
    assert seq[5] == g1[109:129] + df.loc[5, "alt"] + g1[131:149]
    assert "5 N in the reference window" in info.loc[5, "note"]
    assert ref[6] == CHR2 and len(seq[6]) == 30 and "window cut to 30 bp" in info.loc[6, "note"]
    assert ref[7] == g1[:24] and vw.var_pos_in_window[list(cut.rows).index(7)] == 4
    assert "window cut to 24 bp at the edge of chr1" in info.loc[7, "note"] and info.loc[7, "window_start"] == 1
    assert ref[8] == CHR3[29:69] and info.loc[8, "window_start"] == 1030 and info.loc[8, "fasta_record"] == \
        "chr3:1001-1100"


def test_deletion_at_the_contig_end_is_shorter_and_said(fasta, tmp_path):
    g1 = up(CHR1)
    path = tmp_path / "v.vcf"
    path.write_text(vcf_text([f"1 195 . {g1[194:199]} {g1[194]} . . ."]))
    cut = variant_windows(read_variants(path), Genome(fasta), W)
    assert cut.windows.ref_seqs == [g1[174:200]] and cut.windows.var_seqs == [g1[174:195] + g1[199:]]
    assert "variant window 4 bp shorter: chr1 ends" in cut.info.loc[0, "note"]


def test_missing_contig_outside_and_mismatch_are_listed_or_skipped(fasta, tmp_path):
    g1 = up(CHR1)
    wrong = next(b for b in "ACGT" if b != g1[9])
    path = tmp_path / "v.vcf"
    path.write_text(vcf_text([f"1 10 . {wrong} {two_alts(wrong)[0]} . . .", "22 10 . A G . . .", "22 11 . A G . . .",
                              "chr3 5 . A G . . .", f"1 20 . {g1[19]} A . . ."]))
    df, genome = read_variants(path), Genome(fasta)
    with pytest.raises(VariantError) as e:
        variant_windows(df, genome, W)
    msg = str(e.value)
    assert "contig(s) '22' (2 variant(s)) match no record of genome.fa" in msg and "it has 'chr1', 'chr2'" in msg
    assert "1 variant(s) lie outside the FASTA's records: record 4 (chr3:5)" in msg
    assert f"1 REF allele(s) differ from genome.fa (another genome build?): record 1 (1:10) expected {wrong!r} " \
           f"found {g1[9]!r}" in msg
    mismatches = variants.check_ref(df, genome)
    assert mismatches.to_dict("records") == [{"record": 1, "chrom": "1", "pos": 10, "expected": wrong,
                                              "found": g1[9]}]
    cut = variant_windows(df, genome, W, skip_bad=True)
    assert cut.info["scored"].tolist() == [False, False, False, False, g1[19] != "A"]
    assert cut.info.loc[0, "note"].startswith(f"REF {wrong!r} but the FASTA has")
    assert cut.info.loc[1, "note"] == "no FASTA record for contig '22': not scored"


def test_bgzip_with_and_without_index_and_plain_gzip(fasta, tmp_path):
    g1 = up(CHR1)
    rows = [f"1 {p} . {g1[p - 1]} {two_alts(g1[p - 1])} . . ." for p in (30, 60, 100)]
    plain = tmp_path / "v.vcf"
    plain.write_text(vcf_text(rows))
    want = read_variants(plain)
    indexed, bare = tmp_path / "i.vcf.gz", tmp_path / "b.vcf.gz"
    pysam.tabix_compress(str(plain), str(bare))
    shutil.copy(bare, indexed)
    pysam.tabix_index(str(indexed), preset="vcf")
    assert Path(f"{indexed}.tbi").is_file() and not Path(f"{bare}.tbi").exists()
    for path in (indexed, bare):
        pd.testing.assert_frame_equal(read_variants(path), want)
    gz = tmp_path / "g.vcf.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(variants.DataError, match="compressed with gzip, not bgzip"):
        read_variants(gz)
    # write_vcf: the same variants back, bgzipped with or without an index
    for name, index in [("w.vcf.gz", True), ("n.vcf.gz", False), ("p.vcf", False)]:
        out = variants.write_vcf(want.assign(note="a; b=c, d"), tmp_path / name, info=["note"], index=index)
        back = read_variants(out)
        pd.testing.assert_frame_equal(back[["chrom", "pos", "ref", "alt"]], want[["chrom", "pos", "ref", "alt"]])
        assert back["INFO/note"].eq("a; b=c, d").all()  # an INFO field named like an output column is kept aside
        assert Path(f"{out}.tbi").is_file() == index


def test_fasta_plain_bgzip_gzip_and_read_only_folder(fasta, tmp_path):
    bgz, gz = tmp_path / "b.fa.gz", tmp_path / "g.fa.gz"
    pysam.tabix_compress(str(fasta), str(bgz))
    gz.write_bytes(gzip.compress(fasta.read_bytes()))
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(fasta, ro / "genome.fa")
    ro.chmod(0o555)
    try:
        got = {p.name: [(r.name, r.contig, r.start, r.length) for r in Genome(p).records]
               for p in (fasta, bgz, gz, ro / "genome.fa")}
        assert not (ro / "genome.fa.fai").exists(), "a read-only folder gets no index: it goes to the cache"
    finally:
        ro.chmod(0o755)
    assert all(v == got["genome.fa"] for v in got.values()), got
    assert got["genome.fa"][2] == ("chr3:1001-1100", "chr3", 1001, 100)
    assert list((tmp_path / "cache" / "bgzf").glob("*g.fa.gz")), "gzip is copied once as bgzip into the cache"
    g = Genome(gz)
    assert g.fetch(g.records[0], 60, 70) == up(CHR1[60:70])


def test_tables_tsv_csv_xlsx(fasta, tmp_path):
    g1 = up(CHR1)
    frame = pd.DataFrame({"#CHROM": ["chr1", "1"], "Pos": [30, 60], "REF": [g1[29], g1[59].lower()],
                          "Alt": ["A,T" if g1[29] not in "AT" else "C,G", "N"], "gene": ["x", "y"]})
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    for name in ("t.tsv", "t.csv", "t.xlsx"):
        df = read_variants(tmp_path / name)
        assert df[["record", "allele", "chrom", "pos", "gene"]].values.tolist() == [
            [2, 1, "chr1", 30, "x"], [2, 2, "chr1", 30, "x"], [3, 1, "1", 60, "y"]], name
        assert df.loc[2, "ref"] == g1[59], "REF is upper-cased"
        assert variant_windows(df, Genome(fasta), W).info["scored"].all()
    (tmp_path / "bad.tsv").write_text("chrom\tposition\tref\talt\n1\t3\tA\tC\n")
    with pytest.raises(variants.DataError, match=r"no column\(s\) \['pos'\]"):
        read_variants(tmp_path / "bad.tsv")


@pytest.fixture(scope="module")
def tiny():
    return load_model(device="cpu")


def test_indel_deltas_are_the_scores_of_their_windows(fasta, tmp_path, tiny):
    g1 = up(CHR1)
    path = tmp_path / "v.vcf"
    path.write_text(vcf_text([f"1 90 . {g1[89]} {g1[89]}TTG . . .", f"1 95 . {g1[94:99]} {g1[94]} . . ."]))
    table = vep.score_variants(tiny, read_variants(path), Genome(fasta), W, strands="+-", batch_size=2)
    for i, (ref, var) in enumerate([(g1[69:109], (g1[69:90] + "TTG" + g1[90:109])[:W]),
                                    (g1[74:114], g1[74:95] + g1[99:118])]):
        plus = np.subtract(*tiny.score_sequences([var, ref]))
        minus = np.subtract(*tiny.score_sequences([zero_shot.reverse_complement_of(s) for s in (var, ref)]))
        assert table.loc[i, "delta+"] == pytest.approx(plus, abs=1e-6)
        assert table.loc[i, "delta-"] == pytest.approx(minus, abs=1e-6)
        assert table.loc[i, "delta"] == pytest.approx((plus + minus) / 2, abs=1e-6)


@pytest.mark.slow
def test_deltas_equal_notebook_03_on_brca1(real_dir, tmp_path, tiny):
    brca1 = load_brca1()
    few = brca1.iloc[list(range(0, 3893, 400))]  # 10 SNVs along the gene
    vcf = variants.write_vcf(few, tmp_path / "few.vcf.gz", info=["class"])
    got = vep.score_variants(tiny, read_variants(vcf), Genome("brca1_hg19_region"), 256, strands="+-")
    want = zero_shot.variant_deltas(tiny, few, 256, strands="+-").sort_values("pos")  # a VCF is sorted
    assert got[["pos", "ref", "alt"]].values.tolist() == want[["pos", "ref", "alt"]].values.tolist()
    for col in ("delta+", "delta-", "delta"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-6)


class Interrupted(Exception):
    pass


@contextmanager
def interrupted_when(model, done):
    """Inside the block, ``model``'s next forward raises Interrupted once ``done()`` is true."""
    def hook(_module, _args):
        if done():
            raise Interrupted

    handle = model.model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def two_alts(ref: str) -> str:
    return ",".join([b for b in "ACGT" if b != ref][:2])


def snv_vcf(path: Path, positions) -> Path:
    g1 = up(CHR1)
    path.write_text(vcf_text([f"1 {p} . {g1[p - 1]} {two_alts(g1[p - 1])} . . ." for p in positions]))
    return path


def test_an_interrupted_run_computes_only_the_missing_parts(fasta, tmp_path, tiny):
    df = read_variants(snv_vcf(tmp_path / "v.vcf", range(30, 190, 20)))  # 8 positions, 16 variants
    genome, work = Genome(fasta), tmp_path / "work"
    with prefix.counting_tokens(tiny) as every:
        whole = vep.score_variants(tiny, df, genome, W, part_size=4)  # four parts of 2 positions, alike in size
    parts = lambda: list(work.glob("deltas-*.npy"))  # noqa: E731
    with pytest.raises(Interrupted), interrupted_when(tiny, lambda: len(parts()) >= 2):
        vep.score_variants(tiny, df, genome, W, part_size=4, work=work)
    assert len(parts()) == 2
    with prefix.counting_tokens(tiny) as missing:
        table = vep.score_variants(tiny, df, genome, W, part_size=4, work=work)
    assert missing["tokens"] * 2 == every["tokens"], "only the two missing parts are computed"
    pd.testing.assert_frame_equal(table, whole)


SLOW_CLI = textwrap.dedent("""
    import sys, time
    from evo2kit.model import striped_hyena as model
    from evo2kit.analysis import vep
    forward = model.StripedHyena2.forward
    def slow(self, *args, **kwargs):  # a slow model, so that the kill lands mid-run
        time.sleep(0.2)
        return forward(self, *args, **kwargs)
    model.StripedHyena2.forward = slow
    sys.exit(vep.main(sys.argv[1:]))
""")


def child_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_cli_resumes_after_sigkill(fasta, tmp_path):
    vcf = snv_vcf(tmp_path / "v.vcf", range(30, 190, 10))  # 16 positions, 32 variants, parts of 2 positions
    args = ["--vcf", str(vcf), "--fasta", str(fasta), "--window", str(W), "--part-size", "4", "--strands", "+-"]
    assert vep.main([*args, "--out", str(tmp_path / "whole.tsv")]) == 0
    out = tmp_path / "killed.tsv"
    work = Path(f"{out}.parts")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args, "--out", str(out)], cwd=ROOT,
                            env=child_env(tmp_path), stderr=subprocess.DEVNULL)
    sigkill_when(proc, lambda: len(list(work.glob("deltas-*.npy"))) >= 4, 120)
    done = {p: p.stat().st_mtime_ns for p in work.glob("deltas-*.npy")}
    assert 4 <= len(done) < 16 and not out.exists()
    assert vep.main([*args, "--out", str(out)]) == 0
    assert len(list(work.glob("deltas-*.npy"))) == 16  # 8 parts x 2 strands
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "finished parts are not computed again"
    pd.testing.assert_frame_equal(pd.read_csv(out, sep="\t"), pd.read_csv(tmp_path / "whole.tsv", sep="\t"))


def exit_status(argv) -> int:
    """vep.main's return value, or the status of the SystemExit its argument parser raises."""
    try:
        return vep.main(argv)
    except SystemExit as e:
        return e.code


def test_cli_output_exit_statuses_and_one_line_errors(fasta, tmp_path, capsys):
    g1 = up(CHR1)
    vcf = snv_vcf(tmp_path / "v.vcf", [30, 60])
    base = ["--vcf", str(vcf), "--fasta", str(fasta), "--window", str(W)]
    assert vep.main([*base, "--out", str(tmp_path / "o.parquet"), "--layers", "blocks.2.mlp.l3,blocks.6.mlp.l3"]) == 0
    err = capsys.readouterr().err
    assert "score: 100%" in err and "4 variants from 2 records, 4 scored, 0 not scored" in err
    table = pd.read_parquet(tmp_path / "o.parquet")
    assert list(table.columns[:9]) == ["record", "allele", "chrom", "pos", "ref", "alt", "id", "qual", "filter"]
    assert {"delta+", "delta", "note", "l2:blocks.2.mlp.l3", "l2:blocks.6.mlp.l3", "store_row"} <= set(table.columns)
    assert table["store_row"].tolist() == [0, 1, 2, 3] and (table["l2:blocks.6.mlp.l3"] > 0).all()
    stores = list((tmp_path / "o.parquet.parts").glob("evo2kit-tiny-*"))
    assert len(stores) == 1 and store.verify(stores[0])["complete"]

    bad = tmp_path / "bad.vcf"
    bad.write_text(vcf_text([f"1 30 . {'A' if g1[29] != 'A' else 'C'} G . . ."]))
    broken = tmp_path / "broken.vcf"
    broken.write_text(vcf_text(["1 30 . A"]))
    cases = [
        (["--vcf", str(tmp_path / "none.vcf")], 66, "no variant file"),
        (["--vcf", str(vcf), "--fasta", str(tmp_path / "none.fa")], 66, "no FASTA file"),
        (["--vcf", str(bad)], 65, "1 REF allele(s) differ from genome.fa"),
        (["--vcf", str(broken)], 65, "record 1, the one after the header, cannot be parsed"),
        (["--table", str(vcf)], 65, "not a readable table (it looks like a VCF: read it as one, --vcf)"),
        (["--window", "41"], 64, "--window must be an even number"),
        (["--out", str(tmp_path / "o.xlsx")], 64, "the name must end in .tsv"),
        (["--strands", "x"], 64, "invalid choice"),
    ]
    for extra, code, text in cases:
        opts = dict(zip(base[::2], base[1::2])) | {"--out": str(tmp_path / "x.tsv")}
        if "--table" in extra:
            del opts["--vcf"]
        opts |= dict(zip(extra[::2], extra[1::2]))
        argv = [x for kv in opts.items() for x in kv]
        assert exit_status(argv) == code, (extra, capsys.readouterr().err)
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("evo2kit-vep: error: ") and text in err[-1], (extra, err)
        assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "x.tsv").exists()

    lock = store.StoreLock(Path(f"{tmp_path / 'busy.tsv'}.parts"))
    lock.path.parent.mkdir()
    lock.acquire()
    try:
        assert vep.main([*base, "--out", str(tmp_path / "busy.tsv")]) == 75
        assert "is being written by pid" in capsys.readouterr().err
    finally:
        lock.release()


def test_python_m_and_the_torchrun_split_equal_one_process(fasta, tmp_path):
    vcf = snv_vcf(tmp_path / "v.vcf", range(30, 190, 20))
    args = ["--vcf", str(vcf), "--fasta", str(fasta), "--window", str(W), "--part-size", "4"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each process below: bitwise equal results
    try:
        assert vep.main([*args, "--out", str(tmp_path / "one.tsv")]) == 0
    finally:
        torch.set_num_threads(threads)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "evo2kit.analysis.vep", *args, "--out", str(tmp_path / "two.tsv")],
                         cwd=ROOT, env=child_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 0: 100%" in two.stderr and "rank 1: 100%" in two.stderr
    assert (tmp_path / "two.tsv").read_text() == (tmp_path / "one.tsv").read_text()


# ----------------------------------------------------------------------------- bad input (issue 30)


def test_input_columns_never_take_a_variants_own_fields(fasta, tmp_path):
    g1 = up(CHR1)
    alt, other = two_alts(g1[29]).split(",")
    header = "".join(f'##INFO=<ID={k},Number=1,Type={t},Description="x">\n' for k, t in
                     [("alt", "String"), ("ref", "String"), ("chrom", "String"), ("record", "Integer"),
                      ("pos", "Integer"), ("note", "String"), ("delta", "Float"), ("n", "Integer")])
    path = tmp_path / "v.vcf"
    path.write_text(vcf_text([f"1 30 . {g1[29]} {alt} . . alt={other};ref=T;chrom=9;record=1;pos=3;note=x;delta=5;n=2",
                              f"1 60 . {g1[59]} {two_alts(g1[59])[0]} . . alt={other};record=1;delta=5"], header))
    df = read_variants(path)
    assert df[["record", "chrom", "pos", "ref", "alt"]].values.tolist() == [
        [1, "1", 30, g1[29], alt], [2, "1", 60, g1[59], two_alts(g1[59])[0]]], "the variant's own fields"
    assert df["INFO/alt"].tolist() == [other, other] and df["INFO/record"].tolist() == [1, 1]
    assert df["INFO/delta"].tolist() == [5.0, 5.0] and df.loc[0, "INFO/note"] == "x" and df.loc[0, "INFO/pos"] == 3
    assert "n" in df.columns and df.attrs["renamed"] == {k: f"INFO/{k}" for k in
                                                         ["alt", "ref", "chrom", "record", "pos", "note", "delta"]}
    assert str(df["n"].dtype) == "Int64" and df["n"].isna().tolist() == [False, True], "whole numbers stay whole"
    cut = variant_windows(df, Genome(fasta), W)
    assert cut.windows.var_seqs[0] == g1[9:29] + alt + g1[30:49], "the ALT allele is scored, not INFO's alt"

    table = tmp_path / "t.tsv"
    table.write_text(f"chrom\tpos\tref\talt\trecord\tnote\tdelta\tgene\n1\t30\t{g1[29]}\t{alt}\t7\tmine\t0.5\tx\n")
    df = read_variants(table)
    assert df[["record", "input/record", "input/note", "input/delta", "gene"]].values.tolist() == [
        [2, "7", "mine", "0.5", "x"]]
    clash = tmp_path / "clash.tsv"
    clash.write_text(f"chrom\tpos\tref\talt\tnote\tinput/note\n1\t30\t{g1[29]}\t{alt}\ta\tb\n")
    with pytest.raises(variants.DataError, match=r"column\(s\) 'note' \(kept as 'input/note', which the table also "
                                                 r"has\)"):
        read_variants(clash)
    twice = tmp_path / "twice.tsv"
    twice.write_text(f"chrom\tpos\tref\talt\tALT\n1\t30\t{g1[29]}\t{alt}\t{other}\n")
    with pytest.raises(variants.DataError, match=r"columns \['alt', 'ALT'\] all name 'alt': keep one of each"):
        read_variants(twice)


def test_an_insertion_whose_alt_leaves_its_record_is_not_scored(fasta, tmp_path):
    g1 = up(CHR1)
    path = tmp_path / "v.vcf"
    path.write_text(vcf_text([f"1 200 . {g1[199]} {g1[199]}T . . .", f"1 199 . {g1[198]} {g1[198]}GGG . . .",
                              f"1 190 . {g1[189]} {g1[189]}T . . ."]))
    cut = variant_windows(read_variants(path), Genome(fasta), W)
    assert cut.info["scored"].tolist() == [False, False, True]
    assert cut.info.loc[0, "note"] == ("ALT (2 bp) does not fit in its 21-bp window: chr1 has 1 bp left from the "
                                       "variant's first base: not scored")
    assert "ALT (4 bp) does not fit in its 22-bp window" in cut.info.loc[1, "note"]
    assert cut.windows.var_seqs == [(g1[169:190] + "T" + g1[190:])[:31]] and cut.rows.tolist() == [2]
    assert cut.info["window_start"].isna().tolist() == [True, True, False], "empty, and whole numbers elsewhere"
    assert str(cut.info["window_start"].dtype) == "Int64" and str(cut.info["window_length"].dtype) == "Int64"


def test_an_index_that_does_not_fit_its_fasta_is_rebuilt(fasta, tmp_path):
    g1 = up(CHR1)
    assert Genome(fasta).fetch(Genome(fasta).records[1], 0, 30) == CHR2
    other = tmp_path / "other.fa"  # another layout: 50-base lines and a shorter chr1
    lines = "\n".join(CHR1[10 + i:10 + i + 50] for i in range(0, 190, 50))
    other.write_text(f">chr1\n{lines}\n>chr2\n{CHR2}\n>chr3:1001-1100\n{CHR3}\n")
    os.utime(other, (1, 1))
    shutil.copy2(other, fasta)  # cp -p: the FASTA keeps its old time, so its index looks newer
    assert Path(f"{fasta}.fai").stat().st_mtime > fasta.stat().st_mtime
    genome = Genome(fasta)
    assert [(r.name, r.length) for r in genome.records] == [("chr1", 190), ("chr2", 30), ("chr3:1001-1100", 100)]
    assert genome.fetch(genome.records[0], 0, 60) == g1[10:70] and genome.fetch(genome.records[1], 0, 30) == CHR2
    bgz = tmp_path / "b.fa.gz"
    pysam.tabix_compress(str(fasta), str(bgz))
    assert Genome(bgz).fetch(Genome(bgz).records[2], 0, 100) == CHR3
    assert variants._index_problem(bgz, Path(f"{bgz}.fai"), Path(f"{bgz}.gzi"), True) is None
    assert "does not end after 200 bases" in variants._index_problem(
        fasta, _fai_of(tmp_path, [("chr1", 200, 6, 50, 51)]), None, False)


def _fai_of(folder: Path, rows) -> Path:
    path = folder / "hand.fai"
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_fasta_problems_are_one_line_naming_the_file(fasta, tmp_path):
    dup = tmp_path / "dup.fa"
    dup.write_text(f">chr1\n{CHR2}\n>chr1 again\n{CHR2}\n")
    with pytest.raises(variants.DataError, match=rf"^{dup}: two FASTA records are named 'chr1': a record must be "
                                                 "found by its name; rename or remove one$"):
        Genome(dup)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".dup", "dup"))) == ["dup.fa"], \
        "no temporary index left behind"
    bgz, gz = tmp_path / "b.fa.gz", tmp_path / "g.fa.gz"
    pysam.tabix_compress(str(fasta), str(bgz))
    gz.write_bytes(gzip.compress(fasta.read_bytes()))
    for packed in (bgz, gz):
        cut = tmp_path / f"cut-{packed.name}"
        cut.write_bytes(packed.read_bytes()[:len(packed.read_bytes()) // 2])
        with pytest.raises(variants.DataError, match=rf"^{cut} is truncated or damaged \(.*\): fetch or decompress "
                                                     "it again$"):
            Genome(cut)


def test_tables_without_rows_or_on_another_sheet_are_said(tmp_path):
    (tmp_path / "head.tsv").write_text("chrom\tpos\tref\talt\n")
    with pytest.raises(variants.DataError, match="head.tsv: a header but no variant rows"):
        read_variants(tmp_path / "head.tsv")
    with pd.ExcelWriter(tmp_path / "book.xlsx") as w:
        pd.DataFrame({"note": ["see the next sheet"]}).to_excel(w, sheet_name="about", index=False)
        pd.DataFrame({"chrom": ["1"], "pos": [30], "ref": ["A"], "alt": ["C"]}).to_excel(w, sheet_name="calls",
                                                                                      index=False)
    with pytest.raises(variants.DataError, match=r"book.xlsx \(sheet 0\): no column\(s\) \['chrom', 'pos', 'ref', "
                                                 r"'alt'\].*the workbook's other sheets are \['calls'\]: "
                                                 r"choose one with --sheet"):
        read_variants(tmp_path / "book.xlsx")
    with pytest.raises(variants.DataError, match=r"book.xlsx has no sheet 'nope'; its sheets are \['about', "
                                                 r"'calls'\]: choose one with --sheet"):
        read_variants(tmp_path / "book.xlsx", sheet="nope")
    assert read_variants(tmp_path / "book.xlsx", sheet="calls")["pos"].tolist() == [30]
    assert read_variants(tmp_path / "book.xlsx", sheet=1)["pos"].tolist() == [30]
