import math

import torch

import latentflow as lf
from latentflow.energy import latent_from_u, to_logit, u_from_latent


def test_prob_to_logit_is_stable_and_exact():
    d = torch.tensor([-30.0, -2.0, 0.0, 3.0, 30.0], dtype=torch.float64)
    back = to_logit(torch.sigmoid(d), "prob")
    torch.testing.assert_close(back[1:4], d[1:4])
    assert torch.isfinite(to_logit(torch.tensor([0.0, 1.0]), "prob")).all()


def test_uniform_map_round_trip_and_pushes_normal_to_uniform():
    z = torch.rand(1000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.98 - 0.99
    torch.testing.assert_close(latent_from_u(u_from_latent(z, "uniform"), "uniform"), z)
    u = torch.randn(20000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    zz = latent_from_u(u, "uniform")
    # a U[-1, 1] sample of size n: mean 0 +- 5 sqrt(1/3/n)
    assert abs(float(zz.mean())) < 5 * math.sqrt(1 / 3 / 20000)
    assert abs(float((zz <= 0.5).double().mean()) - 0.75) < 5 * math.sqrt(0.75 * 0.25 / 20000)


# -- D outputs, frozen models ------------------------------------------------------------------------

import warnings  # noqa: E402

import pytest  # noqa: E402

from latentflow.energy import closed_over_modules, d_values, frozen  # noqa: E402
from latentflow.errors import ShapeError  # noqa: E402


def test_d_values_accepts_one_value_per_row():
    v = torch.arange(3.0)
    for shape in ((3,), (3, 1), (3, 1, 1, 1)):
        assert torch.equal(d_values(v.reshape(shape), 3), v)
    assert torch.equal(d_values(torch.tensor(2.0), 1), torch.tensor([2.0]))
    for bad, n in ((torch.zeros(3, 2), 3), (torch.tensor(1.0), 2), (torch.zeros(2, 1), 3)):
        with pytest.raises(ShapeError, match="expected"):
            d_values(bad, n)


def test_a_lambda_around_a_batchnorm_d_warns_and_is_evaluated_in_eval_mode():
    import functools

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    D = lambda x: net(x)[:, 0]
    assert closed_over_modules(D) == [net]
    assert closed_over_modules(functools.partial(torch.add, net)) == [net]
    assert closed_over_modules(net.forward) == [net]
    with pytest.warns(UserWarning, match="closes over a Sequential in train mode"):
        with frozen(D):
            assert not net.training and not net[1].training
            assert not any(p.requires_grad for p in net.parameters())
    assert net.training and all(p.requires_grad for p in net.parameters())  # restored
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in eval mode: nothing to warn about
        with frozen(D):
            pass


_GLOBAL_NET = torch.nn.BatchNorm1d(2)


def _reads_a_global(x):
    return _GLOBAL_NET(x)[:, 0]


def test_a_function_reading_a_module_level_net_is_found():
    assert closed_over_modules(_reads_a_global) == [_GLOBAL_NET]
    with pytest.warns(UserWarning, match="BatchNorm1d in train mode") as rec:
        with frozen(_reads_a_global):
            assert not _GLOBAL_NET.training
    assert rec[0].filename == __file__  # points at the caller's line, not inside latentflow
    assert _GLOBAL_NET.training


def test_a_plain_function_d_around_a_train_mode_module_warns_and_a_4d_d_output_is_accepted():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    stats = net[1].running_mean.clone()
    z = lf.sample_latents(16, 2, generator=0)
    with pytest.warns(UserWarning, match="train mode"):
        a = lf.refine(lambda v: v, lambda x: net(x).view(-1, 1, 1, 1), z, "ddls", steps=3, seed=0, progress=False)
    assert torch.equal(net[1].running_mean, stats) and net.training  # statistics untouched, mode restored
    b = lf.refine(lambda v: v, net.eval(), z, "ddls", steps=3, seed=0, progress=False)
    torch.testing.assert_close(a.x, b.x)
