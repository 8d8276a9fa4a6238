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
# # 00 · Setup: what this machine has, which data are here, which models fit
#
# **You will learn**
#
# - which software versions to write down beside any result you report;
# - how every dataset is fetched and checked against its SHA-256 hash before it is used;
# - how many parameters each Evo 2 size has, and whether it fits this machine's memory;
# - what the bundled teaching model `evo2kit-tiny` is (its model card).
#
# **Time and model**
#
# - **Time on 2 CPU cores**: 9 s (profile `cpu`, `make tutorial`; measured at d7d4b12, README's
#   timing table).
# - **Time on a GPU**: not measured yet (the profiles `gpu-evo2_1b_base`, `gpu-evo2_7b` and
#   `gpu-evo2_40b` run it).
# - **Model**: none is loaded: it counts the parameters of the models in `models` (`evo2kit-tiny`
#   and the published `evo2_1b_base`, `evo2_7b`, `evo2_40b`), the same under every profile.
#
# Before any biology, three questions decide what the rest of the tutorials can do here:
#
# 1. **Software**: which Python, PyTorch and library versions run this notebook (write them down
#    with any result you report: numbers move between versions).
# 2. **Data**: every dataset the tutorials use is fetched (from `$EVO2KIT_DATA_DIR`, the cache, or
#    its public source) and checked against a SHA-256 hash, so a truncated download or a different
#    genome build cannot silently change a result.
# 3. **Models**: a DNA language model is a few million (our bundled teaching model) to forty billion
#    (the largest Evo 2) numbers. We count them for each size and compare with the memory at hand.

# %% tags=["parameters"]
download = True  # fetch missing datasets from their public source (False: only report them)
activation_margin = 0.25  # memory for activations on top of the weights, as a fraction of the weights
models = ["evo2kit-tiny", "evo2_1b_base", "evo2_7b", "evo2_40b"]  # model sizes to check
write_rehearsal = False  # profile official-format: write a random-weight checkpoint in the official layout
need_exonerate = False  # gpu profiles: notebook 09's eukaryote panel splices with exonerate, which must be installed

# %%
import importlib.metadata as md
import os
import platform

import pandas as pd
import torch
from IPython.display import Markdown, display

from evo2kit.analysis.gene_completion import find_exonerate
from evo2kit.api import WEIGHTS_DIR
from evo2kit.checkpoints import rehearsal
from evo2kit.data import registry
from evo2kit.tutorial.context import context
from evo2kit.tutorial.metrics import record_metrics
from evo2kit.tutorial.resources import parameter_count, system_memory_bytes

run = context()  # the run's settings: data folder, device, where outputs go (evo2kit.tutorial.context)
print("data folder:", run.data_dir or "(none: $EVO2KIT_DATA_DIR is not set; the cache, then a download)")

# %% [markdown]
# ## 1 · Software versions

# %%
packages = ["evo2kit", "torch", "numpy", "pandas", "scikit-learn", "tokenizers", "papermill", "jupytext"]
versions = {"python": platform.python_version()} | {p: md.version(p) for p in packages}
display(pd.Series(versions, name="version").to_frame())
if need_exonerate:  # a program, not a Python package: FileNotFoundError with how to install it when missing
    print("exonerate:", find_exonerate())

# %% [markdown]
# ## 2 · Hardware
#
# The GPU, if any, decides which Evo 2 models can run at all; the CPU count and memory decide how
# fast the bundled model runs. `torch.get_num_threads()` is how many cores PyTorch will use.

# %%
ram_total, ram_available = system_memory_bytes()
gpu = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None
hardware = {
    "platform": platform.platform(),
    "cpu cores (os)": os.cpu_count(),
    "torch threads": torch.get_num_threads(),
    "RAM total (GiB)": round(ram_total / 2**30, 1),
    "RAM available (GiB)": round(ram_available / 2**30, 1),
    "GPU": gpu.name if gpu else "none (CPU only)",
    "GPU memory (GiB)": round(gpu.total_memory / 2**30, 1) if gpu else 0,
}
display(pd.Series(hardware, name="value").to_frame())

# %% [markdown]
# ## 3 · Datasets: fetch and verify
#
# `evo2kit.data.registry.DATASETS` lists every file the tutorials (and training the bundled model) use, with its
# source and hash. `fetch(name)`
# returns a verified local copy (looking in `$EVO2KIT_DATA_DIR`, then the cache, then downloading);
# a file whose hash does not match raises an error instead of being used.

# %%
rows = []
for name, ds in registry.DATASETS.items():
    try:
        path = registry.fetch(name, download=download)
        rows.append({"dataset": name, "status": "verified", "MB": round(path.stat().st_size / 1e6, 1),
                     "path": str(path)})
    except FileNotFoundError as e:
        rows.append({"dataset": name, "status": "missing", "MB": None, "path": str(e).splitlines()[0]})
datasets = pd.DataFrame(rows)
display(datasets)
n_verified = int((datasets["status"] == "verified").sum())
print(f"{n_verified} of {len(datasets)} datasets verified")

# %% [markdown]
# ## 4 · Which model sizes fit here?
#
# `parameter_count` builds each architecture on PyTorch's `meta` device: the layers exist with their shapes but no
# memory behind them, so even the 40B model is counted in a fraction of a second. For inference the
# weights are stored in bfloat16 (2 bytes per number; our small model uses float32, 4 bytes), and the
# activations need room on top (`activation_margin`, more for long sequences, see notebook 05).
# The memory to compare with is the GPU's when there is one, else the free RAM.

# %%
budget = gpu.total_memory if gpu else ram_available
fit_rows = []
for name in models:
    n = parameter_count(name)
    bytes_per = 4 if name == "evo2kit-tiny" else 2
    need = n * bytes_per * (1 + activation_margin)
    fit_rows.append({"model": name, "parameters": f"{n / 1e9:.3f} B" if n > 1e8 else f"{n / 1e6:.2f} M",
                     "weights dtype": "float32" if bytes_per == 4 else "bfloat16",
                     "needed (GiB)": round(need / 2**30, 2), "fits": need < budget})
fits = pd.DataFrame(fit_rows)
print(f"memory budget: {budget / 2**30:.1f} GiB of {'GPU' if gpu else 'free RAM'}")
display(fits)

# %% [markdown]
# Official Evo 2 checkpoints also need a CUDA GPU with the `evo2` package (and, for the FP8 layers
# of the 40B and 1B models, a Hopper-class GPU); on a CPU they can only be counted, not run. The
# tutorials therefore use the bundled **evo2kit-tiny**, the same architecture shrunk to ~1.4 M
# parameters and trained on human chr20 and chrX.

# %% [markdown]
# ## 5 · The bundled model's card

# %%
card = WEIGHTS_DIR / "MODEL_CARD.md"
if card.is_file():
    display(Markdown(card.read_text()))
else:
    print(f"no model card at {card}")

# %% [markdown]
# ## 6. (Profile `official-format` only) A checkpoint in the official layout
#
# The gpu profiles load a published checkpoint: `load_model("evo2_1b_base", local_path=...)`
# reads a `.pt` state dict with FP8 metadata, column-split attention weights and, for the 40B,
# a file split in parts. To run that code before anyone has the weights, the `official-format`
# profile writes a small random-weight checkpoint in exactly that layout here, and the later
# notebooks load it the same way. Its model has learnt nothing: its AUROCs are chance.

# %%
rehearsal_files = {}
if write_rehearsal:
    yml, pt = rehearsal.write_checkpoint(run.output_dir("checkpoint"))
    parts = sorted(pt.parent.glob(pt.name + ".part*"))
    print(f"{yml}\n" + "\n".join(f"{p} ({p.stat().st_size / 1e6:.2f} MB)" for p in parts))
    rehearsal_files = {"rehearsal_parts": len(parts), "rehearsal_params_millions": parameter_count(str(yml)) / 1e6}

# %%
tiny_params = parameter_count("evo2kit-tiny")
record_metrics("00_setup", {
    **rehearsal_files,
    "datasets_verified": n_verified,
    "datasets_total": len(datasets),
    "tiny_params_millions": tiny_params / 1e6,
    "evo2_7b_params_billions": parameter_count("evo2_7b") / 1e9,
    "evo2_40b_params_billions": parameter_count("evo2_40b") / 1e9,
})

# %% [markdown]
# ## What these numbers mean
#
# - **Datasets**: the later notebooks read them (two annotation tables serve only to train the
#   bundled model); 8 of 8 were verified in the `smoke` and `cpu` runs here. A dataset reported
#   missing stops the notebook that needs it (with the file name and where to get it), and a
#   verified one is byte-for-byte the file the expected results were measured on.
# - **Parameter counts** are exact for each architecture (they do not depend on this machine):
#   1.40 M for `evo2kit-tiny`, 1.108 B for Evo 2 1B, 6.58 B for Evo 2 7B, 41.1 B for Evo 2 40B.
# - **Fits** compares weights plus `activation_margin` with this machine's memory: a lower bound
#   on what a run needs (long sequences need more, notebook 05). "Fits" means the weights can be
#   held, not that the model runs at a useful speed: on a machine without a GPU only the bundled
#   model does, which is why the `smoke` and `cpu` profiles use it; the published models run
#   under the gpu profiles, where the memory compared is the GPU's.

# %% [markdown]
# ## Exercises
#
# 1. Add `"evo2_20b"` and `"evo2_7b_base"` to `models` and rerun section 4. Where does the 20B
#    fall between the 7B and the 40B? `evo2_7b_base` (8,192-bp context) and `evo2_7b` (1 Mbp) do
#    not have the same count: compare `Evo2Config.published("evo2_7b_base").to_dict()` with
#    `Evo2Config.published("evo2_7b").to_dict()` (`from evo2kit.model.striped_hyena import
#    Evo2Config`) to find which setting differs.
# 2. Set `activation_margin = 1.0` (activations as large as the weights, closer to a long
#    sequence than 0.25) and rerun section 4. Which models stop fitting? Notebook 05 measures how
#    the activation memory of `evo2kit-tiny` grows with length.
# 3. Call `registry.verify_all()`: it hashes every local file again instead of trusting the memo
#    of earlier checks. Compare its time with section 3's, and look at
#    `registry.DATASETS["brca1_sge"]`: its `url`, `sha256` and `description` are what you cite as
#    the data's provenance.
