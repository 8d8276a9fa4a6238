"""Official checkpoints with FP8 metadata, read safely and loaded lean (the FP8 math: tests/model/test_fp8.py).

Synthetic checkpoints are written in the official layout (evo2kit/model/vortex_reference.py: per-head Wqkv
rows, ``unembed.weight``) with each Hyena block's ``projections._extra_state`` written as
Transformer Engine 1.x writes it (TransformerEngine transformer_engine/pytorch/module/base.py,
``get_extra_state``: ``torch.save`` of a dict into an ``io.BytesIO``). The FP8 projection is
compared with a plain per-element E4M3 rounding written here in Python.
"""

from __future__ import annotations

import io
import math
import os
import re

import numpy as np
import pytest
import torch
import yaml
from support import reference_fp8_linear, token_ids

import evo2kit
from evo2kit.checkpoints.official import PUBLISHED_CHECKPOINTS, CheckpointError, read_official_checkpoint
from evo2kit.model import vortex_reference as vr
from evo2kit.model.fp8 import FP8Linear
from evo2kit.model.striped_hyena import PUBLISHED_CONFIGS, Evo2Config, StripedHyena2, plan_block_devices
from evo2kit.tutorial.resources import load_peak_bytes


def te_extra_state(scale_fwd: list[float]) -> io.BytesIO:
    """A TE 1.x ``get_extra_state`` blob for a Linear with one GEMM: forward tensors indexed
    GEMM1_INPUT = 0, GEMM1_WEIGHT = 1, GEMM1_OUTPUT = 2; amax history of length 16."""
    scale = torch.tensor(scale_fwd, dtype=torch.float32)
    state = {
        "scale_fwd": scale, "scale_inv_fwd": 1.0 / scale,
        "amax_history_fwd": (448.0 / scale).expand(16, 3).clone(),
        "scale_bwd": torch.ones(2), "scale_inv_bwd": torch.ones(2), "amax_history_bwd": torch.zeros(16, 2),
        "extra_fp8_variables": {"fp8_checkpoint": True, "num_gemms": 1, "fp8_max_fwd": 448.0,
                                "fp8_max_bwd": 57344.0, "first_module": False},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def block_scales(i: int) -> list[float]:
    return [30.0 + 7 * i, 900.0 + 50 * i, 1.0]  # input and weight scales far apart


def fp8_checkpoint(cfg: dict, seed: int = 1) -> dict:
    sd = vr.random_official_state_dict(cfg, seed=seed)
    for i in range(cfg["num_layers"]):
        if vr.block_kind(cfg, i) != "attn":
            sd[f"blocks.{i}.projections._extra_state"] = te_extra_state(block_scales(i))
    return sd


def write(tmp_path, cfg: dict, sd: dict, name: str = "ckpt") -> tuple[str, str]:
    yml, pt = tmp_path / f"{name}.yml", tmp_path / f"{name}.pt"
    yml.write_text(yaml.safe_dump(cfg))
    torch.save(sd, pt)
    return str(yml), str(pt)


FP8_CFG = vr.official_config(use_fp8_input_projections=True)

# ------------------------------------------------------------------------- loading checkpoints


def test_fp8_checkpoint_loads_with_its_scales_and_runs(tmp_path):
    cfg = FP8_CFG
    yml, pt = write(tmp_path, cfg, fp8_checkpoint(cfg))
    model = evo2kit.load_model(yml, local_path=pt, device="cpu", fp8="auto")
    report = model.load_report
    hyena = [i for i in range(cfg["num_layers"]) if vr.block_kind(cfg, i) != "attn"]
    assert report.fp8_backend == "emulate"  # CPU
    assert report.fp8_scales == {f"blocks.{i}.projections": tuple(block_scales(i)[:2]) for i in hyena}
    assert report.dropped == ["unembed.weight"] and len(report.permuted_wqkv) == 1
    assert "FP8 input projections in 4 blocks" in str(report)
    # the projection inside the model is the reference math with this block's scales
    seen = {}
    proj = model.model.blocks[2].projections
    handle = proj.register_forward_hook(lambda m, i, o: seen.update(x=i[0].detach(), y=o.detach()))
    (logits, _), _ = model(token_ids(50, seed=1))
    handle.remove()
    assert torch.isfinite(logits).all()
    ref = reference_fp8_linear(seen["x"][0], proj.weight.detach(), *block_scales(2)[:2])
    assert np.abs(seen["y"][0].double().numpy() - ref).max() <= 1e-6 * np.abs(ref).max()


def test_checkpoint_in_parts_loads_like_the_joined_file(tmp_path):
    cfg = FP8_CFG
    yml, pt = write(tmp_path, cfg, fp8_checkpoint(cfg), name="evo2_small")
    ids = token_ids(40, seed=2)
    (whole, _), _ = evo2kit.load_model(yml, local_path=pt, device="cpu")(ids)
    with open(pt, "rb") as f:
        data = f.read()
    os.remove(pt)
    cuts = [0, len(data) // 3, 2 * len(data) // 3 + 7, len(data)]
    for k in range(3):  # as published: byte ranges of one file, pt.part0, pt.part1, ...
        with open(f"{pt}.part{k}", "wb") as f:
            f.write(data[cuts[k]:cuts[k + 1]])
    for path in (pt, f"{pt}.part0", str(tmp_path)):
        (logits, _), _ = evo2kit.load_model(yml, local_path=path, device="cpu")(ids)
        assert torch.equal(logits, whole), path
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_official_checkpoint(tmp_path / "nope.pt")


def _with_extra_state(value) -> dict:
    sd = fp8_checkpoint(FP8_CFG)
    sd["blocks.1.projections._extra_state"] = value
    return sd


def _blob(state) -> io.BytesIO:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


MALFORMED = {
    "missing": (None, "missing"),
    "saved with FP8 off": (_blob(None), "no FP8 state"),
    "no scale_fwd": (_blob({"scale_inv_fwd": torch.ones(3)}), "no 'scale_fwd'"),
    "one scale": (_blob({"scale_fwd": torch.ones(1)}), "at least 2 scales"),
    "zero scale": (_blob({"scale_fwd": torch.tensor([1.0, 0.0, 1.0])}), "finite and positive"),
    "nan scale": (_blob({"scale_fwd": torch.tensor([math.nan, 1.0, 1.0])}), "finite and positive"),
    "TE 2 tensor format": (torch.zeros(8, dtype=torch.uint8), "uint8-tensor format"),
    "not bytes": ("scales", "found str"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_fp8_metadata_names_the_key(tmp_path, case):
    value, message = MALFORMED[case]
    sd = _with_extra_state(value)
    if value is None:
        del sd["blocks.1.projections._extra_state"]
    yml, pt = write(tmp_path, FP8_CFG, sd)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.projections\._extra_state") as err:
        evo2kit.load_model(yml, local_path=pt, device="cpu")
    assert message in str(err.value)
    with pytest.warns(UserWarning, match="FP8 OFF"):  # without FP8 the metadata is not needed
        evo2kit.load_model(yml, local_path=pt, device="cpu", fp8="off")


def test_fp8_off_warns_and_uses_plain_projections(tmp_path):
    yml, pt = write(tmp_path, FP8_CFG, fp8_checkpoint(FP8_CFG))
    with pytest.warns(UserWarning, match="FP8 OFF.*loses most of its accuracy"):
        model = evo2kit.load_model(yml, local_path=pt, device="cpu", fp8="off")
    assert type(model.model.blocks[0].projections) is torch.nn.Linear
    assert model.load_report.fp8_scales == {} and "FP8 off" in str(model.load_report)
    with pytest.raises(ValueError, match="fp8 must be one of"):
        evo2kit.load_model(yml, local_path=pt, device="cpu", fp8="on")


def test_7b_configs_run_without_fp8_unless_asked(tmp_path, recwarn):
    cfg = vr.official_config(use_fp8_input_projections=True, model_name="shc-evo2-7b-small")
    yml, pt = write(tmp_path, cfg, fp8_checkpoint(cfg))
    auto = evo2kit.load_model(yml, local_path=pt, device="cpu")
    assert type(auto.model.blocks[0].projections) is torch.nn.Linear and not recwarn.list
    assert "as evo2 without Transformer Engine" in str(auto.load_report)
    emulated = evo2kit.load_model(yml, local_path=pt, device="cpu", fp8="emulate")
    assert isinstance(emulated.model.blocks[0].projections, FP8Linear)
    assert emulated.model.blocks[0].projections.input_scale == block_scales(0)[0]


class _RunsCode:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    yml, pt = write(tmp_path, FP8_CFG, _with_extra_state(_blob({"scale_fwd": _RunsCode(marker)})))
    with pytest.raises(CheckpointError, match=r"blocks\.1\.projections\._extra_state.*refused"):
        evo2kit.load_model(yml, local_path=pt, device="cpu")
    sd = fp8_checkpoint(FP8_CFG)
    sd["blocks.0.projections._extra_state"] = _RunsCode(marker)  # in the outer pickle itself
    yml, pt = write(tmp_path, FP8_CFG, sd, name="outer")
    with pytest.raises(Exception, match="Weights only load failed"):
        evo2kit.load_model(yml, local_path=pt, device="cpu")
    assert not marker.exists()


# ----------------------------------------------------------------------------- several devices
# Only CPU is here, and PyTorch has one CPU device, so blocks "on two devices" are checked two
# ways: a plan over cpu twice must change nothing, and a plan over cpu and meta shows that each
# block's input and state are moved to that block's device (meta computes shapes only, and mixing
# cpu and meta tensors in one op raises). A real transfer between two GPUs is not exercised.


def test_blocks_are_split_over_devices_as_vortex_does():
    plan = plan_block_devices(25, ["cuda:0", "cuda:1"])  # vortex: ceil(25 / 2) = 13 blocks per GPU
    assert plan == [torch.device("cuda:0")] * 13 + [torch.device("cuda:1")] * 12
    assert plan_block_devices(50, ["cuda:0", "cuda:1"]).count(torch.device("cuda:1")) == 25
    assert plan_block_devices(3, {0: "cpu", 1: "meta", 2: "cpu"}) == [torch.device(d) for d in ("cpu", "meta", "cpu")]
    with pytest.raises(ValueError, match=r"missing \[2\], not blocks \[5\]"):
        plan_block_devices(3, {0: "cpu", 1: "cpu", 5: "cpu"})
    with pytest.raises(ValueError, match="empty list"):
        plan_block_devices(3, [])
    with pytest.raises(ValueError, match="device or device_map, not both"):
        evo2kit.load_model(FP8_CFG, device="cpu", device_map=["cpu"])


def test_device_map_gives_the_single_device_results(tmp_path):
    yml, pt = write(tmp_path, FP8_CFG, fp8_checkpoint(FP8_CFG))
    ids = token_ids(48, seed=3)
    names = ["blocks.0.mlp.l3", "blocks.4.mlp.l3"]
    one = evo2kit.load_model(yml, local_path=pt, device="cpu")
    (want, _), want_emb = one(ids, return_embeddings=True, layer_names=names)
    for device_map in (["cpu", "cpu"], {0: "cpu", 1: "cpu", 2: "cpu", 3: "cpu", 4: "cpu"}):
        split = evo2kit.load_model(yml, local_path=pt, device_map=device_map)
        assert split.load_report.fp8_backend == "emulate"
        for chunk_size in (None, 20):
            (got, _), emb = split(ids, return_embeddings=True, layer_names=names, chunk_size=chunk_size)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            for n in names:
                torch.testing.assert_close(emb[n], want_emb[n], rtol=1e-5, atol=1e-5)


def test_hidden_state_and_state_move_to_each_blocks_device(tmp_path):
    model = evo2kit.load_model(FP8_CFG, device_map=["cpu", "meta"], dtype="bfloat16").model
    plan = [torch.device("cpu")] * 3 + [torch.device("meta")] * 2  # ceil(5 / 2) = 3 blocks on cpu
    assert [next(b.parameters()).device for b in model.blocks] == plan
    assert model.embedding_layer.weight.device.type == "cpu"
    seen = []
    for block in model.blocks:
        block.register_forward_pre_hook(lambda m, args: seen.append(args[0].device))
    state = model.new_state()
    for chunk in token_ids(30, seed=4).split(12, 1):  # the chunked forward, state carried
        x = model.hidden_states(chunk, state)
        assert x.shape == (1, chunk.shape[1], FP8_CFG["hidden_size"]) and x.device.type == "meta"
    assert seen == plan * 3
    for block_state, device in zip(state.blocks, plan):
        assert block_state.tensors() and all(t.device == device for t in block_state.tensors().values())


# ----------------------------------------------------------------------------- published names


def published_param_count(name: str) -> int:
    """From the official YAML alone (evo2kit/model/vortex_reference.py's independent shape table)."""
    return sum(math.prod(s) for s in vr.official_param_shapes(vr.load_yaml_config(PUBLISHED_CONFIGS[name])).values())


def test_every_published_name_resolves_to_its_config():
    assert set(PUBLISHED_CHECKPOINTS) == set(PUBLISHED_CONFIGS)
    counts, stored = {}, {}
    for name in PUBLISHED_CONFIGS:
        config = Evo2Config.published(name)
        with torch.device("meta"):
            model = StripedHyena2(config)
        counts[name] = model.num_params()  # as notebook 00 counts
        stored[name] = sum(t.numel() for t in model.state_dict().values())  # + rotary inv_freq buffers
        assert stored[name] == published_param_count(name), name
        assert config.use_fp8_input_projections == (name not in ("1b-8k-bf16", "40b-1m-fp8-bf16")), name
    # the published figures: the 1B state dict holds 1,107,990,016 numbers; 7B and 40B as notebook 00 shows
    assert stored["evo2_1b_base"] == 1_107_990_016
    assert f"{counts['evo2_7b'] / 1e9:.3f}" == "6.582" and f"{counts['evo2_40b'] / 1e9:.2f}" == "41.12"
    assert counts["1b-8k-bf16"] == counts["evo2_1b_base"] and counts["40b-1m-fp8-bf16"] == counts["evo2_40b"]
    print({n: f"{c / 1e9:.3f} B" for n, c in counts.items()})


def test_published_name_without_checkpoint_says_what_to_get():
    # Hugging Face names are downloaded (tests/test_hub.py); NVIDIA's are not on the Hub
    with pytest.raises(FileNotFoundError, match=r"NGC evo2/1b-8k-bf16"):
        evo2kit.load_model("1b-8k-bf16", device="cpu")
    shape_only = evo2kit.load_model("evo2_20b", random_weights=True, device="meta", dtype=torch.bfloat16)
    assert isinstance(shape_only.model.blocks[0].projections, FP8Linear)  # unit scales
    assert shape_only.model.blocks[0].projections.input_scale == 1.0 and shape_only.load_report is None
    with pytest.raises(FileNotFoundError, match="evo2_7b.pt does not exist"):
        evo2kit.load_model("evo2_7b", local_path="/nonexistent/evo2_7b.pt", device="cpu")


# ----------------------------------------------------------------------------- lean loading

@pytest.mark.slow
def test_loading_a_7b_shaped_checkpoint_costs_about_its_file_size(tmp_path):
    """The 7B's first four blocks (HCS, HCM, HCL, attention; 1.6 GB in bf16). Beyond the file's
    pages, the load holds the permuted Wqkv copy (0.1 GB) and PyTorch's first-use allocations."""
    cfg = vr.load_yaml_config("evo2-7b-8k", num_layers=4)
    sd = {k: torch.zeros(s, dtype=torch.bfloat16) for k, s in vr.official_param_shapes(cfg).items()}
    sd["unembed.weight"] = sd["embedding_layer.weight"].clone()
    yml, pt = write(tmp_path, cfg, sd)
    del sd
    size = os.path.getsize(pt)
    # What any load costs whatever the file (PyTorch's first-use allocations, thread pools): a
    # small checkpoint loaded the same way. A whole 7B file (13 GB) makes it negligible; this
    # 1.6 GB cut does not, so it is measured and set apart rather than counted against the file.
    small_cfg = vr.official_config()
    small_yml, small_pt = write(tmp_path, small_cfg, vr.random_official_state_dict(small_cfg, seed=0), name="small")
    fixed = load_peak_bytes(small_yml, small_pt, "bfloat16")
    peak = load_peak_bytes(yml, pt, "bfloat16")
    ratio = (peak - fixed) / size
    print(f"file {size / 2**20:.0f} MiB, load peak - baseline {peak / 2**20:.0f} MiB, "
          f"fixed cost {fixed / 2**20:.0f} MiB: "
          f"{ratio:.2f} x file size")
    assert ratio <= 1.2
    os.remove(pt)


# ------------------------------------------------------------------- writing the official layout


@pytest.mark.slow
def test_written_checkpoint_has_the_official_layout_and_loads_back_exactly(tmp_path):
    """evo2kit.rehearsal's checkpoint (written by checkpoint.save_official_checkpoint, the loader's
    inverse) has the key set and shapes of vortex_ref's independent table, TE metadata the parser
    reads, the Wqkv rows in the per-head order vortex_ref documents, and parts; a float32 copy loads
    back to the same logits as the model it was written from."""
    from evo2kit.checkpoints import rehearsal
    from evo2kit.checkpoints.official import permute_column_split_wqkv, save_official_checkpoint

    yml, pt = rehearsal.write_checkpoint(tmp_path)
    assert not pt.exists() and [p.name for p in sorted(tmp_path.glob("*.part*"))] == [
        f"{pt.name}.part{k}" for k in range(3)]
    cfg = vr.load_yaml_config(yml)
    sd = read_official_checkpoint(pt)
    want = vr.official_param_shapes(cfg)
    assert set(sd) == set(want) | set(vr.extra_checkpoint_keys(cfg))
    assert all(tuple(sd[k].shape) == s for k, s in want.items())
    assert {str(v.dtype) for k, v in sd.items() if k in want and k.endswith("weight")} == {"torch.bfloat16"}
    model = evo2kit.load_model(str(yml), local_path=str(pt), device="cpu")
    wqkv = "blocks.3.inner_mha_cls.Wqkv.weight"
    assert torch.equal(permute_column_split_wqkv(sd[wqkv].float(), cfg["num_attention_heads"]),
                       model.model.state_dict()[wqkv])
    f32 = save_official_checkpoint(model.model, tmp_path / "f32" / "x.pt", dtype=torch.float32)
    again = evo2kit.load_model(str(yml), local_path=str(f32[0]), device="cpu")
    assert again.load_report.fp8_scales == model.load_report.fp8_scales
    ids = token_ids(64, seed=3)
    assert torch.equal(again(ids)[0][0], model(ids)[0][0])


# --------------------------------------------------------------------- bad and damaged files (issue 30)

def _data_offset(path: str, member_suffix: str) -> int:
    """Where the bytes of the zip member ending in ``member_suffix`` start in a torch.save file."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len


def _overwrite(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_flipped_bytes_that_make_a_weight_nan_are_refused_naming_the_file(tmp_path):
    import struct

    from evo2kit.checkpoints.official import save_pretrained
    from evo2kit.cli import DataError

    cfg = vr.official_config()
    yml, pt = write(tmp_path, cfg, vr.random_official_state_dict(cfg, seed=0))
    _overwrite(pt, _data_offset(pt, "/data/0"), b"\xff\xff\xff\x7f")  # a NaN in float32
    with pytest.raises(DataError, match=rf"^{re.escape(pt)}: 1 tensor\(s\) hold NaN or infinite values "
                                        r"\(embedding_layer.weight\): the weights are damaged"):
        evo2kit.load_model(yml, local_path=pt, device="cpu")

    model = evo2kit.load_model(yml, device="cpu")
    weights = save_pretrained(model.model, tmp_path / "own", "small")
    with open(weights, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    _overwrite(weights, 8 + n + 4, b"\x00\x00\x80\x7f")  # +inf in the first tensor
    with pytest.raises(DataError, match=rf"^{re.escape(str(weights))}: 1 tensor\(s\) hold NaN or infinite values"):
        evo2kit.load_model(yml, local_path=weights, device="cpu")
    with pytest.raises(DataError, match=r"1 tensor\(s\) overflow torch.float16 \(embedding_layer.weight\): load with "
                                        "dtype='bfloat16' or 'float32'"):
        sd = vr.random_official_state_dict(cfg, seed=0)
        sd["embedding_layer.weight"][0, 0] = 1e6  # finite in the file, not in float16
        big_yml, big_pt = write(tmp_path, cfg, sd, name="big")
        evo2kit.load_model(big_yml, local_path=big_pt, device="cpu", dtype="float16")


def test_the_models_own_state_dict_saved_as_pt_is_read_as_its_own_layout(tmp_path):
    from evo2kit.checkpoints.official import CheckpointError

    cfg = vr.official_config()
    assert cfg["column_split"], "a layout whose Wqkv rows the official loader would permute"
    yml, official = write(tmp_path, cfg, vr.random_official_state_dict(cfg, seed=2))
    model = evo2kit.load_model(yml, local_path=official, device="cpu")
    own = tmp_path / "own.pt"
    torch.save(model.model.state_dict(), own)
    again = evo2kit.load_model(yml, local_path=own, device="cpu")
    ids = token_ids(64, seed=1)
    assert torch.equal(again(ids)[0][0], model(ids)[0][0])
    assert again.load_report is None, "no official loading: nothing permuted"
    foreign = tmp_path / "foreign.pt"
    torch.save({"encoder.layer.0.weight": torch.zeros(4, 4)}, foreign)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(foreign))} does not fit evo2kit-small-random:\n"
                                              r"  missing \(\d+\): .*\n  unexpected \(1\): encoder.layer.0.weight"):
        evo2kit.load_model(yml, local_path=foreign, device="cpu")


@pytest.mark.parametrize("damage", ["truncated", "empty", "bad header"])
def test_a_damaged_safetensors_file_is_named(tmp_path, damage):
    from evo2kit.checkpoints.official import save_pretrained
    from evo2kit.cli import DataError

    cfg = vr.official_config()
    yml = tmp_path / "small.yml"
    yml.write_text(yaml.safe_dump(cfg))
    weights = save_pretrained(evo2kit.load_model(str(yml), device="cpu").model, tmp_path, "small")
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[:len(data) // 2], "empty": b"",
                         "bad header": data[:8] + b"{not json" + data[17:]}[damage])
    message = (rf"^{re.escape(str(weights))} is neither a PyTorch checkpoint \(a zip archive\) nor a safetensors "
               r"file \(it is empty\)$" if damage == "empty" else
               rf"^{re.escape(str(weights))} is not a complete safetensors file \(.*\): it is truncated or damaged")
    with pytest.raises(DataError, match=message):
        evo2kit.load_model(str(yml), local_path=weights, device="cpu")


def test_a_truncated_pt_or_missing_parts_are_named(tmp_path):
    from evo2kit.checkpoints.official import save_official_checkpoint
    from evo2kit.cli import DataError

    cfg = vr.official_config()
    yml, pt = write(tmp_path, cfg, vr.random_official_state_dict(cfg, seed=0))
    data = open(pt, "rb").read()
    open(pt, "wb").write(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"^{re.escape(pt)} is truncated or damaged \(PytorchStreamReader failed .*\): "
                                        "download or copy it again$"):
        evo2kit.load_model(yml, local_path=pt, device="cpu")
    model = evo2kit.load_model(yml, device="cpu").model
    parts = save_official_checkpoint(model, tmp_path / "split" / "x.pt", parts=3)
    parts[2].unlink()
    with pytest.raises(FileNotFoundError, match=r"part\(s\) x.pt.part0 to x.pt.part1 are not the whole checkpoint "
                                                r"\(the last ends no zip archive\): x.pt.part2 \(and any part after "
                                                r"it\) is missing, or x.pt.part1 is truncated"):
        evo2kit.load_model(yml, local_path=parts[0], device="cpu")


def test_a_pickle_with_code_is_one_line_in_the_cli(tmp_path, capsys):
    from evo2kit.analysis import vep

    marker = tmp_path / "code_ran"
    sd = fp8_checkpoint(FP8_CFG)
    sd["blocks.0.projections._extra_state"] = _RunsCode(marker)
    yml, pt = write(tmp_path, FP8_CFG, sd, name="outer")
    fasta, table = tmp_path / "g.fa", tmp_path / "v.tsv"
    fasta.write_text(">chr1\n" + "ACGT" * 20 + "\n")
    table.write_text("chrom\tpos\tref\talt\nchr1\t10\tC\tA\n")
    status = vep.main(["--table", str(table), "--fasta", str(fasta), "--model", yml, "--weights", pt,
                       "--window", "20", "--out", str(tmp_path / "o.tsv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 65 and len(err) == 1 and not marker.exists(), err
    assert err[0].startswith(f"evo2kit-vep: error: {pt}: refused, its pickle asks for more than tensors (Weights "
                             "only load failed: ") and "evo2kit never runs a checkpoint's code" in err[0]


def test_identical_weights_give_identical_safetensors_files(tmp_path):
    import hashlib

    from evo2kit.checkpoints.official import save_pretrained

    model = StripedHyena2(Evo2Config.from_dict(vr.official_config())).init_weights(0)
    digests = {hashlib.sha256(save_pretrained(model, tmp_path / str(i), "small").read_bytes()).hexdigest()
               for i in range(24)}
    assert len(digests) == 1, "the header's metadata keys come in one order"
