"""Precision, recall, density and coverage (``latentflow.metrics.manifold``): a case computed by hand, a numpy
brute force on random and tied sets, identities with known answers, torch-fidelity's precision/recall where
the two overlap, the recall noise margin, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentflow.errors import OptionError, ShapeError
from latentflow.metrics import keeps_recall, prdc, recall_margin
from latentflow.metrics.toy2d import toy_metrics

KEYS = ("precision", "recall", "density", "coverage")


def brute(X: np.ndarray, Y: np.ndarray, k: int) -> dict:
    """The definitions, written out with every pairwise distance (closed balls, self excluded)."""
    dxx = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    dyy = np.sqrt(((Y[:, None] - Y[None]) ** 2).sum(-1))
    np.fill_diagonal(dxx, np.inf)
    np.fill_diagonal(dyy, np.inf)
    r = np.sort(dxx, 1)[:, k - 1]  # k-th nearest other real row
    s = np.sort(dyy, 1)[:, k - 1]
    dyx = np.sqrt(((Y[:, None] - X[None]) ** 2).sum(-1))  # [M, N]
    in_real = dyx <= r[None, :]
    in_fake = dyx <= s[:, None]
    return {
        "precision": float(in_real.any(1).mean()),
        "recall": float(in_fake.any(0).mean()),
        "density": float(in_real.sum() / (k * Y.shape[0])),
        "coverage": float(in_real.any(0).mean()),
    }


def test_a_case_computed_by_hand_with_ties_on_ball_boundaries():
    # reals 0, 1, 2, 3 on a line: every real 1-NN radius is 1. Fakes 0.5, 1, 3, 3.5, 9: fake radii 0.5, 0.5,
    # 0.5, 0.5, 5.5. Fake 1 lies on the boundary of the balls of 0 and 2, fake 3 on that of 2 (closed: inside).
    X = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    Y = torch.tensor([[0.5], [1.0], [3.0], [3.5], [9.0]])
    got = prdc(X, Y, k=1)
    # precision: 4 of 5 fakes lie in a real ball (9 does not); density: (2 + 3 + 2 + 1 + 0) / (1 · 5);
    # recall: reals 0, 1 (ball of 0.5, 0 on its boundary) and 3 (ball of 3) are covered, 2 is not;
    # coverage: every real ball holds a fake (2's holds 1 and 3 on its boundary).
    assert got == {"precision": 0.8, "recall": 0.75, "density": 1.6, "coverage": 1.0}
    assert got["density"] > 1  # density is not bounded by 1
    assert got == brute(X.numpy(), Y.numpy(), 1)


@pytest.mark.parametrize("n,m,d", [(50, 40, 3), (120, 90, 16), (31, 64, 2)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_the_brute_force_on_random_sets_for_any_block(n, m, d, k):
    rng = np.random.default_rng(n + m + d + k)
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(m, d)) * 1.3 + 0.2
    want = brute(X, Y, k)
    for block in (None, 7, n * 3 + 1):
        got = prdc(torch.from_numpy(X), torch.from_numpy(Y), k, block=block)
        assert got == pytest.approx(want, abs=1e-12)
        assert all(0 <= got[q] <= 1 for q in ("precision", "recall", "coverage"))
        assert 0 <= got["density"] <= n / k


@pytest.mark.parametrize("offset", [0.0, 3e8])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_exact_on_integer_grids_full_of_ties_and_duplicates(offset, k):
    # points on a small grid: many equal distances (ties at every radius) and duplicate rows. With the offset
    # the Gram expansion's rounding (|x|² ~ 2e17, whose ulp is 32) swamps the squared distances (0..32): the
    # plain expansion gets these sets wrong, and the exact recomputation must decide every comparison as the
    # direct formula does.
    rng = np.random.default_rng(k)
    X = rng.integers(0, 4, size=(70, 2)).astype(np.float64) + offset
    Y = rng.integers(0, 5, size=(60, 2)).astype(np.float64) + offset
    got = prdc(X, Y, k, block=97)
    assert got == brute(X, Y, k)


def test_a_set_against_itself_has_known_values():
    # Y = X without ties: every row lies in its own ball and in those of its k neighbours' ... exactly: each
    # real ball B(X_i, r_i) holds X_i and its k nearest neighbours, so density = (k + 1) / k.
    X = torch.randn(300, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k in (1, 3, 5):
        assert prdc(X, X.clone(), k) == pytest.approx(
            {"precision": 1, "recall": 1, "coverage": 1, "density": (k + 1) / k}
        )


def test_a_sample_equal_to_a_duplicated_real_row_is_inside_its_zero_radius_ball():
    X = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [9.0, 0.0]])  # the first two: 1-NN radius 0
    Y = torch.tensor([[0.0, 0.0], [20.0, 20.0], [30.0, 30.0]])
    got = prdc(X, Y, k=1)
    assert got["precision"] == pytest.approx(1 / 3)  # (0, 0) lies in the closed ball of radius 0
    assert got["density"] == pytest.approx(2 / 3)  # in two balls (both duplicates), k = 1, M = 3
    assert got == brute(X.numpy(), Y.numpy(), 1)


def test_separated_sets_score_zero_and_float32_input_is_computed_in_float64():
    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    got = prdc(X, X + 100.0, k=3)
    assert got == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    a, b = X[:20], X[20:]
    assert prdc(a, b, 3) == prdc(a.double(), b.double(), 3) == prdc(a.numpy(), b.numpy(), 3)


@pytest.mark.parametrize("k", [3, 5])
def test_precision_and_recall_agree_with_torch_fidelity_on_the_same_rows(k):
    tf = pytest.importorskip("torch_fidelity.metric_prc")
    g = torch.Generator().manual_seed(k)
    X = torch.randn(400, 32, generator=g)
    Y = torch.randn(300, 32, generator=g) * 1.2 + 0.1
    p_tf, r_tf = tf.calculate_precision_recall_full(Y, X, neighborhood=k)  # torch-fidelity: (fake, real)
    p_part, r_part = tf.calculate_precision_recall_part(Y, X, neighborhood=k, batch_size=128)
    got = prdc(X, Y, k)
    # torch-fidelity works in float32 (cdist), latentflow in float64: a point within float32 rounding of a
    # ball's boundary could flip, so the two may differ by at most one point per set (none do here in
    # practice); its results are float32 means, hence the 1e-6
    for p, r in ((p_tf, r_tf), (p_part, r_part)):
        assert abs(got["precision"] - p) <= 1 / 300 + 1e-6
        assert abs(got["recall"] - r) <= 1 / 400 + 1e-6


def test_toy_metrics_carry_prdc_on_raw_coordinates():
    from latentflow.data import toy

    ds = toy("grid25")
    data = ds.sample(2000, generator=3)
    m = toy_metrics(data, ds)
    assert set(KEYS) <= set(m)
    # a fresh draw of the data scores near the ideal: precision, recall, coverage near 1, density near 1
    assert m["precision"] > 0.9 and m["recall"] > 0.9 and m["coverage"] > 0.9 and 0.8 < m["density"] < 1.2
    collapsed = ds.centers[:1].repeat(2000, 1) + 0.01 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    c = toy_metrics(collapsed.to(data.dtype), ds)
    assert c["recall"] < 0.1 and c["coverage"] < 0.1  # one mode of 25: diversity lost
    assert set(KEYS).isdisjoint(toy_metrics(data[:5], ds))  # k = 5 needs 6 samples: left out


def test_recall_margin_is_a_binomial_standard_error():
    assert recall_margin(0.5, 100, z=1.0) == pytest.approx(0.05)  # p̃ = 51/102 = 0.5: sqrt(0.25 / 100)
    n = 10_000
    p = (0.9 * n + 1) / (n + 2)
    assert recall_margin(0.9, n) == pytest.approx(2 * math.sqrt(p * (1 - p) / n))
    assert recall_margin(1.0, n) > 0  # a perfect recall still has an error
    gen = {"recall": 0.60}
    se = math.hypot(recall_margin(0.60, n, 1), recall_margin(0.59, n, 1))
    assert keeps_recall(gen, {"recall": 0.60}, n) and keeps_recall(gen, {"recall": 0.70}, n)
    assert keeps_recall(gen, {"recall": 0.59}, n) == (0.01 <= 2 * se)  # 0.01 is within 2 SE at n = 10k
    assert not keeps_recall(gen, {"recall": 0.55}, n)  # 0.05 is ~7 SE
    assert keeps_recall(gen, {"recall": 0.55}, 100)  # but not at n = 100 (SE ~ 0.05)


def test_recall_margin_covers_the_sampling_noise_of_recall():
    # two independent fake sets from the same law, measured on the same reals, keep each other's recall
    g = torch.Generator().manual_seed(5)
    X = torch.randn(800, 4, generator=g, dtype=torch.float64)
    a = prdc(X, torch.randn(800, 4, generator=g, dtype=torch.float64))
    b = prdc(X, torch.randn(800, 4, generator=g, dtype=torch.float64))
    assert keeps_recall(a, b, 800) and keeps_recall(b, a, 800)
    # a fake set that covers only the half-space x0 > 0 loses recall beyond the margin
    c = torch.randn(800, 4, generator=g, dtype=torch.float64)
    c[:, 0] = c[:, 0].abs()
    assert not keeps_recall(a, prdc(X, c), 800)


def test_errors_name_the_argument():
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(10, 3, generator=g), torch.randn(8, 3, generator=g)
    with pytest.raises(OptionError, match=r"k: expected k < the number of rows.*k=8 with 10 real and 8 generated"):
        prdc(X, Y, k=8)
    for bad in (0, -1, True, 2.0):
        with pytest.raises(OptionError, match="k: expected an int >= 1"):
            prdc(X, Y, k=bad)
    with pytest.raises(ShapeError, match=r"fake_features: expected rows of the real features' width 3"):
        prdc(X, torch.zeros(8, 4))
    with pytest.raises(ShapeError, match=r"real_features: expected feature rows \[N, D\]; got shape \(10,\)"):
        prdc(torch.zeros(10), Y)
    bad = Y.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ShapeError, match=r"fake_features: expected finite feature rows; rows \[2\]"):
        prdc(X, bad)
    with pytest.raises(ShapeError, match="real_features: expected feature rows"):
        prdc("abc", Y)
    with pytest.raises(OptionError, match="block: expected a positive int"):
        prdc(X, Y, 2, block=0)
    with pytest.raises(OptionError, match="num_real: expected a positive int"):
        recall_margin(0.5, 0)
    with pytest.raises(OptionError, match=r"recall: expected a value in \[0, 1\]"):
        recall_margin(1.5, 10)
    with pytest.raises(OptionError, match="candidate: expected a prdc\\(\\) dict"):
        keeps_recall({"recall": 0.5}, {"precision": 0.5}, 10)


@pytest.mark.usefixtures("isolated_cache")
def test_image_prdc_uses_fids_features_and_agrees_with_torch_fidelity_precision_recall():
    from latentflow.data import load_fashion_mnist
    from latentflow.errors import LatentflowError
    from latentflow.metrics import KEY_FID, compute_metrics, feature_rows, image_prdc, precision_recall
    from latentflow.metrics.fidelity import FMNIST

    pytest.importorskip("torch_fidelity")
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    try:
        fake, real = load_fashion_mnist("train")[0][:150], load_fashion_mnist("test")[0][:150]
    except LatentflowError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    # the rows are the ones FID is computed from: the FID of their statistics is torch-fidelity's FID
    rf, rr = (feature_rows(x, feature_extractor=FMNIST) for x in (fake, real))
    assert rf.shape == (150, 128) and rr.dtype == torch.float32
    stats = [fid_features_to_statistics(f) for f in (rf, rr)]
    fid = compute_metrics(fake, real, fid=True, feature_extractor=FMNIST)[KEY_FID]
    assert fid_statistics_to_metric(*stats, verbose=False)[KEY_FID] == pytest.approx(fid, rel=1e-6)
    got = image_prdc(fake, real, feature_extractor=FMNIST)
    assert (got["k"], got["num_real"], got["num_fake"]) == (5, 150, 150)
    tf = precision_recall(fake, real, feature_extractor=FMNIST, prc_neighborhood=5)
    # one point within float32 rounding of a boundary could flip (see the test on raw rows above)
    assert abs(got["precision"] - tf["precision"]) <= 1 / 150 + 1e-6
    assert abs(got["recall"] - tf["recall"]) <= 1 / 150 + 1e-6
    # a named reference: its rows come from (and go to) torch-fidelity's cache, the first num_fake of them
    named = image_prdc(fake[:100], "fashion-mnist-test", feature_extractor=FMNIST)
    assert named["num_real"] == 100
    assert named == {**image_prdc(fake[:100], real[:100], feature_extractor=FMNIST), "num_real": 100}
