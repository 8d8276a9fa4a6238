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
# # 08 · An exon classifier: trained on one chromosome, tested on others and on other species
#
# Is a base inside an exon or inside an intron? The Evo 2 repository's exon notebook answers with
# the model's embeddings: for a position it reads two 8,192-bp windows that both **end at the
# position**, one from each side, takes the last token's output of `blocks.26` of `evo2_7b_base` for
# each, puts the two side by side and hands them to a small classifier. On 122 positions of 8
# eukaryotes it reports AUROC 0.9406, but its classifier comes from the Hugging Face Hub and the
# notebook does not say what it was trained on. Here we build the same features and train the
# classifier ourselves, in the open:
#
# 1. **Arc's 122 positions** and their windows: which way they are read (the gene's direction);
# 2. **labelled positions** of the human genome (RefSeq exons of hg19) on chromosomes that never meet:
#    training on chr20, validation on chrX, tests on chr22 and along BRCA1 (chr17), and Arc's 122 as a
#    test in 8 species;
# 3. **features**: Arc's last-token embeddings of both windows at every layer in one pass, next to
#    three baselines that need no language model (the GC content and the k-mer counts of the same
#    windows, and the bases next to the position);
# 4. a **logistic probe per layer**, the layer chosen on validation, and AUROC with bootstrap
#    intervals on every test set and per species;
# 5. the picture: the classifier's **exon probability along BRCA1**, under its annotated exons.
#
# **Time and model**
#
# - **Time on 2 CPU cores**: 4.1 min (profile `cpu`: 512-bp windows, 2,634 positions; 247 s at one
#   thread on nearly idle cores, 379 s beside other jobs at load 5); `smoke` (128-bp windows, 725
#   positions) 26-41 s at one thread (134 s at two threads beside other jobs: the threads wait on
#   each other).
# - **Time on a GPU**: not measured yet (the profiles `gpu-evo2_1b_base`, `gpu-evo2_7b` and
#   `gpu-evo2_40b` run it: 4,668 windows of 8,192 bp).
# - **Model**: `evo2kit-tiny` (bundled, 1.4 M parameters) by default; under the gpu profiles Arc's
#   recipe, 8,192-bp windows, on `evo2_1b_base`, on `evo2_7b_base` (the model Arc's notebook reads;
#   all 32 blocks, `blocks.26` among them) and on `evo2_40b`.

# %% tags=["parameters"]
model_name = "evo2kit-tiny"  # the bundled model; or a published one, e.g. "evo2_7b_base" (a GPU; docs/gpu.md)
window = 512  # bp of each of the two windows (Arc's notebook: 8,192)
layer_ids: list = None  # None: every block; or block indices, e.g. [8, 16, 26]
n_train = 1000  # chr20 positions, half exonic
n_val = 300  # chrX positions, half exonic: choose the probe's penalty and the layer
n_test = 400  # chr22 positions, half exonic
track_step = 100  # every track_step-th base of BRCA1 (81 kb) is a test position, and a point of the track
kmer = 4  # baseline: k-mer frequencies of the two windows
flank = 10  # baseline: one-hot bases within flank bp of the position
batch_size = 16  # windows per forward pass
n_boot = 1000  # bootstrap resamples per confidence interval
seed = 0  # draws the chr20, chrX and chr22 positions, and the bootstrap

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from evo2kit.analysis.exons import auroc_by_group, auroc_table, baseline_features, evaluate, window_embeddings
from evo2kit.data import exons
from evo2kit.tutorial import plots
from evo2kit.tutorial.context import context
from evo2kit.tutorial.metrics import record_metrics

run = context(model_name)  # the run's weights, device, dtype, data folder and outputs
sns.set_theme(style="whitegrid", context="notebook")

# %% [markdown]
# ## 1 · Arc's 122 positions, and which way their windows are read
#
# `samplePositions.tsv` (fetched from the Evo 2 repository at a pinned commit and checked by its
# SHA-256) holds, per position, its species, gene, strand, label (1 exonic) and the two 8,192-bp windows
# `forward_seq` and `reverse_seq`. Both end at the position: the first base of `reverse_seq`'s reverse
# complement is the last base of `forward_seq` (checked on every row when the table is read).

# %%
arc = exons.load_arc_positions()
arc["species"] = arc["organism"].map(exons.COMMON_NAMES)
arc.groupby("species", sort=False).agg(positions=("label", "size"), exonic=("label", "sum"),
                                       genes_on_minus_strand=("strand", lambda s: int((s == "-").sum())))

# %% [markdown]
# Which strand are the windows read on? Introns are T-rich on their gene's strand (transcription leaves
# a T > A skew there). If the windows followed the chromosome's plus strand, `forward_seq` of genes on the
# minus strand would be A-rich; it is T-rich for genes of both strands, so **the windows follow the
# gene**: `forward_seq` is the gene's strand up to the position, `reverse_seq` the other strand read
# back to it. `evo2kit.data.exons.two_sided_windows` cuts ours the same way.

# %%
skew = pd.DataFrame({"strand": arc["strand"], "forward_seq": exons.t_skew(arc["forward_seq"]),
                     "reverse_seq": exons.t_skew(arc["reverse_seq"])})
skew.groupby("strand").agg(["mean", "sem"]).round(3)

# %% [markdown]
# ## 2 · Labelled positions of the human genome, on chromosomes that never meet
#
# **The label rule** (RefSeq exons of hg19, the exons of each gene's transcripts merged; a gene spans its
# first to its last exon): a position inside the genes of one strand is *exonic* (1) if any exon covers
# it, else *intronic* (0). Intergenic positions, and those inside genes of both strands, are left out: the
# question is "where in a gene is this base?", as for Arc's positions, every one of which lies in a named
# gene. Exons include untranslated ones (UTRs).
#
# **The sets**: `n_train` positions of chr20 train the probe, `n_val` of the chrX part choose its penalty
# and the layer, and the tests are positions the training never came near: `n_test` of chr22 (blocks of
# an alignment: each window must lie inside one block), every `track_step`-th base of BRCA1 on chr17,
# and Arc's 122 (their windows cut to the last `window` bases). The sampled sets are half exonic, drawn
# uniformly among the bases of each class; along BRCA1 the exonic share is what the gene has. (With
# 8,192-bp windows only ~68 kb of chr22 lies far enough inside long blocks, so the gpu profiles draw
# 100 positions there, from a handful of genes.) No
# training or validation window shares a base with a test window (checked when the sets are built), and
# none of Arc's human positions lies on chr17, chr20, chr22 or chrX. (`evo2kit-tiny` was pre-trained on
# chr20 and chrX, so every test window is new to it too.)

# %%
sets = exons.exon_sets(window, n_train, n_val, n_test, track_step, seed=seed)
positions, y = sets.positions, sets.labels
summary = positions.groupby("set", sort=False).agg(positions=("label", "size"), exonic=("label", "sum"),
                                                   chromosomes=("chrom", lambda c: ", ".join(sorted(set(c.dropna())))))
summary["exonic share"] = (summary["exonic"] / summary["positions"]).round(3)
summary

# %% [markdown]
# ## 3 · Features: Arc's embeddings at every layer, and three baselines
#
# `window_embeddings` runs every forward and every reverse window once, with hooks on all the layers
# (`blocks.{i}`: the output of block i, as Arc reads `blocks.26`), keeps each window's last token and
# puts the two side by side: `2 x d` numbers per position and layer. The baselines see the same windows
# without a model: the GC content of each window (2 numbers), the frequencies of the `4**kmer` k-mers of
# each window, and the `2 x flank + 1` bases centred on the position, one-hot.
#
# One difference from Arc's notebook: its windows are written in lower case, and the official tokenizer
# keeps case (byte values 97-116), so Arc's model read lower-case tokens; evo2kit upper-cases every
# sequence (the bundled model was trained on upper case only). For the published models that is a change
# of input, worth knowing when comparing with Arc's 0.9406.

# %%
model = run.load_model()
blocks = range(model.config.num_layers) if layer_ids is None else layer_ids
layers = [f"blocks.{i}" for i in blocks]
t0 = time.time()
embedded = window_embeddings(model, sets.forward, sets.reverse, layers, batch_size=batch_size)
embed_seconds = time.time() - t0
baselines = baseline_features(sets.forward, sets.reverse, kmer, flank)
gc_name, kmer_name, onehot_name = list(baselines)
print(f"{len(positions):,} positions x 2 windows of {window:,} bp through {model.name} in {embed_seconds:.0f} s; "
      f"{len(layers)} layers of {embedded[layers[0]].shape[1]} features, baselines: "
      + ", ".join(f"{k} {v.shape[1]}" for k, v in baselines.items()))

# %% [markdown]
# ## 4 · A probe per layer, and the layer sweep
#
# For every feature set, a logistic regression (standardised features, L2 penalty chosen on the chrX
# validation positions) is trained on the chr20 positions and scores every test position. The layer
# the rest of the notebook reads is the one with the best **validation** AUROC; the test sets are never
# used to choose anything.

# %%
tests = {name: sets.rows(name) for name in ("chr22", "brca1", "arc")}
table, scores = evaluate({**embedded, **baselines}, y, sets.rows("train"), sets.rows("val"), tests, n_boot=n_boot,
                         seed=seed)
sweep = table[table["features"].isin(layers)]
best_layer = sweep.sort_values("val_auroc", kind="stable").iloc[-1]["features"]
test_names = {"chr22": "chr22 (held-out chromosome)", "brca1": "BRCA1 locus (chr17)", "arc": "Arc's 122 (8 species)"}

axes = plots.layer_sweep(table, layers, list(baselines), test_names, chosen=best_layer)
plt.gcf().suptitle(f"{model.name}: exonic vs intronic from the last token of two {window:,}-bp windows")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5 · The chosen layer against the baselines, on every test set and per species

# %%
final = table[table["features"].isin([best_layer, gc_name, kmer_name, onehot_name])].copy()
final["features"] = final["features"].replace({best_layer: f"embeddings, {best_layer}"})
auroc_table(final, index="features", columns="test")[list(tests)]

# %% [markdown]
# **Base composition** is the first thing to rule out. Exons are GC-richer than introns on average, and
# genes differ in GC as a whole, so on positions drawn from many genes (chr20, chr22) the GC content of the
# windows alone separates the classes well, and the k-mer counts, which contain it, do as well. Along one
# gene that difference can vanish or turn around: in BRCA1 the windows of exonic positions are poorer in
# GC than those of intronic ones (its introns are rich in Alu repeats; its 3.4-kb exon 11, poor in GC,
# holds many of the exonic positions), so a probe that learnt "GC-rich means exon" on chr20 scores below
# chance there. A feature that holds up along BRCA1 carries something beyond composition.

# %%
gc = positions.assign(gc=baselines[gc_name].mean(1), label=positions["label"].map({0: "intronic", 1: "exonic"}))
gc.groupby(["set", "label"], sort=False)["gc"].mean().unstack().round(3)

# %%
arc_rows = tests["arc"]
species = positions.loc[arc_rows, "organism"].map(exons.COMMON_NAMES).reset_index(drop=True)
named = {f"embeddings, {best_layer}": scores[best_layer], **{name: scores[name] for name in baselines}}
by_species = auroc_by_group(y[arc_rows], {k: v[arc_rows] for k, v in named.items()}, species, n_boot=n_boot, seed=seed)
ax = plots.auroc_bars(by_species)
ax.set(title="Arc's positions by species: 11-16 positions each, so wide intervals")
plt.show()
auroc_table(by_species, index="group", columns="features")

# %% [markdown]
# ## 6 · Along BRCA1: the exon probability under the annotated exons
#
# BRCA1 (81 kb on chr17, minus strand) was never seen in training. Every `track_step`-th base, read in
# the gene's direction, gets the probe's P(exonic) at the chosen layer; the orange bands and black boxes
# are the RefSeq exons; the thick line averages the positions of about 1 kb. If the features carry exon
# structure, the line rises in the bands.

# %%
brca1 = positions.loc[tests["brca1"]]
genes17 = sets.genes["chr17"]
inside = (genes17.exons[1] > exons.BRCA1_GENE[0]) & (genes17.exons[0] < exons.BRCA1_GENE[1])
fig, axes = plt.subplots(2, 1, figsize=(15, 6.5), sharex=True)
brca1_exons = (genes17.exons[0][inside], genes17.exons[1][inside])
for ax, name in zip(axes, [best_layer, kmer_name]):
    plots.exon_track(brca1["pos"].to_numpy(), scores[name][tests["brca1"]], brca1_exons,
                     smooth=max(1, 1000 // track_step), title=f"P(exonic) from {name}", ax=ax)
axes[1].set_xlabel("hg19 chr17 position, Mbp (BRCA1 is read right to left: minus strand)")
axes[1].xaxis.set_major_formatter(lambda v, _: f"{v / 1e6:.3f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 7 · The numbers

# %%
def auroc_of(features: str, test: str) -> float:
    return table[(table["features"] == features) & (table["test"] == test)]["auroc"].item()


metrics = {"n_train": len(sets.rows("train")), "n_val": len(sets.rows("val")), "n_test": len(tests["chr22"]),
           "n_brca1": len(tests["brca1"]), "n_brca1_exonic": int(y[tests["brca1"]].sum()), "n_arc": len(arc_rows),
           "n_layers": len(layers), "best_layer": int(best_layer.split(".")[1]),
           "best_layer_val_auroc": sweep[sweep["features"] == best_layer]["val_auroc"].iloc[0],
           "embed_seconds": embed_seconds}
for test in tests:
    metrics[f"emb_auroc_{test}"] = auroc_of(best_layer, test)
    metrics[f"emb_auroc_{test}_layer_max"] = sweep[sweep["test"] == test]["auroc"].max()
    metrics[f"gc_auroc_{test}"] = auroc_of(gc_name, test)
    metrics[f"kmer_auroc_{test}"] = auroc_of(kmer_name, test)
    metrics[f"onehot_auroc_{test}"] = auroc_of(onehot_name, test)
    metrics[f"emb_minus_kmer_{test}"] = metrics[f"emb_auroc_{test}"] - metrics[f"kmer_auroc_{test}"]
    metrics[f"emb_minus_onehot_{test}"] = metrics[f"emb_auroc_{test}"] - metrics[f"onehot_auroc_{test}"]
if exons.ARC_LAYER in layers:  # Arc's own layer, for the comparison with its published AUROC
    for test in tests:
        metrics[f"emb_auroc_{test}_at_arc_layer"] = auroc_of(exons.ARC_LAYER, test)
for (features, group), auc in by_species.set_index(["features", "group"])["auroc"].items():
    key = {f"embeddings, {best_layer}": "emb", gc_name: "gc", kmer_name: "kmer", onehot_name: "onehot"}[features]
    metrics[f"{key}_auroc_arc_{group}"] = auc
record_metrics("08_exon_classifier", metrics)
pd.Series(metrics).round(4)

# %% [markdown]
# ## What these numbers mean
#
# Measured with the `cpu` profile (`python -m evo2kit.tutorial.runner --profile cpu --notebooks 08
# --threads 1`: 512-bp windows, 1,000 chr20 training positions, seed 0; 4.1 min on 2 cores), AUROC
# [95% bootstrap interval], and in brackets after it the same figure at seed 1, which draws other
# positions:
#
# | features | chr22 (400, held out) | BRCA1 (812, 74 exonic) | Arc's 122 (8 species) |
# |---|---|---|---|
# | embeddings, last | 0.682 [0.631, 0.731] (0.741) | 0.702 [0.656, 0.752] (0.729) | 0.666 [0.571, 0.762] (0.700) |
# | 4-mer counts | 0.751 [0.705, 0.799] (0.772) | 0.719 [0.656, 0.783] (0.680) | 0.563 [0.460, 0.658] (0.592) |
# | GC content | 0.678 [0.625, 0.728] (0.708) | 0.333 [0.268, 0.404] (0.319) | 0.527 [0.419, 0.623] (0.538) |
# | one-hot ±10 bp | 0.549 [0.498, 0.602] (0.670) | 0.498 [0.437, 0.559] (0.494) | 0.686 [0.597, 0.779] (0.662) |
#
# - **The embeddings carry exon information the nearest bases do not**: on both human test sets they
#   beat the one-hot bases in every run (by 0.07-0.13 on chr22 and 0.20-0.24 along BRCA1 in the `cpu`
#   runs); on chr22 the probe improves with depth, and validation picks the last block (11; 10 at seed 1).
# - **But not more than composition on human DNA**: on chr22 the 4-mer counts of the same windows beat
#   them in both `cpu` runs (by 0.03-0.07), and along BRCA1 the two tie (-0.02 and +0.05). The GC content
#   alone reaches 0.68 on chr22 and 0.33 along BRCA1: between genes GC separates exons from introns,
#   within BRCA1 it points the wrong way, and the track above shows it: the k-mer probe lights up the long
#   exon 11, the embedding probe's line stays near its mean with small bumps.
# - **Across species the embeddings transfer better than k-mers**: on Arc's 122 they beat the 4-mer
#   counts in every run (by 0.10-0.11 in the `cpu` runs, 0.01-0.06 in the `smoke` runs), though not the
#   nearest bases (-0.02, +0.04), and 122 positions give intervals of about ±0.1, so one run's gap lies
#   inside its intervals. k-mer frequencies learnt on human chr20 fit the plants badly. Per species (11-16
#   positions each) the intervals span ±0.2-0.3: no species can be told from another.
# - **Far from Arc's 0.9406** (published, with another classifier: `evo2_7b_base`, `blocks.26`, 8,192-bp
#   windows): a 1.4 M-parameter model that read 11.5 M tokens of two human chromosomes, at 512 bp, gives a
#   real but small signal. The gpu profiles measure what Evo 2 gives with this notebook's open classifier.
#
# The ranges in `notebooks/expected_results.yml` come from these runs (`cpu`: seeds 0 and 1 at one thread;
# `smoke`: seeds 0-2 at one thread and seed 0 at two); a gap keeps its sign as a lesson only where it
# held in every run of the profile (both: the embeddings above the one-hot bases on chr22 and BRCA1 and
# above the k-mer counts on Arc's 122; `smoke` also above the one-hot bases on Arc's 122 and the k-mer
# counts on chr22); the other gaps are judged by their spread only.
#
# ## Exercises
#
# 1. **Window length.** Run with `window=128` and `window=2048` (`--set window=...`). Does the embedding
#    probe gain from context the way Arc's 8,192-bp windows suggest, and do the k-mer counts, which
#    average over the whole window, gain or lose?
# 2. **One window or two?** Train the probe on the forward half of the features only
#    (`embedded[best_layer][:, :d]`, `d` half its width) and on the reverse half only. Which side
#    carries the signal, and is the pair worth more than its better half?
# 3. **Another gene.** Build a track along a chr22 gene with `exons.grid_positions` and
#    `exons.two_sided_windows` (pick one whose span lies inside a long block of
#    `exons.load_chromosome("chr22")`) and score it with the probe: do its exons light up as BRCA1's do?
