"""evo2kit.analysis.zero_shot: deltas on a synthetic region, and the on-disk delta cache."""

import numpy as np
import pandas as pd
import pytest

from evo2kit import load_model
from evo2kit.analysis import prefix, stats, zero_shot
from evo2kit.data.brca1 import BRCA1_REGION_START


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def variants():
    rng = np.random.default_rng(0)
    region = "".join(rng.choice(list("ACGT"), 600))
    offsets = np.array([150, 150, 300, 420])
    alts = [next(b for b in "ACGT" if b != region[o] and b != skip) for o, skip in zip(offsets, "XAXX")]
    df = pd.DataFrame({"pos": BRCA1_REGION_START + offsets, "ref": [region[o] for o in offsets], "alt": alts,
                       "class": ["LOF", "FUNC", "FUNC", "LOF"]})
    return df, region


@pytest.mark.slow
def test_cache_reuses_the_deltas_it_stored_and_only_those(model, variants, tmp_path):
    df, region = variants
    plain = zero_shot.variant_deltas(model, df, 200, region=region, strands="+-")
    with prefix.counting_tokens(model) as seen:
        first = zero_shot.variant_deltas(model, df, 200, region=region, strands="+-", cache=tmp_path)
    # two strands x (3 unique references whole + 4 variants from their SNV, 100 or 99 bases in, on)
    assert seen["tokens"] == 2 * 3 * 200 + 4 * (100 + 101)
    assert first.attrs["computed"] and plain.attrs["computed"]
    np.testing.assert_array_equal(first["delta"], plain["delta"])
    assert len(list(tmp_path.glob("deltas-*.npy"))) == 2 and not list(tmp_path.glob(".*tmp"))

    with prefix.counting_tokens(model) as seen:
        again = zero_shot.variant_deltas(model, df, 200, region=region, strands="+-", cache=tmp_path)
    assert seen["tokens"] == 0  # nothing recomputed
    assert not again.attrs["computed"]  # so notebook 03 reports no throughput for it
    np.testing.assert_array_equal(again["delta"], plain["delta"])

    # another window, batch size, variant set or method is another entry, never a stale one
    for kwargs, frame in [({"window": 100}, df), ({"window": 200, "batch_size": 2}, df), ({"window": 200}, df.iloc[:3]),
                          ({"window": 200, "shared_prefix": False}, df)]:
        with prefix.counting_tokens(model) as seen:
            got = zero_shot.variant_deltas(model, frame, region=region, cache=tmp_path, **kwargs)
        assert seen["tokens"] > 0
        want = zero_shot.variant_deltas(model, frame, region=region, **kwargs)
        np.testing.assert_array_equal(got["delta"], want["delta"])


@pytest.mark.parametrize("n,decimals", [(60, 1), (500, 2), (3000, 8)])
def test_bootstrap_interval_is_sklearn_on_every_resample(n, decimals):
    """The ranked bootstrap scores the same resamples as one roc_auc_score call per resample,
    ties included (rounded scores), so the interval is sklearn's to float rounding."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(n)
    y = rng.random(n) < 0.3
    s = np.round(rng.normal(size=n) + 0.5 * y, decimals)
    auc, lo, hi = stats.auroc_ci(y, s, n_boot=200, seed=3)
    draw = np.random.default_rng(3)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    boots = []
    for _ in range(200):
        idx = np.concatenate([draw.choice(pos, len(pos)), draw.choice(neg, len(neg))])
        boots.append(roc_auc_score(y[idx], s[idx]))
    assert auc == roc_auc_score(y, s)
    np.testing.assert_allclose([lo, hi], np.quantile(boots, [0.025, 0.975]), rtol=0, atol=1e-12)
    assert lo < auc < hi


def test_bootstrap_interval_names_a_score_that_is_not_a_number():
    y = np.array([True, False, True, False])
    with pytest.raises(ValueError, match=r"1 score\(s\) are not finite numbers \(the first at index 2: nan\)"):
        stats.auroc_ci(y, [0.1, 0.2, np.nan, 0.3])
    with pytest.raises(ValueError, match="same length"):
        stats.auroc_ci(y, [0.1, 0.2])


def test_mean_difference_interval_is_the_percentiles_of_resampled_mean_differences():
    rng = np.random.default_rng(0)
    a, b = rng.normal(-1.0, 1.0, 40), rng.normal(0.0, 2.0, 300)
    diff, lo, hi = stats.mean_difference_ci(a, b, n_boot=500, seed=3)
    draws = np.random.default_rng(3)
    ia, ib = draws.integers(0, 40, (500, 40)), draws.integers(0, 300, (500, 300))
    boots = a[ia].mean(1) - b[ib].mean(1)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (lo, hi) == pytest.approx((np.quantile(boots, 0.025), np.quantile(boots, 0.975)))
    assert lo < diff < hi < 0  # a is clearly below b
    with pytest.raises(ValueError, match="non-empty"):
        stats.mean_difference_ci([], b)
    with pytest.raises(ValueError, match="finite"):
        stats.mean_difference_ci([1.0, np.nan], b)
