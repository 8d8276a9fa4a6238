"""``evo2kit-embed``: features of a FASTA file or of the BRCA1 variant windows into a resumable store.

    evo2kit-embed --fasta seqs.fa --layers blocks.7.mlp.l3 --out emb/
    torchrun --nproc_per_node N -m evo2kit.analysis.embed_cli --brca1 --layers all --out emb/

Exit status as in ``evo2kit.cli`` (0 ok, 64 usage, 65 bad or damaged store, 66 missing input, 75 store busy).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from evo2kit.analysis.embeddings import extract, parse_pooling, variant_features
from evo2kit.analysis.store import verify
from evo2kit.api import load_model
from evo2kit.cli import ArgumentParser, exit_status_help, run_main
from evo2kit.data.brca1 import brca1_windows, load_brca1
from evo2kit.data.fasta import read_fasta
from evo2kit.distributed import torchrun_group


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see ``evo2kit.cli``)."""
    p = ArgumentParser(prog="evo2kit-embed", description=__doc__, epilog=exit_status_help({}),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="evo2kit-tiny", help="model name or Evo 2 YAML config")
    p.add_argument("--weights", help="checkpoint (.pt or .safetensors) for --model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", help="FASTA file: one row per record (ids name errors)")
    src.add_argument("--brca1", action="store_true",
                     help="BRCA1 variant windows: rows 0..N-1 references, N..2N-1 variants")
    src.add_argument("--verify", metavar="DIR", help="check the store in DIR (complete, every batch's checksum) "
                     "and exit: 0 if intact, 65 otherwise")
    p.add_argument("--window", type=int, default=8192, help="--brca1 window length (bp)")
    p.add_argument("--limit", type=int, help="--brca1: the first K variants only")
    p.add_argument("--whole-windows", action="store_true",
                   help="--brca1: run every variant window whole (default: continue its reference's state at the SNV)")
    p.add_argument("--position", type=int, help="--fasta with position/window pooling: token index in every record")
    p.add_argument("--layers", help="comma-separated layer names, or 'all' (required to extract)")
    p.add_argument("--pooling", default="mean", help="mean | last | position | window:k | none")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=8192)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--out", help="store directory (created, or resumed; required to extract)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    if args.verify is None:
        missing = [f"--{name}" for name in ("layers", "out") if getattr(args, name) is None]
        if missing:
            p.error(f"the following arguments are required to extract: {', '.join(missing)}")
        try:
            parse_pooling(None if args.pooling == "none" else args.pooling)
        except ValueError as e:
            p.error(f"--pooling: {e}")
    return run_main(p.prog, lambda: _verify_cli(args.verify) if args.verify else _extract_cli(args), args.debug)


def _verify_cli(out: str) -> int:
    manifest = verify(out)
    print(f"{out}: complete, {manifest['n_batches']} batches ({manifest['rows_done']} rows) match their checksums",
          file=sys.stderr)
    return 0



def _extract_cli(args) -> int:
    with torchrun_group() as device:
        model = load_model(args.model, local_path=args.weights, device=device)
        layers = model.layer_names if args.layers == "all" else [s.strip() for s in args.layers.split(",")]
        common = dict(layer_names=layers, pooling=None if args.pooling == "none" else args.pooling,
                      batch_size=args.batch_size, out=args.out, dtype=args.dtype,
                      chunk_size=args.chunk_size, progress=True)
        if args.brca1:
            df = load_brca1()
            windows = brca1_windows(df.head(args.limit) if args.limit else df, args.window)
            feats = {k: v["var"] for k, v in variant_features(model, windows, shared_prefix=not args.whole_windows,
                                                               **common).items()}
            n = 2 * len(windows.var_seqs)
        else:
            records = read_fasta(args.fasta)
            pos = None if args.position is None else [args.position] * len(records)
            feats = extract(model, list(records.values()), names=list(records), positions=pos, **common)
            n = len(records)
        if int(os.environ.get("RANK", "0")) == 0:
            shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in feats.items())
            print(f"{args.out}: {n} rows of {len(feats)} layer(s): {shapes}", file=sys.stderr)
        return 0




if __name__ == "__main__":
    sys.exit(main())
