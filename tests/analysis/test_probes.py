"""Fast checks of evo2kit.probes: the DNN learns, clipping acts on fresh gradients, splits do not
leak groups, bootstrap intervals bracket their estimate."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from evo2kit.analysis import probes


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These toy models are tiny: one thread is faster than two that wait on each other on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy(n=300, d=8, seed=0):
    """Two Gaussian classes 3 sd apart along the first axis (~93% separable by a line)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += 3.0 * y
    return X, y


def test_dnn_learns_a_separable_toy_set():
    X, y = toy()
    sp = probes.random_split(y)
    fitted = probes.fit_dnn(X[sp.train], y[sp.train], X[sp.val], y[sp.val],
                            probes.DNNConfig(max_epochs=15, early_stop=15, batch_size=64, lr=3e-3))
    p = fitted.predict_proba(X[sp.test])
    assert p.shape == (len(sp.test), 2)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert roc_auc_score(y[sp.test], p[:, 1]) > 0.85
    assert 1 <= fitted.best_epoch <= 15
    assert fitted.history["val_auroc"].max() > 0.85


def test_clipping_acts_on_the_gradients_of_this_step():
    X, y = toy(n=64)
    model = probes.ProbeDNN(X.shape[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves .grad untouched to inspect
    xb = torch.as_tensor(X * 1e3)  # huge inputs -> huge gradients
    yb = torch.as_tensor(y, dtype=torch.float32)
    _, norm_before = probes.train_step(model, opt, xb, yb, max_grad_norm=0.5)
    norm_after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm_before > 0.5  # clipping had something to do ...
    assert float(norm_after) <= 0.5 + 1e-4  # ... and did it to the gradients opt.step() used


def test_random_split_is_stratified_60_20_20_and_disjoint():
    _, y = toy(n=500)
    sp = probes.random_split(y)
    assert [len(s) for s in sp] == [300, 100, 100]
    assert len(np.unique(np.concatenate(sp))) == 500
    for s in sp:
        assert abs(y[s].mean() - y.mean()) < 0.02
    assert all(np.array_equal(a, b) for a, b in zip(sp, probes.random_split(y)))  # seeded


def test_grouped_split_shares_no_position():
    rng = np.random.default_rng(1)
    pos = np.repeat(rng.choice(10_000, size=400, replace=False), 3)  # three SNVs at each position
    y = (rng.random(len(pos)) < 0.25).astype(int)
    sp = probes.grouped_split(y, groups=pos)
    sets = [set(pos[s]) for s in sp]
    assert not sets[0] & sets[2] and not sets[0] & sets[1] and not sets[1] & sets[2]
    assert len(np.concatenate(sp)) == len(pos)
    assert 0.15 < len(sp.test) / len(pos) < 0.25
    # the random split, by contrast, puts most test positions in training too
    rs = probes.random_split(y)
    assert len(set(pos[rs.test]) & set(pos[rs.train])) > 0.5 * len(set(pos[rs.test]))


def test_grouped_split_needs_enough_groups():
    with pytest.raises(ValueError, match="at least 5 groups"):
        probes.grouped_split(np.array([0, 1] * 10), groups=np.arange(20) // 5)


def test_split_auroc_ci_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(2)
    widths = []
    for n in (100, 2000):
        y = (rng.random(n) < 0.3).astype(int)
        score = y + rng.normal(scale=1.2, size=n)
        sp = probes.random_split(y)
        row = probes.split_auroc(y, score, sp, n_boot=300)
        assert row["auroc"] == pytest.approx(roc_auc_score(y[sp.test], score[sp.test]))
        assert row["ci_low"] < row["auroc"] < row["ci_high"]
        assert row["n_test"] == len(sp.test)
        widths.append(row["ci_high"] - row["ci_low"])
    assert widths[1] < widths[0] / 2


def test_onehot_context_pads_edges_and_unknown_bases_with_zeros():
    oh = probes.onehot_context(["ACGTN", "GGA"], np.array([2, 0]), flank=1)
    assert oh.shape == (2, 12)
    np.testing.assert_array_equal(oh[0].reshape(3, 4), [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(oh[1].reshape(3, 4), [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]])


@pytest.mark.slow
def test_probe_table_has_one_row_per_feature_split_probe():
    X, y = toy(n=200)
    splits = {"random": probes.random_split(y), "grouped": probes.grouped_split(y, np.arange(200) // 4)}
    table = probes.probe_table({"signal": X, "noise": np.random.default_rng(0).normal(size=X.shape)}, y, splits,
                               config=probes.DNNConfig(max_epochs=3, early_stop=3, batch_size=64, lr=3e-3), n_boot=100)
    assert len(table) == 2 * 2 * 2
    assert (table["ci_low"] <= table["auroc"]).all() and (table["auroc"] <= table["ci_high"]).all()
    signal = table[table.features == "signal"]["auroc"].min()
    noise = table[table.features == "noise"]["auroc"].max()
    assert signal > 0.85 > noise


def test_grouped_cv_auroc_separates_signal_from_noise():
    X, y = toy(n=200)
    groups = np.arange(200) // 2
    auc, lo, hi = probes.grouped_cv_auroc(X, y, groups, n_boot=200)
    assert auc > 0.9 and lo <= auc <= hi
    noise, _, _ = probes.grouped_cv_auroc(np.random.default_rng(3).normal(size=X.shape), y, groups, n_boot=200)
    assert noise < 0.7  # (out-of-fold AUROC on noise can fall well below 0.5: the classic CV bias)


def test_early_stopping_stops_and_restores_the_best_weights():
    """On labels with no signal the validation AUROC wanders: training must stop ``early_stop``
    epochs after its best epoch and hand back that epoch's weights, not the last ones."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(240, 6)).astype(np.float32)
    y = (rng.random(240) < 0.4).astype(np.int64)
    sp = probes.random_split(y)
    cfg = probes.DNNConfig(max_epochs=60, early_stop=5, lr_patience=2, batch_size=32, lr=1e-2)
    fitted = probes.fit_dnn(X[sp.train], y[sp.train], X[sp.val], y[sp.val], cfg)
    h = fitted.history
    assert len(h) == fitted.best_epoch + cfg.early_stop < cfg.max_epochs  # stopped early, on time
    best = h["val_auroc"].max()
    assert h.loc[h.epoch == fitted.best_epoch, "val_auroc"].item() == best
    assert h["val_auroc"].iloc[-1] != best  # the last epoch's weights were worse ...
    restored = roc_auc_score(y[sp.val], fitted.predict_proba(X[sp.val])[:, 1])
    assert restored == pytest.approx(best, abs=1e-6)  # ... and the returned model is the best epoch's
    assert h["lr"].iloc[-1] < cfg.lr  # ReduceLROnPlateau (on validation AUROC) lowered the rate



def test_fit_dnn_is_the_same_whatever_the_callers_thread_count():
    """Training is pinned to ``config.threads``: the caller's thread count (what OMP_NUM_THREADS or
    a busy machine sets) must not change a single bit of the trained probe."""
    X, y = toy(n=600, d=64)  # big enough that 1 and 2 threads sum differently (measured: 4e-3 apart unpinned)
    sp = probes.random_split(y)
    cfg = probes.DNNConfig(max_epochs=8, early_stop=8, batch_size=32, lr=3e-3, seed=3)
    preds = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fitted = probes.fit_dnn(X[sp.train], y[sp.train], X[sp.val], y[sp.val], cfg)
        preds.append(fitted.predict_proba(X[sp.test])[:, 1])
        assert torch.get_num_threads() == threads  # restored afterwards
    torch.set_num_threads(1)
    np.testing.assert_array_equal(preds[0], preds[1])
    other = probes.fit_dnn(X[sp.train], y[sp.train], X[sp.val], y[sp.val],
                           probes.DNNConfig(**{**cfg.__dict__, "seed": 4}))
    assert not np.array_equal(other.predict_proba(X[sp.test])[:, 1], preds[0])  # the seed does matter


def test_pinned_compute_restores_global_state():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    before = torch.are_deterministic_algorithms_enabled()
    with probes.pinned_compute(threads=1, seed=123):
        assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
        torch.rand(100)  # draws inside must not shift the caller's stream
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.equal(torch.rand(3), expected)


def test_probe_table_trains_the_dnn_once_per_seed_and_summarize_averages():
    X, y = toy(n=200)
    splits = {"random": probes.random_split(y), "grouped": probes.grouped_split(y, np.arange(200) // 4)}
    cfg = probes.DNNConfig(max_epochs=3, early_stop=3, batch_size=64, lr=3e-3)
    table = probes.probe_table({"a": X, "b": X[:, ::-1].copy()}, y, splits, config=cfg, n_boot=50, seeds=[0, 1, 2])
    assert len(table) == 2 * 2 * (3 + 1)  # features x splits x (3 DNN seeds + 1 logistic)
    assert sorted(table[table.probe == "dnn"].seed.unique()) == [0, 1, 2]
    assert (table[table.probe == "logreg"].seed == -1).all()
    summary = probes.summarize(table)
    assert len(summary) == 2 * 2 * 2
    for row in summary.itertuples():
        runs = table[(table.features == row.features) & (table.split == row.split) & (table.probe == row.probe)]
        assert row.n_seeds == len(runs)
        assert row.auroc == pytest.approx(runs.auroc.mean())
        assert row.auroc_sd == pytest.approx(runs.auroc.std() if len(runs) > 1 else 0.0)
        assert row.auroc_min <= row.auroc <= row.auroc_max
    gap = probes.split_gap(summary, "random", "grouped", "dnn")
    assert list(gap.index) == ["a", "b"]
    for name, value in gap.items():
        mean = summary[(summary.probe == "dnn") & (summary.features == name)].set_index("split")["auroc"]
        assert value == pytest.approx(mean["random"] - mean["grouped"])
    with pytest.raises(ValueError, match="at least one seed"):
        probes.probe_table({"a": X}, y, splits, config=cfg, seeds=[])


def test_probe_table_is_the_same_trained_in_parallel_worker_processes():
    X, y = toy(n=200)
    splits = {"random": probes.random_split(y), "grouped": probes.grouped_split(y, np.arange(200) // 4)}
    cfg = probes.DNNConfig(max_epochs=4, early_stop=4, batch_size=32, lr=3e-3)
    args = ({"a": X, "b": X[:, ::-1].copy()}, y, splits)
    one = probes.probe_table(*args, config=cfg, n_boot=20, seeds=[0, 1], n_jobs=1)
    two = probes.probe_table(*args, config=cfg, n_boot=20, seeds=[0, 1], n_jobs=2)
    pd.testing.assert_frame_equal(one, two)  # bit for bit: each probe is pinned to its threads and seed
    assert len(set(one.auroc[one.probe == "dnn"])) > 1  # the probes differ, so equality says something


def test_distance_to_training_matches_brute_force():
    rng = np.random.default_rng(5)
    pos = rng.integers(0, 5_000, size=300)
    y = (rng.random(300) < 0.3).astype(int)
    for sp in (probes.random_split(y), probes.grouped_split(y, groups=pos // 100)):
        brute = np.abs(pos[sp.test][:, None] - pos[sp.train][None, :]).min(1)
        np.testing.assert_array_equal(probes.distance_to_training(pos, sp), brute)
