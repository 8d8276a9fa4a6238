# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
# ---

# %% [markdown]
# # 05 · Long sequences: from one window to a whole locus
#
# **You will learn**
#
# - why a plain forward pass over hundreds of kilobases fails (memory, 32-bit indexing);
# - how the exact chunked forward gives the same result in pieces, and what it costs in time
#   and memory as the sequence grows;
# - how to embed a whole locus around BRCA1 and draw the embeddings along it;
# - how far overlapping sliding windows are from the exact result.
#
# **Time and model**
#
# - **Time on 2 CPU cores**: 10.5 min (profile `cpu`, `make tutorial`; measured at d7d4b12,
#   README's timing table).
# - **Time on a GPU**: not measured yet (the profiles `gpu-evo2_1b_base`, `gpu-evo2_7b` and
#   `gpu-evo2_40b` run it, up to 1 Mbp for the 1B and 7B).
# - **Model**: `evo2kit-tiny` (bundled, 1.4 M parameters) by default; `evo2_1b_base`, `evo2_7b` or
#   `evo2_40b` under those gpu profiles.
#
# Evo 2 was trained to read up to a million bases at once, yet a plain forward pass over a
# 200-kb sequence fails on a GPU with the cryptic `canUse32BitIndexMath` error. This notebook
# shows why, and what to do instead:
#
# 1. a whole-sequence forward needs memory that grows with the length (measured here);
# 2. the **exact chunked forward** feeds the sequence in pieces while carrying the model's state
#    (the Hyena filters' memory of the past and the attention keys/values), giving the same result
#    as the whole forward with a fraction of the memory;
# 3. with it we embed a whole locus around BRCA1 and plot the embeddings along it;
# 4. the common alternative, **overlapping sliding windows**, is cheaper but approximate: we
#    measure its error against the exact result.

# %% tags=["parameters"]
model_name = "evo2kit-tiny"  # the bundled model; or a published one, e.g. "evo2_7b" (a GPU; see docs/gpu.md)
whole_lengths = [8_192, 32_768, 65_536, 131_072]  # bp, whole forward (time and memory)
long_lengths = [65_536, 131_072, 262_144]  # bp, chunked embedding (time and memory)
chunk_size = 4_096  # bp per chunk of the exact chunked forward
compare_length = 16_384  # bp, chunked vs whole comparison
locus_bp = 200_000  # bp around BRCA1 to embed (GRCh38)
layer = "blocks.6.mlp.l3"  # layer to embed
sliding_window = 2_048  # bp per window of the sliding-window alternative
sliding_overlaps = [0, 512, 1_024]  # bp of overlap between windows
batch_size = 4  # windows per forward in the sliding-window comparison
seed = 0

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from evo2kit.analysis.longseq import measure_forward, random_ids, sliding_window_embeddings
from evo2kit.data import fasta, registry
from evo2kit.model.striped_hyena import Evo2Config
from evo2kit.tutorial import plots
from evo2kit.tutorial.context import context
from evo2kit.tutorial.metrics import record_metrics

run = context(model_name)  # the run's weights, device, dtype, data folder and outputs
model = run.load_model()
print(model.name, f"{model.model.num_params():,} parameters on {model.device}")

# %% [markdown]
# ## 1 · Why a whole forward breaks
#
# Inside each block, every position carries vectors of the model's width (96 numbers for our model,
# 4,096 for Evo 2 7B), and some steps hold three or more of them at once. So activation memory grows
# in proportion to the length. We measure it on the bundled model, each length in a fresh process
# so that the peak belongs to that forward alone.

# %%
whole = measure_forward(model_name, whole_lengths, "whole", device=run.device, local_path=run.model_weights,
                        dtype=run.dtype)
print(whole.to_string(index=False))

# %% [markdown]
# GPU kernels also index tensors with 32-bit integers in many places: a tensor with more than
# 2^31 (2.1 billion) elements trips `canUse32BitIndexMath`. The first step of every Hyena block
# projects each position to three vectors of the model's width, a tensor of 3 x width x length
# elements. For the published models:

# %%
rows = []
for name in ["evo2_1b_base", "evo2_7b", "evo2_40b"]:
    d = Evo2Config.published(name).hidden_size
    for L in [8_192, 200_000, 1_000_000]:
        rows.append({"model": name, "length": L, "3 x width x length": 3 * d * L, "over 2^31": 3 * d * L > 2**31})
print(pd.DataFrame(rows).to_string(index=False))

# %% [markdown]
# For Evo 2 7B the limit falls between 8 kb and 200 kb: exactly the error users report. The cure is
# not a bigger GPU but to avoid holding the whole sequence's activations at once.
#
# ## 2 · The exact chunked forward
#
# The model is causal: position *t* depends only on positions before it. Each block can therefore
# process a chunk, keep a small **state** summarising what it saw (the last few inputs of the short
# convolutions, the long Hyena filters' modal state, the attention keys and values), and continue
# with the next chunk. The result equals the whole forward up to floating-point rounding:

# %%
ids = random_ids(compare_length, seed)
(logits_whole, _), _ = model(ids)
(logits_chunked, _), _ = model(ids, chunk_size=chunk_size)
chunked_diff = float((logits_whole.float() - logits_chunked.float()).abs().max())
scale = float(logits_whole.float().abs().max())
print(f"{compare_length} bp in chunks of {chunk_size}: max |logit difference| = {chunked_diff:.2e} "
      f"(largest |logit| {scale:.1f})")
del logits_whole, logits_chunked

# %% [markdown]
# Time and memory of the chunked embedding (`model.embed_long`, mean-pooled) against length.
# The Hyena blocks' state has a fixed size whatever the length; what still grows is attention:
# its keys and values for every earlier position are kept (the K/V cache: 2 x hidden size numbers
# per position and attention layer), and each new chunk is compared with all of them. evo2kit
# never builds the chunk x length table of scores: on CPU it calls PyTorch's fused attention twice
# (the chunk against the cache, then against itself with the causal mask) and merges the two
# softmaxes by their log-sum-exp; elsewhere it walks the cache in blocks of keys
# (`evo2kit.model.attend_with_cache`). Memory thus
# grows only by the cache, slowly; time grows with the square of the length, because every
# position still looks at every earlier one.

# %%
chunked = measure_forward(model_name, long_lengths, "embed_long", chunk_size=chunk_size, device=run.device,
                          local_path=run.model_weights, dtype=run.dtype)
print(chunked.to_string(index=False))
costs = pd.concat([whole, chunked])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, y, label in zip(axes, ["peak_mb", "seconds"], ["peak memory (MB)", "time (s)"]):
    sns.lineplot(data=costs, x="length", y=y, hue="mode", marker="o", ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="sequence length (bp)", ylabel=label)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3 · Embeddings along the BRCA1 locus
#
# We embed `locus_bp` bases of GRCh38 chromosome 17 centred on BRCA1 (chr17:43,044,295-43,125,483,
# minus strand) in one exact chunked pass, keeping every position's embedding, and reduce the
# `d`-dimensional vectors to their first principal component to see how the representation
# changes along the locus.

# %%
REGION_START = 42_425_000  # GRCh38 position of index 0 of the grch38_brca1_1mb sequence
BRCA1 = (43_044_295, 43_125_483)
_, region38 = fasta.read_fasta_first(registry.fetch("grch38_brca1_1mb"))
centre = (BRCA1[0] + BRCA1[1]) // 2 - REGION_START
lo_ = max(0, centre - locus_bp // 2)
locus = region38[lo_:lo_ + locus_bp]
del region38
t0 = time.time()
emb = model.embed_long(locus, [layer], chunk_size=chunk_size, pooling=None)[layer]  # (L, d)
locus_seconds = time.time() - t0
print(f"{len(locus):,} bp -> {emb.shape} in {locus_seconds:.0f}s ({len(locus) / locus_seconds:,.0f} bp/s)")
rng = np.random.default_rng(seed)
pca = PCA(1).fit(emb[rng.choice(len(emb), min(len(emb), 20_000), replace=False)])
pc1 = pca.transform(emb)[:, 0]
plots.track(pc1, start=REGION_START + lo_, smooth=max(1, len(locus) // 400), spans={"BRCA1": BRCA1},
            ylabel=f"PC1 of {layer}")
plt.title(f"{model.name}: embeddings along {len(locus):,} bp around BRCA1 (GRCh38)")
plt.show()

# %% [markdown]
# ## 4 · The alternative: overlapping sliding windows
#
# Cutting the sequence into independent windows is simple and parallel, but each position only
# sees the context inside its window. With an overlap, the first bases of each window act only as
# context for the rest. How far is that from the exact answer? We compare per-position embeddings
# over the first part of the locus.

# %%
part = locus[: min(len(locus), 8 * sliding_window)]
exact = emb[: len(part)]
norms = np.linalg.norm(exact, axis=1) + 1e-12
errors, curves = {}, []
for overlap in sliding_overlaps:
    approx = sliding_window_embeddings(model, part, layer, sliding_window, overlap, batch_size)
    rel = np.linalg.norm(approx - exact, axis=1) / norms
    errors[overlap] = float(np.mean(rel[sliding_window:]))  # beyond the first window, where both agree
    curves.append(pd.DataFrame({"position": np.arange(len(part)), "relative error": rel, "overlap": overlap}))
print(pd.Series(errors, name="mean relative error after the first window").rename_axis("overlap (bp)").to_string())
ax = sns.lineplot(data=pd.concat(curves), x="position", y="relative error", hue="overlap", lw=0.6,
                  palette="viridis")
ax.set(title=f"sliding {sliding_window}-bp windows vs the exact chunked forward")
plt.show()

# %%
ok_whole, ok_long = whole[whole["error"] == ""], chunked[chunked["error"] == ""]
record_metrics("05_long_sequences", {
    "chunked_max_abs_diff": chunked_diff,
    "whole_longest_ok_bp": ok_whole["length"].max(),
    "whole_peak_mb_per_kb": (ok_whole["peak_mb"] / ok_whole["length"] * 1000).iloc[-1],
    "embed_long_longest_ok_bp": ok_long["length"].max(),
    "embed_long_peak_mb_longest": ok_long["peak_mb"].iloc[-1],
    "embed_long_seconds_longest": ok_long["seconds"].iloc[-1],
    "locus_bp": len(locus),
    **{f"sliding_rel_error_overlap{o}": e for o, e in errors.items()},
})

# %% [markdown]
# ## What these numbers mean
#
# - `chunked_max_abs_diff` is float rounding (1.5e-05 in the `cpu` and `smoke` runs here; the
#   largest logit in the `smoke` run is 25): the chunked forward *is* the whole forward, so
#   `embed_long` and `forward(chunk_size=...)` can be used wherever a whole forward would be, at
#   any length that the K/V cache fits in.
# - The whole forward's peak memory grows in proportion to the length: 17 MB per kb at
#   131,072 bp in the `cpu` profile run that `notebooks/expected_results.yml` records, while the
#   chunked pass over 204,800 bp peaked at 1,006 MB. For a published model scale the per-kb
#   figure roughly by the width ratio (4,096 / 96 for Evo 2 7B) to see why 200 kb fails; the
#   32-bit index limit alone falls at 2^31 / (3 x 4,096), about 175 kb, for the 7B.
# - The chunked pass's time grows with the square of the length (attention): read the printed
#   seconds per length, which depend on this machine.
# - Sliding windows are approximate: on `evo2kit-tiny` with 2,048-bp windows, 4.5% mean relative
#   error without overlap, 2.2% with 512 bp and 1.8% with 1,024 bp of overlap (`cpu` profile);
#   with the `smoke` profile's 1,024-bp windows, 6.5% and 3.4% with 256 bp of overlap. Whether
#   that is small enough depends on the use; the exact pass costs what section 2 measured. On
#   Evo 2 the error depends on how far back its long filters and attention actually use context:
#   the gpu profiles measure it with the same cells (8,192-bp windows, overlaps up to 4,096 bp).

# %% [markdown]
# ## Exercises
#
# 1. Set `chunk_size = 1024`, then `chunk_size = 16384`, and rerun section 2. Does the chunked
#    forward still equal the whole one (the printed max |logit difference|)? How do the time and
#    the peak memory of `embed_long` change with the chunk?
# 2. Set `sliding_window = 4096` and `sliding_overlaps = [0, 512, 2048]` and rerun section 4. How
#    does the mean relative error fall with the overlap, and with the window? Each window of
#    length W with overlap O reads W / (W − O) times the bases of the exact pass.
# 3. Set `layer = "blocks.2.mlp.l3"` (a long Hyena block), then `"blocks.11.mlp.l3"` (the last,
#    an attention block), and rerun section 3. Does the span of BRCA1 stand out in the PC1
#    track of either? On `evo2kit-tiny` expect little; the same plot under a gpu profile asks
#    the question of Evo 2.
