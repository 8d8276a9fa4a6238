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
# # 02 · Embeddings: the numbers a DNA language model gives each variant
#
# **You will learn**
#
# - how each variant becomes a reference and a variant window, and how one forward pass gives
#   the embeddings of every layer;
# - how an on-disk store keeps them, so that an interrupted run resumes and notebook 04 reuses them;
# - four ways to pool a window into one vector, and how much of a single-base change each keeps;
# - what a PCA of the embeddings shows (mostly where in the gene a window lies);
# - what the widely copied run-the-model-once-per-layer recipe costs, measured.
#
# **Time and model**
#
# - **Time on 2 CPU cores**: 3.2 min (profile `cpu`, `make tutorial`; measured at d7d4b12,
#   README's timing table).
# - **Time on a GPU**: not measured yet (the profiles `gpu-evo2_1b_base`, `gpu-evo2_7b` and
#   `gpu-evo2_40b` run it).
# - **Model**: `evo2kit-tiny` (bundled, 1.4 M parameters) by default; `evo2_1b_base` (all 25
#   `blocks.{i}.pre_norm`), `evo2_7b` (every block's `mlp.l3`) or `evo2_40b` (11 blocks: every
#   fifth and the last) under those gpu profiles, at 8,192 bp.
#
# A language model reads a DNA sequence one base at a time. Inside, every base becomes a
# vector of numbers (its *embedding*, or *hidden state*) at every layer of the model:
# a sequence of `L` bases gives, at each layer, a matrix of `L x d` numbers (`d` = 96 for the
# small bundled model, 1,920 for Evo 2 1B, 4,096 for Evo 2 7B). These vectors are where the
# model keeps what it has learned about the sequence, and a small classifier trained on them
# (a *probe*, notebook 04) can often predict things the model was never told, such as whether
# a variant breaks BRCA1.
#
# This notebook prepares those features for the 3,893 BRCA1 variants of Findlay et al. (2018):
#
# 1. the variant table, a window of genome around each variant, and **every layer in one pass**,
#    written to an on-disk store that survives interruptions;
# 2. **pooling**: four ways to turn an `L x d` matrix into one vector, side by side;
# 3. a **PCA** picture of the embeddings, coloured by functional class;
# 4. the **cost** of the widely copied recipe that runs the model once per layer, measured
#    against the single pass.

# %% tags=["parameters"]
model_name = "evo2kit-tiny"  # the bundled model; or a published one, e.g. "evo2_7b" (a GPU; see docs/gpu.md)
window = 1024  # bp of genome around each variant (the Evo 2 notebook uses 8,192)
n_variants: int = None  # None: all 3,893 SNVs; a number: a random subset of that size, classes in proportion
layer_ids: list = None  # None: every block; or block indices, e.g. [2, 5, 8, 11]
layer_name = "blocks.{i}.mlp.l3"  # the module read in block i; "blocks.{i}.pre_norm": the community tutorial's
pooling = "mean"  # how the store summarises each window (the community tutorial's choice)
batch_size = 8  # windows per forward pass
n_pooling = 400  # variants in the pooling comparison
window_k = 8  # the at-variant window pooling averages bases -k .. +k around the variant
n_timing = 8  # variants timed with the per-layer recipe
seed = 0

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from evo2kit.analysis import embeddings, probes
from evo2kit.data.brca1 import brca1_windows, stratified_subset
from evo2kit.tutorial.context import context
from evo2kit.tutorial.metrics import record_metrics

run = context(model_name)  # the run's weights, device, dtype, data folder and outputs
torch.manual_seed(seed)
sns.set_theme(style="whitegrid", context="notebook")
model = run.load_model()
print(f"model {model.name} on {model.device}: {model.config.num_layers} blocks, width {model.config.hidden_size}")

# %% [markdown]
# ## 1 · Variants, windows, and every layer in one pass
#
# Findlay et al. edited every possible single-base change into 13 exons of BRCA1 in human
# cells and measured how well the cells survived. Each variant is `FUNC` (functional),
# `INT` (intermediate) or `LOF` (loss of function); as in the Evo 2 notebook we merge the
# first two, so the question is *LOF or not*.
#
# A causal language model only sees sequence, so each variant becomes two windows of
# genome centred on it: the **reference** window and the same window with the one base
# changed (the **variant** window). Neighbouring variants (up to three at each position)
# share their reference window, which is computed once.
#
# Hooks on every layer collect each layer's output during **one** forward pass per batch of
# windows. Batches are padded with the pad token (id 1, not the end-of-sequence id 0) and the
# pooling only averages real bases. `embeddings.brca1_embeddings` keeps the result in an on-disk store,
# one `.npy` file per layer plus a manifest, in a folder named after everything that changes its
# content (model weights, window, variants, layers, pooling, batch size). If the run is
# interrupted, rerunning the same cell computes only the missing batches; other settings get
# another store.

# %%
t0 = time.perf_counter()
emb = embeddings.brca1_embeddings(model, window=window, n_variants=n_variants, seed=seed, layer_ids=layer_ids,
                                  pooling=pooling, batch_size=batch_size, layer_name=layer_name,
                                  store_root=run.output_dir("embeddings"))
extract_s = time.perf_counter() - t0
df, y, windows, layers, feats = emb.variants, emb.is_lof, emb.windows, emb.layers, emb.features
n_windows = len(windows.ref_seqs) + len(windows.var_seqs)
mid = layers[len(layers) // 2]  # a middle layer: the usual best guess before a sweep (notebook 04)
print(f"{len(df):,} SNVs ({y.sum():,} LOF, {(1 - y).sum():,} FUNC/INT) at {df.pos.nunique():,} positions")
print(f"{len(windows.ref_seqs):,} distinct {window:,}-bp reference windows + {len(windows.var_seqs):,} variant windows "
      f"= {n_windows * window / 1e6:.1f} M bases to read")
print(f"{len(layers)} layers ({layers[0]} ... {layers[-1]}) in {extract_s:.0f} s "
      f"({n_windows * window / extract_s:,.0f} bases/s; ~0 s means the store was already complete)\nstore: {emb.store}")
df.head()

# %%
fig, ax = plt.subplots(figsize=(10, 2.5))
sns.stripplot(data=df, x="pos", y="class", hue="class", size=2.5, jitter=0.3, ax=ax, legend=False)
ax.set(xlabel="hg19 position on chromosome 17", ylabel="", title="Where the variants are: 13 exons of BRCA1")
plt.show()

# %%
pd.DataFrame({layer: {"reference": f["ref"].shape, "variant": f["var"].shape} for layer, f in feats.items()}).T.head()

# %% [markdown]
# Each layer gives two `(N, d)` arrays, one row per variant: the pooled reference window
# and the pooled variant window. Notebook 04 reads them back from the store without
# touching the model.

# %% [markdown]
# ## 2 · Pooling: one vector per window
#
# A window of `L` bases gives `L` vectors per layer; a classifier wants one. The choices:
#
# | pooling | vector | what it keeps |
# |---|---|---|
# | mean | average over all `L` bases | the whole window, the variant's base diluted `L`-fold |
# | last | the last base | a causal model's summary of everything before it |
# | at variant | the variant's own base | what the model makes of that base in context |
# | ±k bp | average over the `2k + 1` bases around the variant | the variant and its neighbourhood |
#
# On a subset we compute all four for the middle layer, from one pass (each pooling is a
# weighted sum of the same hidden states), and ask two questions: how far does the single-base
# change move the vector (relative to its length), and how well does a simple
# logistic-regression probe on the change (variant − reference) separate LOF from the rest,
# with folds that never share a position?

# %%
sub = stratified_subset(df, n_pooling, seed=seed).index.to_numpy()
sub_windows = brca1_windows(df.iloc[sub], window)
poolings = {"mean": "mean", "last": "last", "at variant": "position", f"±{window_k} bp": f"window:{window_k}"}
four = embeddings.variant_features(model, sub_windows, [mid], pooling=list(poolings.values()),
                                   batch_size=batch_size)[mid]
pooled = {label: {side: four[side][:, i] for side in ("ref", "var")} for i, label in enumerate(poolings)}

rows, change = [], []
for label, f in pooled.items():
    diff = embeddings.probe_features(f["ref"], f["var"], kind="diff")
    rel = np.linalg.norm(diff, axis=1) / np.linalg.norm(f["ref"], axis=1)
    change.append(pd.DataFrame({"pooling": label, "relative change": rel}))
    auc, lo, hi = probes.grouped_cv_auroc(diff, y[sub], groups=df.pos.to_numpy()[sub], n_folds=3)
    rows.append({"pooling": label, "median relative change": np.median(rel), "AUROC": auc, "CI low": lo, "CI high": hi})
pooling_table = pd.DataFrame(rows).set_index("pooling")
change = pd.concat(change)
pooling_table.round(4)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.boxplot(data=change, x="pooling", y="relative change", ax=axes[0], showfliers=False)
axes[0].set(yscale="log", title=f"How far one base moves the vector ({mid})", xlabel="")
axes[1].errorbar(pooling_table.index, pooling_table["AUROC"],
                 yerr=[pooling_table["AUROC"] - pooling_table["CI low"],
                       pooling_table["CI high"] - pooling_table["AUROC"]],
                 fmt="o", capsize=4)
axes[1].axhline(0.5, color="grey", ls="--", lw=1)
axes[1].set(ylabel="AUROC (LOF), 95% CI", title=f"Logistic probe on variant − reference, n={len(sub)}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Mean pooling barely moves: one changed base among `L` shifts the average by roughly `1/L`
# of its local effect. Pooling at or around the variant keeps the change at full strength.
# Which one feeds the best probe is an empirical question (notebook 04 sweeps layers with the
# store's pooling; set `pooling = "window:8"` here and there to try another).

# %% [markdown]
# ## 3 · A picture: PCA of the embeddings
#
# PCA finds the directions along which the vectors vary most and draws the first two.
# On the left, each variant window's embedding: it mostly records *where in the gene* the
# window is (middle panel: the same points coloured by position). On the right, the
# change caused by the variant (variant − reference), where function, if anywhere, shows up.

# %%
var_emb, ref_emb = np.asarray(feats[mid]["var"]), np.asarray(feats[mid]["ref"])
pca_var, pca_diff = PCA(2, random_state=seed), PCA(2, random_state=seed)
pcs = df[["pos", "class"]].assign(
    **dict(zip(["var PC1", "var PC2"], pca_var.fit_transform(StandardScaler().fit_transform(var_emb)).T)),
    **dict(zip(["diff PC1", "diff PC2"], pca_diff.fit_transform(StandardScaler().fit_transform(var_emb - ref_emb)).T)),
).sort_values("class", ascending=False)  # draw LOF last, on top

fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
style = dict(s=8, linewidth=0, alpha=0.7)
sns.scatterplot(data=pcs, x="var PC1", y="var PC2", hue="class", ax=axes[0], **style)
sns.scatterplot(data=pcs, x="var PC1", y="var PC2", hue="pos", palette="viridis", ax=axes[1], **style)
sns.scatterplot(data=pcs, x="diff PC1", y="diff PC2", hue="class", ax=axes[2], **style)
axes[0].set_title("variant window, by class")
axes[1].set_title("variant window, by position")
axes[1].legend(title="hg19 position", fontsize=7)
axes[2].set_title("variant − reference, by class")
fig.suptitle(f"{model.name}, {mid}, {pooling} pooling, {window:,}-bp windows")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4 · What the per-layer recipe costs
#
# A widely read tutorial extracts 25 layers by running the model 25 times, once per layer,
# on the reference and again on the variant window of every variant: 50 forward passes per
# variant. A forward pass computes every layer anyway; hooks on all of them give everything
# at once, and shared reference windows need computing only once. Below, both ways on the
# first few variants, timed, and checked to give the same numbers.

# %%
tw = brca1_windows(df.head(n_timing), window)
refs_per_variant = [tw.ref_seqs[j] for j in tw.ref_index]
t0 = time.perf_counter()
recipe = embeddings.per_layer_recipe(model, refs_per_variant + list(tw.var_seqs), layers, batch_size)
recipe_s = time.perf_counter() - t0
t0 = time.perf_counter()
ours = embeddings.variant_features(model, tw, layers, pooling="mean", batch_size=batch_size)
ours_s = time.perf_counter() - t0

max_diff = max(np.abs(recipe[layer] - np.concatenate([ours[layer]["ref"], ours[layer]["var"]])).max()
               for layer in layers)
forwards_recipe = len(layers) * 2 * len(tw.var_seqs)
forwards_ours = len(tw.ref_seqs) + len(tw.var_seqs)
speedup = recipe_s / ours_s
print(f"{n_timing} variants, {len(layers)} layers, {window:,}-bp windows:")
print(f"  per-layer recipe: {forwards_recipe} window forwards, {recipe_s:.1f} s")
print(f"  one pass:         {forwards_ours} window forwards, {ours_s:.1f} s   -> {speedup:.1f}x faster")
print(f"  largest difference between the two results: {max_diff:.1e}")
assert max_diff < 1e-3, "the one-pass features should equal the per-layer recipe's"
full_min = recipe_s / forwards_recipe * len(layers) * 2 * len(windows.var_seqs) / 60
print(f"for all {len(df):,} variants here: recipe ~{full_min:,.0f} min, one pass ~{full_min / speedup:,.0f} min")

# %% [markdown]
# The two give the same vectors; the single pass does it with `2 x layers` times fewer
# window forwards (fewer still where variants share a reference window). On Evo 2 7B with
# 8,192-bp windows, that is the difference between days and hours of GPU time.

# %%
record_metrics("02_embeddings", {
    "n_variants": len(df),
    "n_layers": len(layers),
    "n_reference_windows": len(windows.ref_seqs),
    "per_layer_recipe_s": recipe_s,
    "one_pass_s": ours_s,
    "speedup_one_pass": speedup,
    "forwards_ratio": forwards_recipe / forwards_ours,
    "recipe_max_abs_diff": max_diff,
    **{f"pooling_auroc_{p}": pooling_table.loc[label, "AUROC"] for label, p in
       zip(poolings, ["mean", "last", "position", "window"])},
    **{f"pooling_rel_change_{p}": pooling_table.loc[label, "median relative change"] for label, p in
       zip(poolings, ["mean", "last", "position", "window"])},
    "pca_var_pc1_explained": pca_var.explained_variance_ratio_[0],
})

# %% [markdown]
# ## What these numbers mean
#
# The figures below are from the `cpu` profile run at seed 0 (all 3,893 SNVs, 512-bp windows,
# 200 variants in the pooling comparison, middle layer `blocks.6.mlp.l3`); the `smoke` profile
# uses fewer variants and layers, so read your own run's printed values beside them.
#
# - **The store**: 3,893 SNVs (823 LOF) at 1,326 positions need 1,326 reference windows and
#   3,893 variant windows, and one pass gives all 12 layers of `evo2kit-tiny`. On a published
#   Evo 2 under the gpu profiles the counts are the same at 8,192 bp; only the width of each
#   vector changes (1,920 numbers for the 1B, 4,096 for the 7B).
# - **Pooling**: one changed base among 512 moves the mean-pooled vector by 0.7% of its length
#   (median) and the vector at the variant's own base by 84%. The logistic probes on the change
#   reach AUROC 0.49 [0.39, 0.59] (mean), 0.56 [0.47, 0.66] (last base), 0.45 [0.35, 0.55] (at
#   the variant) and 0.53 [0.43, 0.63] (±8 bp): every interval holds 0.5, so on `evo2kit-tiny`
#   no pooling gives a linear probe on 200 variants a signal for loss of function, and the
#   differences between them are not findings. The question this table asks is worth asking
#   again on an Evo 2 checkpoint, where a signal exists (notebook 03's published AUROCs); at
#   8,192 bp the variant's base is one of 8,192 in a mean instead of one of 512.
# - **PCA**: the first component holds 52% of the variance of the variant-window embeddings
#   (`cpu` and `smoke` runs). The points fall in bands ordered by position in the gene (middle
#   panel) with LOF variants spread through them, and the variant − reference panel shows no
#   region of its own for LOF: a probe on these vectors can learn *where* a variant is, which is
#   why notebook 04 also splits by position.
# - **Cost**: the one pass equals the per-layer recipe to float rounding (largest difference
#   4.8e-06) with 11 window forwards instead of 192 for the 8 timed variants (12 layers x
#   reference and variant). The wall-clock speed-up is a timing of this machine: read the
#   printed value. In the `cpu` run here, made with other jobs on the same 2 cores, it was only
#   2.5x; in the `smoke` run (4 layers, 4 times fewer forwards) 4.2x. For the 1B's 25 layers
#   the recipe runs 50 forwards per variant (194,650 for the 3,893 SNVs) where one pass runs
#   5,219.

# %% [markdown]
# ## Exercises
#
# 1. Set `window = 2048` (the length `evo2kit-tiny` was trained on) and rerun. Compare the
#    pooling table with the one above: how does the median relative change of mean pooling move
#    when `L` grows 4-fold, and that of pooling at the variant? Did any AUROC interval stop
#    holding 0.5? (A new store is computed; notebook 04 reads this `window` by name.)
# 2. Set `window_k = 2`, then `window_k = 64`, and rerun section 2. Where does "±k bp" pooling
#    fall between "at variant" and "mean", in relative change and in AUROC?
# 3. Set `n_pooling = 800` and rerun section 2. How much narrower are the AUROC intervals than
#    with 200 variants? With four times the variants, expect them about half as wide
#    (the width shrinks with the square root of the number of variants).
