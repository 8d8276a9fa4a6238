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
# # 01 · Loading a model, tokens, layers, scoring and generating
#
# **You will learn**
#
# - how to load the bundled model or a published Evo 2, and what the loader reports;
# - how DNA becomes tokens (one base, one token; ids 0 and 1 are special), and why padding is
#   safe where packing is not;
# - why Evo 2 reads single bases rather than byte-pair-encoded chunks;
# - what a layer name such as `blocks.28.mlp.l3` points at;
# - how a sequence is scored (nats per base) and how new sequence is generated.
#
# **Time and model**
#
# - **Time on 2 CPU cores**: 27 s (profile `cpu`, `make tutorial`; measured at d7d4b12, README's
#   timing table).
# - **Time on a GPU**: not measured yet (the profiles `gpu-evo2_1b_base`, `gpu-evo2_7b` and
#   `gpu-evo2_40b` run it).
# - **Model**: `evo2kit-tiny` (bundled, 1.4 M parameters) by default; `evo2_1b_base`, `evo2_7b` or
#   `evo2_40b` under those gpu profiles, which also load it through the official `evo2` package
#   when it is installed (`official_model`); `evo2_40b` served by NVIDIA under the profile
#   `nim-evo2_40b` (experimental, no GPU needed: docs/nim.md).
#
# A DNA language model reads a sequence one base at a time and, at every position, predicts the
# next base. Everything in these tutorials rests on that one ability: a **score** (how expected is
# this sequence?), **embeddings** (the model's internal numbers at each position, useful as
# features) and **generation** (sampling the next base again and again). This notebook loads a
# model, shows how DNA becomes numbers (tokens), how batches of unequal length are handled, what
# the layer names mean, and ends by scoring and generating sequence.

# %% tags=["parameters"]
model_name = "evo2kit-tiny"  # the bundled model; or a published one, e.g. "evo2_7b" (a GPU; see docs/gpu.md)
official_model: str = None  # a published Evo 2 to load through both backends (section 1), e.g. "evo2_7b"
official_weights: str = None  # its official checkpoint (.pt); None: the Hugging Face Hub cache. Both need a GPU
window = 8192  # bp of the BRCA1 window used for scoring and tokenizer comparisons
bpe_train_bp = 1_000_000  # bp of chr20 to train the BPE tokenizer on
bpe_vocab_size = 4096
n_generate = 300  # bases to generate
seed = 0

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

import evo2kit
from evo2kit.data import fasta, registry
from evo2kit.data.brca1 import brca1_windows, load_brca1
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2
from evo2kit.tutorial.context import context
from evo2kit.tutorial.metrics import record_metrics

torch.manual_seed(seed)
run = context(model_name)  # the run's weights, device, dtype, data folder and outputs

# %% [markdown]
# ## 1 · Load the bundled model
#
# `evo2kit.load_model()` reads the bundled weights, checks their SHA-256 against the shipped one
# (a damaged file fails loudly) and returns an object shaped like the official `evo2.Evo2`.

# %%
model = run.load_model()
print(f"{model.name}: {model.model.num_params():,} parameters on {model.device}, weights sha256 {model.weights_sha256}")
shown = ("hidden_size", "num_layers", "hcs_layer_idxs", "hcm_layer_idxs", "hcl_layer_idxs", "attn_layer_idxs",
         "max_seqlen")
print({k: v for k, v in model.config.to_dict().items() if k in shown})
report = model.load_report  # for an official checkpoint: what the loader dropped, permuted, converted
if report is not None:
    print(report)

# %% [markdown]
# ### The official Evo 2, through both backends
#
# The same call loads an official checkpoint into evo2kit's own PyTorch code
# (`evo2kit.load_model("evo2_7b", local_path="evo2_7b.pt")`, the **torch** backend, any machine
# with enough memory), and `backend="vortex"` hands over to the official `evo2` package (CUDA and
# its compiled kernels needed). Without `local_path` both get the checkpoint from the Hugging Face
# Hub as `evo2` does (the same cache, so one download serves both). When a GPU and `official_model`
# are given we load both and score the same sequence with each: the two numbers should agree to a
# few decimals (bfloat16 rounding). When `official_model` is the model loaded above, that one is
# scored rather than loaded twice.
# Evo 2 1B, 20B and 40B were trained with FP8 input projections: the torch backend runs them
# without Transformer Engine (`fp8="auto"`: PyTorch's FP8 matrix multiply on GPUs that have it,
# an exact emulation elsewhere), and its load report says what the loader dropped, permuted,
# converted and which FP8 scales it read.

# %%
probe = "ATGGATTTATCTGCTCTTCGCGTTGAAGAAGTACAAAATGTCATTAATGCTATGCAGAAAATCTTAGAGTGTCCCATCTG" * 8
if not torch.cuda.is_available():
    print("skipped: no CUDA GPU here, so no official Evo 2 model is loaded (neither backend); "
          f"the rest of this notebook uses {model.name}.")
elif not official_model:
    print("skipped: set official_model (e.g. 'evo2_7b'; official_weights: its .pt, else the Hub's) to load "
          "an official Evo 2 through both backends.")
else:
    backend_scores = {}
    for backend in ("torch", "vortex"):
        try:
            t0 = time.time()
            official = model if backend == "torch" and official_model == model_name else evo2kit.load_model(
                official_model, local_path=official_weights or None, backend=backend)
            if backend == "torch":
                print(official.load_report)
            backend_scores[backend] = official.score_sequences([probe])[0]
            print(f"{backend} backend: {official_model} loaded and scored in {time.time() - t0:.0f}s: "
                  f"{backend_scores[backend]:.4f} nats/base")
            del official
            torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 (show why a backend is unavailable, then go on)
            print(f"{backend} backend skipped: {type(e).__name__}: {e}")
    if len(backend_scores) == 2:
        print(f"torch - vortex: {backend_scores['torch'] - backend_scores['vortex']:+.4f} nats/base")

# %% [markdown]
# ## 2 · The tokenizer: one base, one token
#
# Evo 2 reads raw bytes: each letter's token id is its ASCII code (A=65, C=67, G=71, T=84).
# Two ids never come from a letter: **0 = end of sequence (EOS/EOD)** and **1 = padding**.
# Lower-case (soft-masked repeats in many genome files) is upper-cased, because the model was
# trained on upper case. `N` (unknown base) is a valid letter with its own id; anything that is not
# a DNA letter is refused with an error naming the character and position.

# %%
tok = model.tokenizer
print("ACGTN ->", tok.tokenize("ACGTN"))
print("acgt  ->", tok.tokenize("acgt"), "(upper-cased)")
print("eos/eod id:", tok.eod_id, " pad id:", tok.pad_id)
print("round trip:", tok.detokenize(tok.tokenize("GATTACA")))
try:
    tok.tokenize("ACGU-T", name="my read")
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## 3 · Batches of unequal length: padding with masks, or packing
#
# Sequences in a batch must have one length. **Padding** appends the pad id (1, never 0: 0 means
# "end of sequence" to the model) and keeps a mask of the real positions. Evo 2 is causal (position
# *t* sees only positions before it), so padding on the right cannot change the real positions'
# outputs; but any average over positions (mean-pooled embeddings, mean log-likelihood) must skip
# the padding. **Packing** instead concatenates sequences, separated by the EOS id, into one row:
# no wasted compute, but later sequences see earlier ones as context, so their outputs change.

# %%
_, region = fasta.read_fasta_first(registry.fetch("brca1_hg19_region"))
seqs = [region[10_000:10_600], region[20_000:20_300], region[30_000:30_450]]
ids, lengths = tok.encode_batch(seqs)
mask = tok.attention_mask(lengths, ids.shape[1])
print("batch", tuple(ids.shape), "lengths", lengths.tolist(), "pad ids per row", (ids == tok.pad_id).sum(1).tolist())

layer = model.layer_names[len(model.layer_names) // 2]
_, emb = model(ids, return_embeddings=True, layer_names=[layer])
padded = emb[layer].float().cpu()  # (B, L, d)
alone = [model(torch.tensor([tok.tokenize(s)]), return_embeddings=True, layer_names=[layer])[1][layer][0].float().cpu()
         for s in seqs]
pad_diff = max(float((padded[i, :n] - alone[i]).abs().max()) for i, n in enumerate(lengths.tolist()))
print(f"padded batch vs one at a time, real positions: max |difference| = {pad_diff:.2e}")

m = mask[..., None].float()
masked_mean = (padded * m).sum(1) / m.sum(1)
naive_mean = padded.mean(1)  # wrong: averages the padding in
true_mean = torch.stack([a.mean(0) for a in alone])
print(f"mean pooling error: with mask {float((masked_mean - true_mean).abs().max()):.2e}, "
      f"without mask {float((naive_mean - true_mean).abs().max()):.2e}")

pack_diff = None
if getattr(model, "takes_token_ids", True):  # a served model (backend nim) takes DNA letters, not the EOS id
    packed = torch.tensor([sum(([*tok.tokenize(s), tok.eod_id] for s in seqs), [])])
    packed_emb = model(packed, return_embeddings=True, layer_names=[layer])[1][layer][0].float().cpu()
    second = packed_emb[lengths[0] + 1: lengths[0] + 1 + lengths[1]]
    pack_diff = float((second - alone[1]).abs().max())
    print(f"packed: sequence 2 after sequence 1 vs alone: max |difference| = {pack_diff:.2e} "
          "(context leaks across EOS)")
else:
    print(f"packing skipped: {model.name} is served ({run.backend} backend), and the service takes DNA letters only")

# %% [markdown]
# ## 4 · Characters vs byte-pair encoding (BPE)
#
# Models such as DNABERT-2 merge frequent strings of bases into single tokens (byte-pair encoding),
# so a sequence takes ~5x fewer tokens. The price: where the token boundaries fall depends on the
# whole neighbourhood, so a single-base change can re-cut several tokens, and the model never sees
# "this base changed" directly. We train a small BPE tokenizer on a slice of chromosome 20
# (which the bundled model was trained on) and compare.

# %%
_, chr20 = fasta.read_fasta_first(registry.fetch("hg19_chr20"))
start = 10_000_000  # well inside the chromosome, away from the N-filled telomere
train_text = chr20[start:start + bpe_train_bp].upper()
chunks = [train_text[i:i + 10_000] for i in range(0, len(train_text), 10_000)]
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.Whitespace()
bpe.train_from_iterator(chunks, trainers.BpeTrainer(vocab_size=bpe_vocab_size, show_progress=False))
del chr20

brca1 = load_brca1()
ref_seqs, var_seqs, ref_index = brca1_windows(brca1.iloc[:1], window)
ref_w, var_w = ref_seqs[0], var_seqs[0]
ref_bpe, var_bpe = bpe.encode(ref_w), bpe.encode(var_w)
bases_per_token = len(ref_w) / len(ref_bpe.ids)
print(f"{window}-bp window: {len(tok.tokenize(ref_w))} character tokens, {len(ref_bpe.ids)} BPE tokens "
      f"({bases_per_token:.1f} bases per BPE token)")

# Which BPE tokens differ between reference and variant?
a, b = ref_bpe.tokens, var_bpe.tokens
lo = next(i for i in range(min(len(a), len(b))) if a[i] != b[i])
hi = next(i for i in range(1, min(len(a), len(b))) if a[-i] != b[-i])
print(f"SNV {brca1.ref.iloc[0]}>{brca1.alt.iloc[0]} at index {window // 2}: "
      f"{len(a) - hi - lo + 1} reference BPE token(s) become {len(b) - hi - lo + 1} different one(s)")
print("  reference:", a[max(0, lo - 2): len(a) - hi + 3])
print("  variant:  ", b[max(0, lo - 2): len(b) - hi + 3])
lengths_bpe = [len(t) for t in ref_bpe.tokens]
plt.figure(figsize=(5, 3))
plt.hist(lengths_bpe, bins=range(1, max(lengths_bpe) + 2))
plt.xlabel("bases per BPE token")
plt.ylabel("tokens in the window")
plt.title("BPE token lengths (character-level: always 1)")
plt.show()

# %% [markdown]
# ## 5 · Layer names: where embeddings come from
#
# A model is a stack of **blocks**; each block mixes information along the sequence (a Hyena
# convolution, short `hcs`, medium `hcm` or long `hcl`, or attention `attn`) and then transforms
# each position on its own with a small MLP whose last linear layer is `mlp.l3`. So
# `blocks.28.mlp.l3` (the layer the Evo 2 README extracts from the 7B model) is the MLP output of
# block 28 of 32, before it is added back into the running sum of block outputs (the residual
# stream). Our model has 12 blocks; its `blocks.6.mlp.l3` sits at the same relative depth.
# Intermediate layers usually make the best features: sweep them (notebook 02).

# %%
cfg7 = Evo2Config.published("evo2_7b")
with torch.device("meta"):
    m7 = StripedHyena2(cfg7)  # shapes only, no memory
print(f"evo2_7b: {cfg7.num_layers} blocks, hidden {cfg7.hidden_size}; block 28 is '{cfg7.block_kind(28)}'; "
      f"mlp.l3 weight {tuple(m7.get_submodule('blocks.28.mlp.l3').weight.shape)} (out, in)")
print(f"{model.name}: {model.config.num_layers} blocks, hidden {model.config.hidden_size}")
print(pd.DataFrame({"block": range(model.config.num_layers),
                    "kind": [model.config.block_kind(i) for i in range(model.config.num_layers)],
                    "layer name": model.layer_names}).to_string(index=False))
print("submodules of one block:", [n for n, _ in model.model.blocks[0].named_modules() if n])

# %% [markdown]
# ## 6 · Scoring a sequence
#
# The score is the mean log-likelihood per base (natural log): the average over positions of
# log P(true next base | everything before). A uniform guess over A/C/G/T gives ln(1/4) = -1.386;
# a model that learned something about DNA does better on real sequence than on the same bases
# shuffled (same composition, no structure).

# %%
rng = np.random.default_rng(seed)
shuffled = "".join(rng.permutation(list(ref_w)))
real_score, shuffled_score = model.score_sequences([ref_w, shuffled], batch_size=2)
print(f"BRCA1 window: {real_score:.4f} nats/base; shuffled: {shuffled_score:.4f}; uniform: {np.log(0.25):.4f}")

# %% [markdown]
# ## 7 · Generating sequence
#
# Generation repeats "predict the next base, sample it, append it". `top_k` limits sampling to the
# k most likely bases, `temperature` sharpens (<1) or flattens (>1) the distribution.

# %%
prompt = region[50_000:51_000]
t0 = time.time()
gen = model.generate([prompt], n_tokens=n_generate, temperature=1.0, top_k=4, seed=seed)
new = gen.sequences[0]
print(f"{len(new)} bases in {time.time() - t0:.1f}s, mean log-prob {gen.logprobs_mean[0]:.3f}")
print(new)
gc_generated = (new.count("G") + new.count("C")) / len(new)
gc_prompt = (prompt.count("G") + prompt.count("C")) / len(prompt)
print(f"GC content: prompt {gc_prompt:.2f}, generated {gc_generated:.2f}")

# %% [markdown]
# ## 8 · Is my model right?
#
# A model can load, run and still be wrong. The Evo 2 1B, 20B and 40B were trained with FP8 input
# projections: without them, or on hardware that rounds them differently, they still produce
# logits, just worse ones (20-30% next-token accuracy instead of ~80-92%, ArcInstitute/evo2 issues
# #132 and #157). Evo 2's repository ships its own check, `evo2/test/test_evo2.py`: four sequences
# (the human L1RE2 retrotransposon, the E. coli lac region, a mammoth and a human mitochondrion;
# 6-7.6 kb) go through the model, and the mean next-token cross-entropy (natural log) and argmax
# accuracy are compared with the values published for that checkpoint, to 1e-3 on the loss.
# `evo2kit.self_test(model)` runs it the same way and says in one sentence whether the model
# matches and, if not, what usually causes that for this checkpoint;
# `evo2kit.load_model(..., self_test=True)` does it at load time and warns on a mismatch.
# `evo2kit-tiny` is not Evo 2: its reference is its own values, recorded here in float32 on CPU
# (loss 1.3587, accuracy 32.666%: near chance, as these sequences, bar L1RE2, are far from the
# human chromosomes it was trained on). The random-weight rehearsal model has no reference.

# %%
check = evo2kit.self_test(model)
print(check)
print(f"{sum(check.lengths):,} bases in {check.seconds:.1f}s")
check.table().round(4)

# %%
record_metrics("01_loading", {
    "padding_max_abs_diff": pad_diff,
    **({"packing_max_abs_diff": pack_diff} if pack_diff is not None else {}),
    "bpe_bases_per_token": bases_per_token,
    "score_real_nats": real_score,
    "score_real_minus_shuffled": real_score - shuffled_score,
    "generated_bases": len(new),
    "generated_gc": gc_generated,
    "self_test_loss": check.loss,
    "self_test_accuracy": check.accuracy,
    "self_test_seconds": check.seconds,
    **({"load_dropped_keys": len(report.dropped), "load_permuted_wqkv": len(report.permuted_wqkv),
        "load_converted_tensors": sum(report.converted.values()), "load_fp8_blocks": len(report.fp8_scales)}
       if report is not None else {}),
})

# %% [markdown]
# ## What these numbers mean
#
# - **Padding** changes nothing on the real positions of a causal model: the difference is float
#   rounding (2.9e-06 in the `cpu` and `smoke` runs here), so batches of unequal length are safe
#   as long as averages skip the padding (the mean pooled without the mask is off by 0.82 in the
#   `cpu` run). **Packing** changes the later sequences (a difference of 2.8 on `evo2kit-tiny`):
#   use it only where context from the previous sequence is wanted.
# - **BPE** packs several bases into a token (5.2 per token in the `cpu` profile, with a
#   vocabulary of 4,096 trained on 1 Mbp of chr20; 4.3 in `smoke`, 1,024 on 200 kbp), and one
#   changed base re-cuts the tokens around it: the reason Evo 2 reads single bases.
# - **Scores**: on `evo2kit-tiny` the BRCA1 window scores -1.05 nats/base in the `cpu` run
#   (8,192 bp; -1.07 in `smoke`, 2,048 bp), above the uniform -1.386, and its own bases shuffled
#   score -1.43, below uniform: the model has learnt local structure of DNA beyond composition,
#   and where that structure is missing its predictions are worse than a uniform guess. That is
#   not the same as knowing what a variant does (notebook 03). On an Evo 2 checkpoint the same
#   cells give that model's numbers; compare them with the shuffled baseline, not with each other
#   across windows.
# - **Generation** shows the mechanics (sampling, `top_k`, `temperature`). In the `cpu` run the
#   300 generated bases have a GC content of 0.49 against the prompt's 0.44. A GC content far from
#   the prompt's would show a model that has not even learnt composition; a close one says
#   little about whether the sequence would function.

# %% [markdown]
# ## Exercises
#
# 1. Set `window = 2048` (the length `evo2kit-tiny` was trained on), then `window = 512`, and
#    rerun sections 4 and 6. How do the real and the shuffled scores, and their difference, move
#    with the window? The shuffled score is your baseline at each length.
# 2. Set `bpe_vocab_size = 512`, then `16384`, and rerun section 4. Look at the bases per BPE
#    token and at how many tokens the single SNV re-cuts: which vocabulary would hide a variant
#    from a model more?
# 3. Generate from the same prompt at another temperature:
#    `model.generate([prompt], n_tokens=n_generate, temperature=0.5, top_k=4, seed=seed)`, then
#    `temperature=1.5`. Compare `logprobs_mean`, the GC content and the sequence itself: at low
#    temperature look for runs and short repeats, at high temperature for sequence that looks
#    random.
