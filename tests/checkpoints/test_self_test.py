"""Evo 2's own self-test (evo2kit.checkpoints.self_test): the computation against a plain one written
here, the verdict on made-up values, and load_model(self_test=True) on the bundled model."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import evo2kit
from evo2kit.checkpoints import self_test as st
from evo2kit.checkpoints.official import PUBLISHED_CHECKPOINTS, save_pretrained

PROMPTS = "evo2_repo/test/prompts.csv"


def plain_metrics(model: evo2kit.Evo2Model, seq: str, dtype: torch.dtype) -> tuple[float, float]:
    """Next-token loss and accuracy of one sequence written out: byte ids, the module's logits,
    a float64 log-softmax, the mean of -log p(true next base) over positions 0..L-2; the loss
    then rounded to ``dtype``, as torch's cross_entropy returns it for logits of that dtype."""
    ids = torch.tensor([ord(c) for c in seq])
    with torch.no_grad():
        logits = model.model(ids[None])[0, :-1]
    logp = torch.log_softmax(logits.double(), -1)
    loss = -logp[torch.arange(len(seq) - 1), ids[1:]].mean()
    accuracy = (logits.argmax(-1) == ids[1:]).double().mean()
    return float(loss.to(dtype)), float(accuracy)


@pytest.fixture(scope="module")
def tiny():
    return evo2kit.load_model()


# ----------------------------------------------------------------------------- the computation


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_forward_pass_equals_a_plain_computation_on_a_few_hundred_bases_of_each_prompt(real_dir, dtype):
    model = evo2kit.load_model(dtype=dtype)
    prompts = st.read_prompts(real_dir / PROMPTS)
    seqs = [seq[:300] for _, seq in prompts]
    losses, accuracies, got_dtype = st.forward_pass(model, seqs)
    assert got_dtype == dtype
    for seq, loss, accuracy in zip(seqs, losses, accuracies):
        plain_loss, plain_accuracy = plain_metrics(model, seq, getattr(torch, dtype))
        assert accuracy == pytest.approx(plain_accuracy, abs=1e-6)  # the same argmaxes (one differing: 1/299)
        if dtype == "float32":
            assert loss == pytest.approx(plain_loss, abs=2e-6)
        else:  # the loss is a bfloat16 number, as Arc's is for a bfloat16 model: one bfloat16 step apart at most
            assert float(torch.tensor(loss).bfloat16()) == loss
            assert abs(loss - plain_loss) <= 2 ** (math.floor(math.log2(plain_loss)) - 7)


def test_forward_pass_takes_an_object_shaped_like_evo2_Evo2(tiny):
    """evo2.Evo2 has no device and no name; its forward returns ((logits, inference_params), None)."""
    arc_like = SimpleNamespace(tokenizer=tiny.tokenizer,
                               forward=lambda ids: ((tiny.model(ids), None), None))
    seqs = ["ACGTTGCAAGGCTTAACGNTAGC" * 10, "GATTACA" * 30]
    assert st.forward_pass(arc_like, seqs) == st.forward_pass(tiny, seqs)


def test_self_test_of_the_bundled_model_on_the_real_prompts_matches_its_recorded_values(real_dir):
    prompts = st.read_prompts(real_dir / PROMPTS)
    assert [n for n, _ in prompts] == ["L1RE2", "ECOLAC", "NC_007596.2Mammuthusprimigeniusmitochondrion",
                                       "NC_012920.1_homosapiens_mitochondrion"]
    assert [len(s) for _, s in prompts] == [6538, 7056, 6160, 7616]  # shared/data README, evo2_repo/
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a match warns nothing
        model = evo2kit.load_model(self_test=True)
    result = model.self_test_result
    assert result.matches is True and result.verdict.startswith("evo2kit-tiny matches its recorded")
    recorded = st.RECORDED_SELF_TEST["evo2kit-tiny"]
    assert result.loss == pytest.approx(recorded.loss, abs=1e-6)  # recorded to 6 decimals
    assert result.accuracy == pytest.approx(recorded.accuracy, abs=1e-6)
    assert result.loss == pytest.approx(np.mean(result.losses)) and len(result.losses) == 4
    table = result.table()
    assert list(table.index[:4]) == [n for n, _ in prompts]
    assert table["bases"].iloc[4] == 27370 and table["loss"].iloc[-1] == pytest.approx(result.loss - recorded.loss)


def test_load_model_self_test_warns_when_weights_under_the_tiny_name_are_not_its_own(real_dir, tiny, tmp_path):
    """Perturbed weights saved as 'evo2kit-tiny': they load, run, and the self-test says they are wrong."""
    perturbed = evo2kit.load_model()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in perturbed.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g) * p.abs().mean())
    path = save_pretrained(perturbed.model, tmp_path, "evo2kit-tiny")
    assert json.loads(path.with_suffix(".json").read_text())["model_name"] == "evo2kit-tiny"
    with pytest.warns(UserWarning, match="evo2kit-tiny does NOT match its recorded self-test values") as caught:
        model = evo2kit.load_model("evo2kit-tiny", local_path=path, self_test=True)
    assert model.self_test_result.matches is False
    assert "weights changed after loading, or other weights saved under its name" in str(caught[0].message)
    assert caught[0].filename == __file__  # the warning points at the caller of load_model


# ----------------------------------------------------------------------------- the verdict

NAMES, LENGTHS = ["a", "b", "c", "d"], [6538, 7056, 6160, 7616]


def judge(name, loss, accuracy, dtype="bfloat16", **kw):
    """The verdict on four sequences with made-up values whose means are ``loss`` and ``accuracy``."""
    spread = np.array([-0.03, 0.01, 0.0, 0.02])  # sums to zero: the mean is the given value
    return st.judge(name, NAMES, LENGTHS, list(loss + spread), list(accuracy + spread), dtype, **kw)


def one_sentence(verdict: str) -> bool:
    return verdict.endswith(".") and ". " not in verdict and "\n" not in verdict


def test_a_match_within_arcs_tolerance():
    for name, ref in st.PUBLISHED_SELF_TEST.items():
        r = judge(name, ref.loss + 0.0009, ref.accuracy - 0.004)
        assert r.matches is True and r.reference is ref, name
        assert r.verdict.startswith(f"{name} matches the published values") and one_sentence(r.verdict)
    r = judge("evo2_1b_base", 0.501953125, 0.79556)
    assert "mean loss 0.5020 vs 0.5020 (tolerance 0.001), accuracy 79.556% vs 79.556%" in r.verdict


def test_a_mismatch_names_the_usual_causes_for_that_checkpoint():
    r = judge("evo2_1b_base", 1.248, 0.38477)  # ArcInstitute/evo2 #157
    assert r.matches is False and one_sentence(r.verdict)
    assert r.verdict.startswith("evo2_1b_base does NOT match the published values")
    assert "FP8 input projections off" in r.verdict and "#132" in r.verdict
    assert "B300" in r.verdict and "Hopper" not in r.verdict  # the 1B needs FP8 casts, not Hopper's accumulation
    assert "#157" in r.verdict  # FP8 run otherwise: a Blackwell GPU
    r = judge("evo2_40b", 0.5, 0.8)
    assert "Hopper's fast accumulation" in r.verdict and "1.70 in bfloat16" in r.verdict and one_sentence(r.verdict)
    r = judge("evo2_7b", 0.36, 0.85)
    assert "fp8='emulate'" in r.verdict and "#132" not in r.verdict  # the 7B runs in bfloat16 without FP8
    assert "the weights of another checkpoint under this name" in r.verdict


def test_a_mismatch_from_the_dtype_or_from_another_checkpoint_says_so():
    ref = st.PUBLISHED_SELF_TEST["evo2_7b"]
    r = judge("evo2_7b", ref.loss + 0.002, ref.accuracy, dtype="float32")
    assert r.matches is False and "this run's logits are float32, the reference's bfloat16" in r.verdict
    assert r.verdict.index("float32") < r.verdict.index("FP8")  # the visible cause first
    base = st.PUBLISHED_SELF_TEST["evo2_7b_base"]
    r = judge("evo2_7b", base.loss, base.accuracy)
    assert r.matches is False and "these values match evo2_7b_base's" in r.verdict
    assert "this run's logits" not in r.verdict  # same dtype as the reference


def test_either_tolerance_alone_fails_a_model():
    ref = st.PUBLISHED_SELF_TEST["evo2_20b"]
    assert judge("evo2_20b", ref.loss + 0.0011, ref.accuracy).matches is False  # Arc's 1e-3 on the loss
    assert judge("evo2_20b", ref.loss - 0.0011, ref.accuracy).matches is False
    assert judge("evo2_20b", ref.loss, ref.accuracy + 0.006).matches is False  # 0.5 points on the accuracy
    assert judge("evo2_20b", ref.loss, ref.accuracy - 0.0049).matches is True


def test_unknown_names_and_random_weights_get_no_reference_and_never_match():
    for name in ("evo2_7b_262k", "1b-8k-bf16", "my_model"):
        r = judge(name, 0.35, 0.86)
        assert r.matches is None and r.reference is None and one_sentence(r.verdict), name
        assert r.verdict.startswith(f"No reference values for {name}") and " matches" not in r.verdict
        assert "cannot say whether it is right" in r.verdict
    ref = st.PUBLISHED_SELF_TEST["evo2_7b"]  # even values equal to a published checkpoint's
    r = judge("evo2_7b", ref.loss, ref.accuracy, random_weights="loaded from no checkpoint")
    assert r.matches is None and r.reference is None and " matches" not in r.verdict
    assert r.verdict.startswith("evo2_7b has random weights (loaded from no checkpoint)") and one_sentence(r.verdict)
    assert r.table().shape[0] == 5  # the sequences and the mean, no reference rows


def test_which_models_are_known_to_have_random_weights():
    ours = SimpleNamespace(weights_sha256=None, load_report=None)
    assert st.random_weights_reason(ours, "evo2_7b") == "loaded from no checkpoint"  # load_model(random_weights=True)
    assert st.random_weights_reason(SimpleNamespace(weights_sha256="ab" * 32, load_report=None), "evo2kit-tiny") is None
    assert st.random_weights_reason(SimpleNamespace(weights_sha256=None, load_report="report"), "evo2_7b") is None
    assert st.random_weights_reason(SimpleNamespace(), "evo2_7b") is None  # evo2.Evo2: loaded from its checkpoint
    assert "rehearsal" in st.random_weights_reason(SimpleNamespace(weights_sha256=None, load_report="report"),
                                                   "evo2_rehearsal")


def test_a_published_name_with_random_weights_has_no_reference():
    """load_model(name, random_weights=True): the published name, untrained weights (built on meta: shapes only)."""
    model = evo2kit.load_model("evo2_1b_base", random_weights=True, device="meta")
    assert model.name == "evo2_1b_base" and st.random_weights_reason(model, model.name) == "loaded from no checkpoint"


def test_the_name_is_required_when_the_model_has_none():
    with pytest.raises(ValueError, match="pass name=, e.g. self_test\\(model, name='evo2_7b'\\)"):
        st.self_test(SimpleNamespace(tokenizer=None, forward=None))


def test_the_published_table_is_arcs():
    """ArcInstitute/evo2 evo2/test/test_evo2.py at the pinned commit, expected_metrics (accuracy in %)."""
    arc = {'evo2_40b': {'loss': 0.2159424, 'acc': 91.673}, 'evo2_7b': {'loss': 0.3476563, 'acc': 86.346},
           'evo2_40b_base': {'loss': 0.2149658, 'acc': 91.741}, 'evo2_7b_base': {'loss': 0.3520508, 'acc': 85.921},
           'evo2_1b_base': {'loss': 0.501953125, 'acc': 79.556}, 'evo2_20b': {'loss': 0.2166748046875, 'acc': 91.666}}
    assert {n: {"loss": r.loss, "acc": round(100 * r.accuracy, 3)} for n, r in st.PUBLISHED_SELF_TEST.items()} == arc
    assert all(r.source.startswith("published: ArcInstitute/evo2 evo2/test/test_evo2.py at 53f1959")
               for r in st.PUBLISHED_SELF_TEST.values())
    assert set(st.PUBLISHED_SELF_TEST) <= set(PUBLISHED_CHECKPOINTS)
