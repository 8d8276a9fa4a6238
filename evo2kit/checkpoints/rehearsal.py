"""A random-weight checkpoint in exactly the official Evo 2 layout, to rehearse the published-model path on CPU.

The ``official-format`` profile of ``notebooks/profiles.yml`` runs every notebook the way the gpu
profiles run a published model (``load_model(model_name, local_path=model_weights, fp8="auto")``)
on the checkpoint this module writes, so that the code a user with real weights runs has run
before, in ``make test``. The checkpoint is the 1B's YAML cut down to 8 blocks of width 64 in the
1B's block order (HCS, HCM, HCL, attention, twice), with everything an official file carries:

  * FP8 input projections (``use_fp8_input_projections: true``) with Transformer Engine
    ``_extra_state`` metadata whose scales are set as TE's delayed scaling sets them
    (448 / amax, margin 0) from one calibration pass on random DNA;
  * column-split ``Wqkv`` rows, ``unembed.weight``, bfloat16 weights (float32 poles, residues
    and rotary frequencies);
  * the file split into byte ranges ``.pt.part0``, ``.part1``, ``.part2`` as the 40B is published.

Its weights are random: a model that has learnt nothing, so the rehearsal checks that the code
runs and what does not depend on training (equalities, shapes, counts, the load report).
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from evo2kit.checkpoints.official import save_official_checkpoint
from evo2kit.model.fp8 import E4M3_MAX, FP8Linear
from evo2kit.model.striped_hyena import CONFIG_DIR, Evo2Config, StripedHyena2

NAME = "evo2_rehearsal"
"""The model name the notebooks report (the YAML's stem, as ``load_model`` names a YAML config)."""

SMALL = {
    "model_name": "evo2-rehearsal-8k",
    "hidden_size": 64, "num_filters": 64, "num_attention_heads": 4, "num_layers": 8,
    "hcs_layer_idxs": [0, 4], "hcm_layer_idxs": [1, 5], "hcl_layer_idxs": [2, 6], "attn_layer_idxs": [3, 7],
    "hcs_filter_groups": 16, "hcm_filter_groups": 16, "hcl_filter_groups": 64, "inner_mlp_size": 128,
}
"""What differs from the 1B's YAML (``configs/evo2-1b-8k.yml``): every other key is the 1B's."""


def write_checkpoint(folder: str | Path, seed: int = 0, parts: int = 3) -> tuple[Path, Path]:
    """Write ``NAME.yml`` and ``NAME.pt.part0`` .. ``part{parts-1}`` into ``folder``; returns
    (YAML, the ``.pt`` path to pass as ``local_path``: absent, its parts are found beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((CONFIG_DIR / "evo2-1b-8k.yml").read_text()) | SMALL
    yml = folder / f"{NAME}.yml"
    yml.write_text("# A random-weight Evo 2 config in the 1B's layout, for the official-format rehearsal\n"
                   + yaml.safe_dump(config, sort_keys=False))
    model = StripedHyena2(Evo2Config.from_dict(config)).init_weights(seed)
    calibrate_fp8_scales(model, seed)
    pt = folder / f"{NAME}.pt"
    save_official_checkpoint(model, pt, parts=parts)
    return yml, pt


@torch.no_grad()
def calibrate_fp8_scales(model: StripedHyena2, seed: int = 0, length: int = 2048) -> None:
    """Set each FP8Linear's scales to 448 / amax of its input and of its weight, the amax of the
    input taken over one forward of ``length`` random bases (TE's delayed scaling, margin 0)."""
    amax: dict[str, float] = {}
    hooks = [m.register_forward_pre_hook(lambda m, x, name=name: amax.__setitem__(name, float(x[0].abs().max())))
             for name, m in model.named_modules() if isinstance(m, FP8Linear)]
    g = torch.Generator().manual_seed(seed)
    model(torch.tensor([65, 67, 71, 84])[torch.randint(0, 4, (1, length), generator=g)])
    for h in hooks:
        h.remove()
    for name, x_max in amax.items():
        m = model.get_submodule(name)
        m.set_scales(E4M3_MAX / x_max, E4M3_MAX / float(m.weight.abs().max()))
