"""``tune``'s bad input: each is one LatentflowError naming the argument, raised before any search runs (the
search is never reached: ``run_rungs`` is replaced by a function that fails the test)."""

from __future__ import annotations

import math

import pytest
import torch

from latentflow.app.tune import tune_search
from latentflow.app.tune.tune import tune
from latentflow.errors import LatentflowError

g = torch.Generator().manual_seed(0)
REAL2 = torch.randn(200, 2, generator=g)
IMGS = torch.tanh(torch.randn(60, 1, 6, 6, generator=g))


def G2(z):
    return 1.5 * z


def D2(x):
    return -(x**2).sum(1)


def Gimg(z):
    return torch.tanh(
        z[:, :1, None, None] + 0.3 * torch.randn(z.shape[0], 1, 6, 6, generator=torch.Generator().manual_seed(1))
    )


def Dimg(x):
    return -(x**2).flatten(1).mean(1)


@pytest.fixture(autouse=True)
def no_search(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the search ran although the input is bad")

    monkeypatch.setattr(tune_search, "run_rungs", fail)
    import latentflow.app.tune.tune as t

    monkeypatch.setattr(t, "run_rungs", fail)


def _tune(G=G2, D=D2, real=REAL2, **kw):
    args = dict(latent_dim=2, methods=["mh"], budget=8, progress=False, features="raw")
    args.update(kw)
    return tune(G, D, real, **args)


def _refused(match, **kw):
    with pytest.raises(LatentflowError, match=match) as e:
        _tune(**kw)
    assert "\n" not in str(e.value)


def test_real_of_another_shape_than_g_is_refused():
    _refused(
        r"real: G's samples have shape \[\*, 2\] but the real samples have \[\*, 3\]",
        real=torch.randn(50, 3, generator=g),
    )
    _refused(r"real: G's samples have shape \[\*, 2\] but the real samples have \[\*, 1, 6, 6\]", real=IMGS)


def test_grey_images_without_channel_axis_and_channels_last_are_read_in_g_layout(monkeypatch):
    from latentflow.app.tune.tune_checks import conform_real

    assert conform_real(IMGS[:, 0], (1, 6, 6)).shape == (60, 1, 6, 6)
    rgb = torch.randn(30, 3, 5, 7, generator=g)
    assert torch.equal(conform_real(rgb.permute(0, 2, 3, 1), (3, 5, 7)), rgb)
    with pytest.raises(AssertionError, match="the search ran"):  # accepted: it reaches the search
        _tune(G=Gimg, D=Dimg, real=IMGS[:, 0], latent_dim=3)


def test_real_off_g_range_is_refused_with_the_fix():
    _refused("real is off G's range", real=REAL2 * 1000)
    _refused(r"scale real to G's range first \(e.g. real \* 2 - 1\)", G=Gimg, D=Dimg, real=(IMGS + 1) / 2, latent_dim=3)
    _refused(r"real / 127.5 - 1", G=Gimg, D=Dimg, real=(IMGS + 1) * 127.5, latent_dim=3)


def test_float64_and_uint8_are_converted_bool_is_refused():
    for real in (REAL2.double(), ((REAL2.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)):
        with pytest.raises(AssertionError, match="the search ran"):
            _tune(G=lambda z: torch.tanh(z), real=real)
    _refused(r"real must hold real numbers .*got a torch.bool tensor", real=REAL2 > 0)


def test_latent_dim_g_does_not_take_and_a_bad_seed_are_refused():
    with torch.random.fork_rng(devices=[]):
        lin = torch.nn.Linear(2, 2)
    _refused(r"G failed on latents of shape \(64, 5\) \(latent_dim\)", G=lin, latent_dim=5)
    _refused(r"seed must be an int", seed="a")


def test_d_not_connected_to_x_is_refused():
    _refused("D's output does not depend on x", D=lambda x: torch.zeros(x.shape[0]))


def test_g_or_features_returning_nan_and_d_nan_everywhere_say_the_model_failed():
    _refused("the model failed: G returned non-finite", G=lambda z: z * math.nan)
    _refused("the model failed: D returned non-finite values", D=lambda x: x.sum(1) * math.nan)
    _refused("features returned non-finite values", features=lambda x: x * math.nan)


def test_labels_out_of_range_and_a_conditional_g_without_num_classes_are_refused():
    from test_labels import CondD, CondG

    Gc = CondG()
    Dc = CondD(Gc.means)
    yr = torch.randint(0, 10, (200,), generator=g)
    real = Gc(torch.randn(200, 2, generator=g), yr)
    _refused(r"real_labels must hold class labels in \[0, 9\]; got values", G=Gc, D=Dc, real=real, real_labels=yr + 5)
    _refused(r"y must be one class label", G=Gc, D=Dc, real=real, y=12)

    class Plain(torch.nn.Module):  # needs y but does not say how many classes
        def forward(self, z, y):
            return z

    _refused(r"G needs class labels \(G\(z, y\)\): pass num_classes=", G=Plain(), D=lambda x, y=None: -(x**2).sum(1))


def test_real_labels_for_an_unconditional_model_are_refused():
    _refused(
        "real_labels are given but the model is not class-conditional", real_labels=torch.zeros(200, dtype=torch.long)
    )


def test_bad_time_budget_and_features_are_refused():
    _refused("time_budget must be a number", time_budget=0)
    _refused('features must be "inception", "raw"', features="pixels")
    _refused('features="inception" needs images', features="inception")
