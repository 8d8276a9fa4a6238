"""``load_model``: the public entry point, shaped like ``evo2.Evo2``.

    model = evo2kit.load_model()                      # the bundled evo2kit-tiny, offline
    ids = torch.tensor([model.tokenizer.tokenize("ACGT...")])
    (logits, _), emb = model(ids, return_embeddings=True, layer_names=["blocks.3.mlp.l3"])
    model.score_sequences(["ACGT...", ...])           # mean log-likelihood per sequence

As in ``evo2.Evo2``, ``forward`` returns ``(outputs, embeddings)`` with ``outputs[0]`` the logits
(B, L, 512), so code written for Evo 2 runs unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import torch

from evo2kit.checkpoints import self_test as self_testing  # the module: load_model's flag shares the name
from evo2kit.checkpoints.nim import HOSTED_URLS, NimClient
from evo2kit.checkpoints.nim_model import NimModel
from evo2kit.checkpoints.official import (
    PUBLISHED_CHECKPOINTS,
    LoadReport,
    checkpoint_files,
    checkpoint_layout,
    load_official_state_dict,
    load_pretrained,
    model_from_state_dict,
    read_checkpoint,
)
from evo2kit.files import sha256_file
from evo2kit.model.fp8 import FP8Linear, backend_for
from evo2kit.model.sampling import SamplingSettings, sample_tokens
from evo2kit.model.striped_hyena import PUBLISHED_CONFIGS, Evo2Config, StripedHyena2, plan_block_devices
from evo2kit.model.tokenizer import CharLevelTokenizer, reverse_complement, sequence_list

WEIGHTS_DIR = Path(__file__).with_name("weights")
BUNDLED = {"evo2kit-tiny": WEIGHTS_DIR / "evo2kit-tiny.safetensors"}


class Evo2Output(NamedTuple):
    """``outputs[0]`` is the logits (B, L, vocab), as with vortex's ``(logits, inference_params)``."""

    logits: torch.Tensor
    inference_params: Any = None


@dataclass
class GenerationOutput:
    """``sequences[i * n_samples + j]``: sample j of prompt i (generated bases only); ``logprobs_mean``
    likewise; ``seed``: the seed of the draws (pass it again to get the same samples)."""

    sequences: list[str]
    logprobs_mean: list[float]
    seed: int
    n_samples: int = 1


class Evo2Model:
    """A StripedHyena 2 module with its tokenizer; the ``evo2.Evo2`` interface plus chunked,
    stateful extras (``chunk_size``, ``embed_long``)."""

    def __init__(self, model: StripedHyena2, name: str, weights_sha256: str | None = None):
        self.model = model.eval()
        self.tokenizer = CharLevelTokenizer(512)
        self.name = name
        self.weights_sha256 = weights_sha256
        self.self_test_result: self_testing.SelfTestResult | None = None  # set by load_model(..., self_test=True)

    @property
    def config(self) -> Evo2Config:
        return self.model.config

    @property
    def load_report(self) -> LoadReport | None:
        """What loading an official checkpoint dropped, permuted, converted (None otherwise)."""
        return getattr(self.model, "load_report", None)

    @property
    def device(self) -> torch.device:
        return self.model.embedding_layer.weight.device

    @property
    def layer_names(self) -> list[str]:
        """Names of the per-block outputs one usually extracts, e.g. 'blocks.3.mlp.l3'."""
        return [f"blocks.{i}.mlp.l3" for i in range(self.config.num_layers)]

    def digest(self) -> str:
        """Hex SHA-256 naming these weights: that of the weights file it was loaded from, or for a
        model without one (random weights) a SHA-256 over the state dict's names and tensor bytes.
        Caches and stores key their content by it."""
        if self.weights_sha256:
            return self.weights_sha256
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def tensors_digest(self) -> str:
        """Hex SHA-256 of the tensors the model holds now (names, dtypes, shapes and bytes), whatever
        file they came from: unlike :meth:`digest`, it sees weights changed in place. Computed on
        each call (nothing is remembered that an in-place change could make stale), each tensor
        hashed in 64 MiB pieces on a thread pool (hashlib releases the GIL), so that every core
        shares the work."""
        from concurrent.futures import ThreadPoolExecutor

        state = sorted(self.model.state_dict().items())
        piece = 1 << 26

        def pieces(t: torch.Tensor):
            flat = t.detach().contiguous().reshape(-1).view(torch.uint8)
            return [flat[i:i + piece] for i in range(0, flat.numel(), piece)] or [flat]

        def sha(b: torch.Tensor) -> bytes:
            return hashlib.sha256(memoryview(b.cpu().numpy())).digest()

        with ThreadPoolExecutor() as pool:
            digests = [list(pool.map(sha, pieces(t))) for _, t in state]
        h = hashlib.sha256()
        for (name, t), ds in zip(state, digests):
            h.update(f"{name} {t.dtype} {tuple(t.shape)}\n".encode())
            for d in ds:
                h.update(d)
        return h.hexdigest()

    def fp8_state(self) -> str | None:
        """None for a model without FP8 input projections (``fp8='off'``, or a config without them);
        else how they run: their backends and a digest of their scales. The same weights give other
        numbers in FP8, so caches and stores add it to their key."""
        fp8 = [(name, m.backend, m.input_scale, m.weight_scale) for name, m in self.model.named_modules()
               if isinstance(m, FP8Linear)]
        if not fp8:
            return None
        backends = "+".join(sorted({b for _, b, _, _ in fp8}))
        return f"{backends}:{hashlib.sha256(json.dumps(fp8).encode()).hexdigest()[:12]}"

    # -- forward ---------------------------------------------------------------------------

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, return_embeddings: bool = False,
                layer_names: Iterable[str] | None = None, chunk_size: int | None = None):
        """input_ids (B, L) -> ``(Evo2Output(logits (B, L, vocab)), embeddings)``.

        ``embeddings`` maps each of ``layer_names`` to that module's output (B, L, d), or is
        None. With ``chunk_size`` the sequence goes through in chunks carrying state; the
        results equal the unchunked ones (to float rounding).
        """
        if return_embeddings and not layer_names:
            raise ValueError("layer_names must be given when return_embeddings=True, e.g. "
                             f"{self.layer_names[:2]}")
        input_ids = input_ids.to(self.device)
        names = list(layer_names) if return_embeddings else []
        collected: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        pieces: list[torch.Tensor] = []
        with self.hooks(names, lambda name, out: collected[name].append(out)):
            self.model.forward_from(input_ids, chunk_size=chunk_size, on_logits=lambda _, lg: pieces.append(lg))
        logits = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)
        embeddings = {n: torch.cat(v, 1) for n, v in collected.items()} if return_embeddings else None
        return Evo2Output(logits), embeddings

    __call__ = forward

    def hooks(self, layer_names: Iterable[str], sink) -> "_Hooks":
        """Context manager calling ``sink(name, output)`` for every forward of each named
        submodule (every chunk, in a chunked forward), the output moved to ``self.device``
        (where the logits are) when blocks sit on several devices."""
        return _Hooks(self.model, list(layer_names), sink, self.device)

    # -- scoring ---------------------------------------------------------------------------

    @torch.no_grad()
    def score_sequences(self, seqs: list[str], batch_size: int = 1, prepend_bos: bool = False,
                        reduce_method: str = "mean", average_reverse_complement: bool = False) -> list[float]:
        """Log-likelihood of each sequence (natural log): the mean (or sum) over its true
        next-token predictions. Batches are padded with ``pad_id`` on the right; padded
        positions never enter a score (Evo 2's own ``[:seq_len]`` slice counts one padded
        prediction for sequences shorter than the longest in their batch; here they don't).
        ``average_reverse_complement``: the mean of the scores of each sequence and its
        reverse complement.
        """
        if reduce_method not in ("mean", "sum"):
            raise ValueError(f"reduce_method must be 'mean' or 'sum', not {reduce_method!r}")
        seqs = sequence_list(seqs)
        _check_int("batch_size", batch_size, 1)
        shortest = 1 if prepend_bos else 2  # a score needs at least one predicted base
        for i, s in enumerate(seqs):
            if len(s) < shortest:
                raise ValueError(f"seqs[{i}] has {len(s)} base(s): a score needs at least {shortest} "
                                 + ("(the first base is not predicted; or pass prepend_bos=True)"
                                    if not prepend_bos else "(one predicted base)"))
        scores = self._score(seqs, batch_size, prepend_bos, reduce_method)
        if average_reverse_complement:
            rc = self._score([reverse_complement(s) for s in seqs], batch_size, prepend_bos, reduce_method)
            scores = [(a + b) / 2 for a, b in zip(scores, rc)]
        return scores

    def _score(self, seqs, batch_size, prepend_bos, reduce_method) -> list[float]:
        tok = self.tokenizer
        scores: list[float] = []
        for i in range(0, len(seqs), batch_size):
            batch = seqs[i:i + batch_size]
            ids, lengths = tok.encode_batch(batch, names=[f"seq {i + j}" for j in range(len(batch))])
            if prepend_bos:
                ids = torch.cat([torch.full((ids.shape[0], 1), tok.eod_id, dtype=ids.dtype), ids], 1)
                lengths = lengths + 1
            logits = self.model(ids.to(self.device)).float()
            logprobs = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None].to(self.device))[..., 0]
            for row, n in zip(logprobs.cpu(), lengths.tolist()):
                true = row[: n - 1].double()  # predictions of tokens 1 .. n-1
                scores.append(float(true.sum() if reduce_method == "sum" else true.mean()))
        return scores

    # -- long sequences --------------------------------------------------------------------

    @torch.no_grad()
    def embed_long(self, seq: str, layer_names: Iterable[str], chunk_size: int = 8192,
                   pooling: str | None = "mean") -> dict[str, np.ndarray]:
        """Stream one sequence of any length through the exact chunked forward.

        pooling='mean': {layer: (d,)} means over all positions; None: {layer: (L, d)}
        per-position float32 arrays. Memory: one chunk of activations plus the state
        (attention K/V grows with the length; Hyena state does not).
        """
        if pooling not in ("mean", None):
            raise ValueError(f"pooling must be 'mean' or None, not {pooling!r}")
        _check_int("chunk_size", chunk_size, 1)
        ids = torch.tensor(self.tokenizer.tokenize(seq, name="seq"), dtype=torch.long)[None]
        names = list(layer_names)
        L = ids.shape[1]
        out: dict[str, np.ndarray] = {}
        filled = dict.fromkeys(names, 0)  # positions each layer has delivered so far

        def sink(name, y):
            y = y[0].float().cpu().numpy()  # (chunk, d)
            if name not in out:
                d = y.shape[1]
                out[name] = np.zeros(d, np.float64) if pooling == "mean" else np.empty((L, d), np.float32)
            if pooling == "mean":
                out[name] += y.sum(0)
            else:
                out[name][filled[name]:filled[name] + len(y)] = y
            filled[name] += len(y)

        with self.hooks(names, sink):
            self.model.forward_from(ids.to(self.device), chunk_size=chunk_size)
        if pooling == "mean":
            out = {k: (v / L).astype(np.float32) for k, v in out.items()}
        return out

    # -- generation ------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, prompt_seqs: list[str], n_tokens: int = 500, temperature: float = 1.0, top_k: int | None = 4,
                 top_p: float = 1.0, seed: int | None = None, n_samples: int = 1, batch_size: int | None = None,
                 cached_generation: bool = True) -> GenerationOutput:
        """Sample ``n_tokens`` bases after each prompt, ``n_samples`` times each, as ``evo2.Evo2.generate``
        (same names and defaults) does: ``top_k`` over A, C, G, T (0 or None: all four), then
        ``temperature`` (0: always the likeliest base), then ``top_p`` (1: off).

        Prompts of one length are prefilled together once; their samples are decoded together, one
        token a step from the carried state, the prompt's attention keys and values shared by its
        samples (``evo2kit.model.sampling``). ``seed`` fixes every draw, whatever ``batch_size``
        (rows decoded at once; None: all of one prompt length); None draws a seed, returned in the
        output. ``cached_generation=False`` recomputes the whole prefix every step (slow; the
        reference). Returns ``sequences`` (the generated bases, prompt not included) and
        ``logprobs_mean`` (mean log-probability of the drawn bases under the unfiltered model), in
        the order prompt 0's samples, then prompt 1's, ..."""
        prompt_seqs = sequence_list(prompt_seqs, "prompt_seqs")
        _check_int("n_tokens", n_tokens, 1)
        _check_int("n_samples", n_samples, 1)
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1, note=" (or None: every sample of one prompt length at once)")
        if seed is not None:
            _check_int("seed", seed, 0, note=" (or None: a fresh one)")
        settings = SamplingSettings(temperature, 0 if top_k is None else top_k, top_p)
        prompts = []
        for i, prompt in enumerate(prompt_seqs):
            if not prompt:
                raise ValueError(f"prompt_seqs[{i}] is empty: a prompt needs at least one base to continue")
            prompts.append(self.tokenizer.tokenize(prompt, name=f"prompt_seqs[{i}]"))
        seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        tokens, logprobs = sample_tokens(self.model, prompts, n_tokens, settings, seed, n_samples, batch_size,
                                         cached=cached_generation)
        return GenerationOutput([self.tokenizer.detokenize(row) for row in tokens],
                                logprobs.double().mean(1).tolist(), seed, n_samples)


def _check_int(name: str, value, low: int, high: int | None = None, note: str = "") -> None:
    """ValueError unless ``value`` is an int in [low, high] (no upper bound for None)."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"{name} must be an int {allowed}{note}, got {value!r}")


class _Hooks:
    def __init__(self, module: torch.nn.Module, names: list[str], sink, device: torch.device):
        self.module, self.names, self.sink, self.device, self.handles = module, names, sink, device, []

    def __enter__(self):
        for name in self.names:
            try:
                sub = self.module.get_submodule(name)
            except AttributeError:
                raise KeyError(f"no layer named {name!r}; e.g. 'blocks.0.mlp.l3', 'blocks.3.pre_norm', "
                               "'blocks.3', 'norm' (see model.model.named_modules())") from None

            def hook(_m, _inp, out, name=name):
                self.sink(name, (out[0] if isinstance(out, tuple) else out).detach().to(self.device))

            self.handles.append(sub.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        return False


def resolve_config(name_or_config: str | Path | Mapping | Evo2Config) -> tuple[Evo2Config, str]:
    """A known model name, a path to an Evo 2 YAML, a dict or a config -> (config, name)."""
    if isinstance(name_or_config, Evo2Config):
        return name_or_config, name_or_config.model_name
    if isinstance(name_or_config, Mapping):
        cfg = Evo2Config.from_dict(name_or_config)
        return cfg, cfg.model_name
    text = str(name_or_config)
    if text in PUBLISHED_CONFIGS:
        return Evo2Config.published(text), text
    if text in BUNDLED:
        json_path = BUNDLED[text].with_suffix(".json")
        if not json_path.is_file():
            raise FileNotFoundError(f"the bundled model {text!r} is not in this installation ({json_path} missing)")
        return Evo2Config.from_dict(json.loads(json_path.read_text())), text
    path = Path(text)
    if path.suffix in (".yml", ".yaml") and path.is_file():
        return Evo2Config.from_yaml(path), path.stem
    if path.suffix in (".yml", ".yaml"):
        raise FileNotFoundError(f"config file {path} does not exist")
    raise KeyError(f"unknown model {text!r}: use one of {sorted(BUNDLED) + sorted(PUBLISHED_CONFIGS)}, "
                   "a path to an Evo 2 YAML config, or a config dict")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The dtypes a model runs in (poles, residues and rotary frequencies stay float32)."""


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A name from :data:`DTYPES` or one of its torch dtypes -> the torch dtype (None and "auto": None,
    the loader's choice)."""
    if dtype is None or dtype == "auto":
        return None
    if dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)} (or None: "
                     "float32 on CPU, bfloat16 for published models on CUDA)")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or "auto": CUDA when present, else CPU; anything else as ``torch.device`` reads it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


FP8_MODES = ("auto", "emulate", "off")


def resolve_fp8(config: Evo2Config, fp8: str) -> tuple[Evo2Config, str | None, list[str]]:
    """How a config's FP8 input projections run: (config, 'auto' | 'emulate' | None, notes),
    the middle one for ``fp8.backend_for`` with each projection's device.

    'auto': torch._scaled_mm on CUDA GPUs with FP8 (cc >= 8.9), else the exact emulation;
    'emulate': the emulation everywhere; 'off': plain projections in the model dtype, with a
    warning (the 1B, 20B and 40B checkpoints lose most of their accuracy). 7B configs under
    'auto' run without FP8, as evo2 0.6.0 runs them without Transformer Engine (their accuracy
    does not depend on it, and so they match vortex bit for bit); 'emulate' runs them in FP8
    as evo2 does with Transformer Engine."""
    if fp8 not in FP8_MODES:
        raise ValueError(f"fp8 must be one of {FP8_MODES}, not {fp8!r}")
    if not config.use_fp8_input_projections:
        return config, None, []
    is_7b = "7b" in config.model_name.lower()
    if fp8 == "off" or (fp8 == "auto" and is_7b):
        if not is_7b:
            warnings.warn(f"FP8 OFF for {config.model_name}: this checkpoint was trained with FP8 input "
                          "projections and loses most of its accuracy without them (BioNeMo: 1B NLL 1.243 "
                          "instead of 1.076, 40B 1.70 instead of 0.922). Use fp8='auto' or 'emulate'.",
                          stacklevel=3)
        note = "FP8 off: input projections run in the model dtype" + (
            " (7B, as evo2 without Transformer Engine; fp8='emulate' runs them in FP8)"
            if is_7b and fp8 == "auto" else "")
        return dataclasses.replace(config, use_fp8_input_projections=False), None, [note]
    return config, fp8, []


def load_model(name_or_config: str | Path | Mapping | Evo2Config = "evo2kit-tiny", *,
               local_path: str | Path | None = None, backend: str = "torch",
               device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
               fp8: str = "auto", random_weights: bool = False, device_map=None, self_test: bool = False,
               url: str | None = None, api_key: str | None = None):
    """Load a model: ``Evo2Model`` (backend 'torch'), an official ``evo2.Evo2`` ('vortex'), or (EXPERIMENTAL)
    an Evo 2 served by NVIDIA NIM ('nim': :func:`load_nim`).

    name_or_config: 'evo2kit-tiny' (bundled, offline), a published name ('evo2_7b', ...), a
    path to an Evo 2 YAML, or a config dict. local_path: an official ``.pt`` checkpoint (or
    the parts a 40B one is published in, or their folder); without it a published model's
    checkpoint comes from the Hugging Face Hub as ``evo2`` gets it (``evo2kit.checkpoints.hub``: Hub cache,
    SHA-256 checked; offline, a FileNotFoundError says what to fetch), unless
    ``random_weights=True`` asks for an untrained model of that shape (the bundled name too), and so
    does a config dict or ``Evo2Config`` (whatever its ``model_name``). Other configs without
    local_path get random (untrained) weights. A checkpoint's layout is told by its keys, not its
    name: the official (vortex) layout, or evo2kit's own (``StripedHyena2.state_dict()`` in a
    safetensors or ``torch.save`` file); anything else is refused listing what does not fit, and so
    are weights holding NaN or infinity. device: None or "auto":
    CUDA when present. device_map (instead of device): blocks on several devices, a list (blocks
    split in contiguous runs, as vortex places the 40B on 2 x 80 GB GPUs: ``["cuda:0", "cuda:1"]``)
    or a dict {block index: device}; the embedding, final norm and logits live on block 0's device
    (``model.device``), and the hidden state moves between devices in forward. dtype: 'float32',
    'bfloat16', 'float16' (or the torch dtype); None or "auto": float32 on CPU, bfloat16 for
    published models on CUDA. A notebook's parameters (strings, None for "not set") go in as they are.
    fp8: 'auto' | 'emulate' | 'off', how FP8 input projections run (``resolve_fp8``); models
    without a checkpoint use unit FP8 scales. Official checkpoints are memory-mapped and their
    tensors assigned to a model built on the meta device: host memory peaks near the file
    size when dtype matches the file's (plus the converted copy when it does not).
    ``model.load_report`` says what the checkpoint loader did. self_test: run Evo 2's own
    self-test after loading (``evo2kit.self_test``: 4 forward passes of 6-8 kb) and keep its result as
    ``model.self_test_result``; a model that does not match its checkpoint's published (or
    recorded) values raises a warning saying so and why that usually happens.
    """
    if backend == "vortex":
        return _checked(_load_vortex(name_or_config, local_path), str(name_or_config), self_test)
    if backend == "nim":
        return _checked(load_nim(name_or_config, url, api_key), str(name_or_config), self_test)
    if backend != "torch":
        raise ValueError(f"backend must be 'torch', 'vortex' or 'nim', not {backend!r}")
    if fp8 not in FP8_MODES:  # refused for every model, not only those with FP8 projections
        raise ValueError(f"fp8 must be one of {FP8_MODES}, not {fp8!r}")
    dtype = resolve_dtype(dtype)
    config, name = resolve_config(name_or_config)
    by_name = not isinstance(name_or_config, (Mapping, Evo2Config))  # a config (dict) means random weights
    block_devices = None
    if device_map is not None:
        if device not in (None, "auto"):
            raise ValueError("give device or device_map, not both (device_map's block 0 device holds the embedding)")
        block_devices = plan_block_devices(config.num_layers, device_map)
        device = block_devices[0]
    device = resolve_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" and name not in BUNDLED else torch.float32
    sha, fp8_mode = None, None
    if local_path is None and name in PUBLISHED_CHECKPOINTS and not random_weights and by_name:
        from evo2kit.checkpoints.hub import download_checkpoint  # noqa: PLC0415 (huggingface_hub only when a download is asked for)

        local_path = download_checkpoint(name)  # the Hub cache; offline: FileNotFoundError saying what to fetch
    if name in BUNDLED and local_path is None and not random_weights and by_name:
        model, sha = _load_bundled(name)
    elif local_path is not None:
        state_dict, kind = read_checkpoint(local_path)  # FileNotFoundError at once; a .pt is memory-mapped
        where = str(checkpoint_files(local_path)[0])
        if checkpoint_layout(state_dict) == "evo2kit":  # by its keys, whatever the file's name
            model = model_from_state_dict(state_dict, config, where)
            sha = sha256_file(Path(where)) if kind == "safetensors" else None
        else:
            config, fp8_mode, notes = resolve_fp8(config, fp8)
            with torch.device("meta"):
                model = StripedHyena2(config)
            report = load_official_state_dict(model, state_dict, dtype=dtype, device=device,
                                              fp8_backend=fp8_mode or "emulate", block_devices=block_devices,
                                              where=where)
            report.notes += notes
            model.load_report = report
            return _checked(Evo2Model(model, name, sha), name, self_test)
    else:
        config, fp8_mode, _ = resolve_fp8(config, fp8)
        with torch.device(device):  # built where it runs; on "meta": shapes only, no memory
            model = StripedHyena2(config)
        if device.type != "meta":
            model.init_weights(0)
    if dtype != torch.float32:
        model.to_inference_dtype(dtype)
    model = model.to(device) if block_devices is None else model.place_blocks(block_devices)
    for m in model.modules():
        if fp8_mode and isinstance(m, FP8Linear):
            m.backend = backend_for(fp8_mode, m.weight.device)
    return _checked(Evo2Model(model, name, sha), name, self_test)


def load_nim(name_or_config, url: str | None = None, api_key: str | None = None, **client_options) -> NimModel:
    """EXPERIMENTAL. Evo 2 served by NVIDIA NIM (docs/nim.md): ``url`` the endpoint (None: the hosted one
    for the name, e.g. evo2_40b's at health.api.nvidia.com; a self-hosted container: its
    ``http://HOST:8000``), ``api_key`` (None: ``$NVIDIA_API_KEY``; the hosted service needs one).
    name_or_config names the served model (its config gives the layer names and parameter counts; a
    self-hosted NIM may serve a custom checkpoint of any config). ``client_options`` go to ``NimClient``."""
    config, name = resolve_config(name_or_config)
    if url is None:
        if name not in HOSTED_URLS:
            raise ValueError(f"no hosted NIM endpoint is known for {name!r} (only for {', '.join(HOSTED_URLS)}): "
                             "pass url= (a self-hosted NIM, e.g. http://localhost:8000)")
        url = HOSTED_URLS[name]
    key = api_key or os.environ.get("NVIDIA_API_KEY") or None
    return NimModel(NimClient(url, key, model=name, **client_options), config, name)


def _checked(model, name: str, self_test: bool):
    """``model``, with Evo 2's self-test run and kept as ``model.self_test_result`` when asked; a
    mismatch warns with the verdict."""
    if self_test:
        model.self_test_result = self_testing.self_test(model, name=name)
        if model.self_test_result.matches is False:
            warnings.warn(model.self_test_result.verdict, stacklevel=3)
    return model


def _load_bundled(name: str) -> tuple[StripedHyena2, str]:
    weights = BUNDLED[name]
    expected_file = weights.with_suffix(".sha256")
    if not weights.is_file() or not expected_file.is_file():
        raise FileNotFoundError(
            f"the bundled model {name!r} is not in this installation ({weights} missing): "
            "reinstall evo2kit, or train it with `python -m evo2kit.training`")
    expected = expected_file.read_text().split()[0]
    actual = sha256_file(weights)
    if actual != expected:
        raise ValueError(f"{weights}: sha256 {actual} does not match the shipped {expected}; "
                         "the file is damaged, reinstall evo2kit")
    return load_pretrained(weights), actual


def _load_vortex(name_or_config, local_path):
    """The official ``evo2.Evo2`` (needs the ``evo2`` extra, CUDA, flash-attn)."""
    try:
        from evo2 import Evo2  # noqa: PLC0415 (imported only for this backend)
    except ImportError as e:
        raise ImportError("backend='vortex' needs the official evo2 package: pip install 'evo2kit[evo2]' "
                          f"on a CUDA machine ({e})") from e
    if not torch.cuda.is_available():
        raise RuntimeError("backend='vortex' needs a CUDA GPU; use backend='torch' on CPU")
    arc = sorted(n for n, c in PUBLISHED_CHECKPOINTS.items() if not c.source.startswith("NGC"))
    if str(name_or_config) not in arc:
        raise KeyError(f"backend='vortex' loads evo2's published models only: {arc}")
    return Evo2(str(name_or_config), local_path=None if local_path is None else str(local_path))
