"""evo2kit-vep: zero-shot scores (and optionally embeddings) of the variants of a VCF or table
against any reference genome, through the engine of notebooks 02-04.

    evo2kit-vep --vcf mine.vcf.gz --fasta genome.fa.gz --window 2048 --out scores.tsv
    torchrun --nproc_per_node 4 -m evo2kit.analysis.vep --vcf ... --out scores.parquet      # same output

Reading and windows: :mod:`evo2kit.data.variants` (multi-allelic records split, contig names matched,
every REF checked, windows cut at contig edges as notebook 03 cuts them). Scores:
``zero_shot.window_deltas`` per strand (``delta+``, ``delta-``, their mean ``delta``: mean
log-likelihood per predicted base of the variant window minus that of its reference window);
with ``--layers``, ``embeddings.variant_features`` into the resumable store, and per layer the L2
distance between the variant's and the reference's pooled features (``l2:<layer>``).

Output (TSV, or Parquet for a name ending in .parquet): one row per ALT allele, the input's
columns, then ``fasta_record``, ``window_start`` (1-based), ``window_length``, ``scored``, the
scores, ``note`` (why a row is not scored, or what is unusual about its window) and, with layers,
``store_row`` (row of the reference in the store; the variant's is ``store_row + n_scored``). An
input column of one of these names is kept as ``INFO/<name>`` or ``input/<name>``
(``read_variants``), never replaced; a row whose score is not a finite number is not scored.

Resuming: the variants are cut into parts of ``--part-size`` scored variants (variants sharing
a reference window stay together); each part's deltas are written atomically into the work folder
(``--work``, default ``<out>.parts``) as soon as they are computed, so a rerun of the same command
after any interruption computes only the missing parts (and the store resumes its batches). A run
with another model, dtype, FP8 mode, window, batch size or variant set uses other files; a part whose
values no longer match the checksum in its name is computed again. Under ``torchrun``, rank r
computes every world-th part, and rank 0 writes the output. Exit status as in ``evo2kit.cli``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch.distributed as dist
from tqdm import tqdm

from evo2kit.analysis import embeddings, zero_shot
from evo2kit.analysis.store import StoreLock
from evo2kit.cli import ArgumentParser, DataError, UsageError, exit_status_help, run_main
from evo2kit.data.variants import (
    SCORE_COLUMNS,
    WINDOW_COLUMNS,
    Genome,
    VariantWindows,
    read_table,
    read_variants,
    variant_windows,
)
from evo2kit.distributed import rank_world, torchrun_group
from evo2kit.files import atomic_write

OUTPUT_SUFFIXES = (".tsv", ".txt", ".tsv.gz", ".parquet")


def parts_of(windows: VariantWindows, part_size: int) -> list[np.ndarray]:
    """Variant indices cut into parts of at least ``part_size`` (the last may be smaller), whole
    reference windows at a time, so that a shared reference window is scored in one part."""
    by_ref = pd.Series(np.arange(len(windows.ref_index))).groupby(windows.ref_index, sort=True)
    parts, current = [], []
    for _, idx in by_ref:
        current.extend(idx.tolist())
        if len(current) >= part_size:
            parts.append(np.asarray(current, np.int64))
            current = []
    if current:
        parts.append(np.asarray(current, np.int64))
    return parts


def subset(windows: VariantWindows, idx: np.ndarray) -> VariantWindows:
    """The windows of variants ``idx`` alone, reference windows renumbered in order of first use."""
    refs = list(dict.fromkeys(windows.ref_index[idx].tolist()))
    local = {r: j for j, r in enumerate(refs)}
    return VariantWindows([windows.ref_seqs[r] for r in refs], [windows.var_seqs[i] for i in idx],
                          np.asarray([local[r] for r in windows.ref_index[idx]], np.int64),
                          windows.var_pos_in_window[idx])


def score_variants(model, df: pd.DataFrame, genome: Genome, window: int = 8192, strands: str = "+",
                   batch_size: int = 8, *, layers: Sequence[str] | None = None, pooling: str = "position",
                   work: str | os.PathLike | None = None, skip_bad: bool = False, part_size: int = 256,
                   progress: bool = False) -> pd.DataFrame:
    """``df`` (from ``variants.read_variants``) with the window columns, ``delta<strand>`` per strand
    of ``strands``, ``delta`` (their mean), ``note``, and with ``layers`` ``l2:<layer>`` and
    ``store_row`` (see the module docstring). ``work``: the folder of resumable parts and of the
    embedding store (required with ``layers`` or under torchrun; None computes everything in memory).
    """
    zero_shot.check_strands(strands)
    if part_size < 1:
        raise ValueError(f"part_size must be >= 1, got {part_size}")
    clash = [str(c) for c in df.columns if c in (*WINDOW_COLUMNS, *SCORE_COLUMNS) or str(c).startswith("l2:")]
    if clash:
        raise DataError(f"the variants already have column(s) {clash}, which score_variants writes: rename them "
                        "(read_variants keeps such input columns as 'INFO/<name>' or 'input/<name>')")
    cut = variant_windows(df, genome, window, skip_bad=skip_bad)
    rank, world = rank_world()
    if work is None and (layers or world > 1):
        raise ValueError("embeddings and distributed runs keep their results in a work folder: pass work=")
    work = None if work is None else Path(work)
    lock = _lock(work, rank, world)
    try:
        parts = parts_of(cut.windows, part_size)
        deltas = {s: np.full(len(cut.rows), np.nan) for s in dict.fromkeys(strands)}
        mine = parts[rank::world]
        bar = tqdm(total=sum(map(len, mine)), disable=not progress, unit="variant", dynamic_ncols=True,
                   desc=f"rank {rank}" if world > 1 else "score")
        for idx in mine:
            for s, d in zero_shot.window_deltas(model, subset(cut.windows, idx), batch_size, strands, work).items():
                deltas[s][idx] = d
            bar.update(len(idx))
        bar.close()
        if world > 1:  # every part is on disk now: read the other ranks' ones back
            dist.barrier()
            for idx in [p for i, p in enumerate(parts) if i % world != rank]:
                for s, d in zero_shot.window_deltas(model, subset(cut.windows, idx), batch_size, strands,
                                                    work).items():
                    deltas[s][idx] = d
        out = df.join(cut.info)
        for s, d in deltas.items():
            out[f"delta{s}"] = _scatter(d, cut.rows, len(df))
        out["delta"] = out[[f"delta{s}" for s in deltas]].mean(axis=1, skipna=False)
        out["note"] = out.pop("note")
        if layers:
            n = len(cut.rows)
            store = work / embeddings.store_name(model, cut.windows, layers, pooling, batch_size)
            feats = embeddings.variant_features(model, cut.windows, layers, pooling, out=store, batch_size=batch_size,
                                           progress=progress)
            for layer, f in feats.items():
                dist_l2 = np.linalg.norm(np.asarray(f["var"], np.float64) - np.asarray(f["ref"], np.float64), axis=1)
                out[f"l2:{layer}"] = _scatter(dist_l2, cut.rows, len(df))
            out["store_row"] = pd.array(_scatter(np.arange(n), cut.rows, len(df)), dtype="Int64")
            out.attrs["store"] = str(store)
        scores = [c for c in out.columns if c.startswith(("delta", "l2:"))]
        broken = out["scored"].to_numpy(bool) & ~np.isfinite(out[scores].to_numpy(np.float64)).all(axis=1)
        if broken.any():  # a NaN is no score: never counted as scored
            out.loc[broken, "scored"] = False
            out.loc[broken, "note"] = [f"{n}; {NOT_FINITE}" if n else NOT_FINITE for n in out.loc[broken, "note"]]
        out.attrs["renamed"] = dict(df.attrs.get("renamed", {}))
        return out
    finally:
        if lock is not None:
            lock.release()


NOT_FINITE = "the model's score is not a finite number (NaN or infinity): not scored (are its weights damaged?)"


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """(n,) float: ``values`` at ``rows``, NaN elsewhere (the rows not scored)."""
    full = np.full(n, np.nan)
    full[rows] = values
    return full


def _lock(work: Path | None, rank: int, world: int):
    """Rank 0 holds the work folder's lock for the group (one run per folder); the others learn
    whether it got it."""
    if work is None:
        return None
    lock, error = None, None
    if rank == 0:
        try:
            work.mkdir(parents=True, exist_ok=True)
            lock = StoreLock(work)
            lock.acquire()
        except Exception as e:  # noqa: BLE001 (the other ranks must hear of it)
            error = e
    if world > 1:
        box = [None if error is None else f"{type(error).__name__}: {error}"]
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None and rank != 0:
            raise RuntimeError(f"rank 0 could not open the work folder: {box[0]}")
    if error is not None:
        raise error
    return lock


def write_table(table: pd.DataFrame, out: str | os.PathLike) -> Path:
    """``table`` as TSV (``.tsv``, ``.txt``, ``.tsv.gz``) or Parquet (``.parquet``), written atomically."""
    out = Path(out)
    if not out.name.endswith(OUTPUT_SUFFIXES):
        raise UsageError(f"--out {out}: the name must end in {', '.join(OUTPUT_SUFFIXES)}")
    if out.name.endswith(".parquet"):
        atomic_write(out, lambda f: table.to_parquet(f, index=False), mode="wb")
    else:
        compression = "gzip" if out.name.endswith(".gz") else None
        atomic_write(out, lambda f: table.to_csv(f, sep="\t", index=False, na_rep="",
                                                       compression=compression), mode="wb")
    return out


# --------------------------------------------------------------------------- command line

def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see ``evo2kit.cli``)."""
    p = ArgumentParser(prog="evo2kit-vep", description=__doc__, epilog=exit_status_help({}),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--vcf", help="VCF or BCF, plain or bgzipped (index or not)")
    src.add_argument("--table", help="TSV, CSV or xlsx with columns chrom, pos, ref, alt (any case)")
    p.add_argument("--sheet", default="0", help="the xlsx sheet of --table: its name or 0-based index (default 0)")
    p.add_argument("--fasta", required=True, help="reference FASTA (plain, bgzip or gzip), or a dataset name of "
                   "evo2kit.data.registry.DATASETS such as grch38_brca1_1mb")
    p.add_argument("--model", default="evo2kit-tiny", help="model name or Evo 2 YAML config")
    p.add_argument("--weights", help="checkpoint (.pt or .safetensors) for --model")
    p.add_argument("--backend", default="torch", choices=["torch", "vortex"],
                   help="torch: evo2kit's model (default); vortex: the official evo2 package "
                   "(CUDA; no resumable parts)")
    p.add_argument("--window", type=int, default=8192, help="window length in bp (even; default 8192)")
    p.add_argument("--strands", default="+", choices=["+", "-", "+-"],
                   help="score the plus strand, the minus strand (reverse complements) or both (mean)")
    p.add_argument("--layers", help="comma-separated layer names, or 'all': also store embeddings of the windows")
    p.add_argument("--pooling", default="position", help="embedding pooling: position (the variant's first "
                   "base) | window:k | mean | last")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--part-size", type=int, default=256, help="variants per resumable part (default 256)")
    p.add_argument("--skip-bad", action="store_true", help="keep rows whose contig, position or REF does not fit "
                   "the FASTA as unscored rows (reason in 'note') instead of stopping")
    p.add_argument("--out", required=True, help=f"output table ({', '.join(OUTPUT_SUFFIXES)})")
    p.add_argument("--work", help="folder of the resumable parts and the embedding store (default: OUT.parts)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    if not args.out.endswith(OUTPUT_SUFFIXES):
        p.error(f"--out {args.out}: the name must end in {', '.join(OUTPUT_SUFFIXES)}")
    if args.window < 2 or args.window % 2:
        p.error(f"--window must be an even number >= 2, got {args.window}")
    if args.batch_size < 1 or args.part_size < 1:
        p.error("--batch-size and --part-size must be >= 1")
    if args.layers is not None:
        try:
            embeddings.parse_pooling(args.pooling)
        except ValueError as e:
            p.error(f"--pooling: {e}")
    return run_main(p.prog, lambda: _score_cli(args), args.debug)


def _score_cli(args) -> int:
    work = Path(args.work or f"{args.out}.parts")
    _check_writable(Path(args.out), work)  # before any scoring, not after it
    sheet = int(args.sheet) if args.sheet.isdigit() else args.sheet
    df = read_variants(args.vcf) if args.vcf else read_table(args.table, sheet=sheet)
    genome = Genome(args.fasta)
    with torchrun_group() as device:
        from evo2kit.api import load_model

        model = (load_model(args.model, local_path=args.weights, backend="vortex") if args.backend == "vortex" else
                 load_model(args.model, local_path=args.weights, device=device))
        layers = None
        if args.layers:
            layers = model.layer_names if args.layers == "all" else [s.strip() for s in args.layers.split(",")]
        table = score_variants(model, df, genome, args.window, args.strands, args.batch_size, layers=layers,
                               pooling=args.pooling, work=work, skip_bad=args.skip_bad,
                               part_size=args.part_size, progress=True)
        if int(os.environ.get("RANK", "0")) == 0:
            write_table(table, args.out)
            scored = int(table["scored"].sum())
            edge = int(table["note"].str.contains("window cut").sum())
            store = f"; embeddings in {table.attrs['store']}" if layers else ""
            broken = int(table["note"].str.contains(NOT_FINITE, regex=False).sum())
            renamed = table.attrs.get("renamed", {})
            print(f"{args.out}: {len(table)} variants from {table['record'].nunique()} records, {scored} scored, "
                  f"{len(table) - scored} not scored (see 'note'), {edge} window(s) cut at a contig edge{store}"
                  + (f"; {broken} score(s) not finite (NaN): are the model's weights damaged?" if broken else "")
                  + ("; input column(s) " + ", ".join(f"{a!r} kept as {b!r}" for a, b in renamed.items())
                     + " (evo2kit writes columns of those names)" if renamed else ""),
                  file=sys.stderr)
    return 0


def _check_writable(out: Path, work: Path) -> None:
    """UsageError naming --out or --work when the output's folder cannot take a file or the work
    folder cannot be made: said before anything is scored."""
    folder = out.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"--out {out}: {folder} {what}: write the output into an existing folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write into {folder} ({e.strerror or e}): choose a writable "
                         "folder") from None
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--work {work}: cannot make this folder ({e.strerror or e}): choose another with "
                         "--work") from None


if __name__ == "__main__":
    sys.exit(main())
