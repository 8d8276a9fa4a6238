"""evo2kit.resources: memory of this machine and parameter counts of the architectures."""

import torch

from evo2kit import load_model
from evo2kit.model.striped_hyena import Evo2Config
from evo2kit.tutorial.resources import parameter_count, system_memory_bytes


def test_system_memory_is_plausible():
    total, available = system_memory_bytes()
    assert 2**26 < total and 0 < available <= total


def test_parameter_count_on_meta_equals_a_built_model():
    cfg = dict(model_name="count-test", hidden_size=32, num_layers=4, hcs_layer_idxs=[0], hcm_layer_idxs=[1],
               hcl_layer_idxs=[2], attn_layer_idxs=[3], num_attention_heads=4, inner_mlp_size=64, state_size=8,
               hcs_filter_groups=16, hcm_filter_groups=16, max_seqlen=1024)
    built = load_model(cfg, device="cpu")
    assert parameter_count(cfg) == sum(p.numel() for p in built.model.parameters())
    assert parameter_count(Evo2Config.published("evo2_7b")) > 6e9  # counted without allocating 13 GB
    assert torch.get_default_device().type == "cpu"  # the meta device was only borrowed
