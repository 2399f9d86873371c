"""Property: whatever shapes, dtypes and option values a user throws at ``refine``, for every method in
``methods()``, the answer is a ``Result`` or a ``LatentflowError`` (never a raw ``TypeError``,
``RuntimeError``, ``IndexError``, ...). Tiny models, few examples, derandomized: fast and deterministic."""

from __future__ import annotations

import math
import re
import warnings

import pytest
import torch

import latentflow as lf
from latentflow import LatentflowError, Result

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

METHODS = sorted(lf.methods())

#: option values of every kind, valid and not: small, so that no example runs long
JUNK = [
    None,
    True,
    False,
    0,
    1,
    2,
    3,
    -1,
    0.0,
    1e-3,
    0.3,
    -0.5,
    1e6,
    math.nan,
    math.inf,
    "",
    "logit",
    "critic",
    "euler",
    "target",
    "x",
    [],
    [0.5],
    [1.0, 0.5],
    (2.0, 1.0, 0.5),
    {"a": 1},
    torch.tensor(0.5),
    torch.tensor([1.0, 0.5]),
    torch.ones(2, 2),
]
#: options whose values would make an example slow (or touch the global RNG), held at a fast value
HELD = {"compile": False, "progress": False, "callback": None}
#: per-method caps on the loop length (a huge ``steps`` is valid, just slow)
CAPS = {"steps": 3, "k": 3, "pilot": 50, "k_eff_pairs": 8, "adapt_steps": 2, "stop_step": 2}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool]


def G_tanh(z):
    return torch.tanh(z)


def D_any(x, *cond):
    """Any shape of x, with or without a time/σ argument: one finite value per row."""
    return -(x.float() ** 2).reshape(x.shape[0], -1).sum(1)


def D_4d(x, *cond):
    return D_any(x).reshape(-1, 1, 1, 1)


def D_two_values(x, *cond):
    return torch.stack([D_any(x), D_any(x)], 1)


def D_nan(x, *cond):
    return D_any(x) * math.nan


def D_int(x, *cond):
    return D_any(x).long()


def G_rows(z):
    return torch.tanh(z)[:1]


def _capped(name, value):
    cap = CAPS.get(name)
    if cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > cap:
        return cap
    return value


def plausible(field) -> list:
    """Values of the field's declared type (so that examples also reach the samplers' maths)."""
    tp, out = field["type"], [field["default"]]
    if tp.startswith("one of "):
        out += [c.strip() for c in tp[len("one of ") :].split(",")]
    out += [c for c in re.findall(r'"([^"]+)"', tp)]
    if "int" in tp:
        out += [1, 2, 3]
    if "float" in tp:
        out += [0.01, 0.5, 1.0]
    if tp == "bool":
        out += [True, False]
    if "None" in tp:
        out.append(None)
    return out


@st.composite
def calls(draw):
    method = draw(st.sampled_from(METHODS))
    info = lf.methods()[method]
    fields = {f["name"]: f for f in info.fields if f["name"] not in HELD and f["name"] != "generator"}
    opts = {}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)):
        junk = draw(st.integers(0, 3)) == 0  # one option in four gets a value of any kind
        opts[name] = _capped(name, draw(st.sampled_from(JUNK if junk else plausible(fields[name]))))
    for name, v in CAPS.items():  # the defaults too are held small
        if name in info.options and name not in opts and isinstance(info.options[name], int):
            opts[name] = min(v, info.options[name])
    for name, v in HELD.items():
        if name in info.options:
            opts[name] = v
    if draw(st.integers(0, 7)) == 0:
        opts["unknown_option"] = 1
    odd = draw(st.integers(0, 3)) == 0  # one example in four has an odd shape, dtype or G
    shape = draw(
        st.sampled_from([(5,), (2, 1, 4, 4), (0, 2), (2, 0), (1, 2)] if odd else [(3, 2), (1, 2), (4, 1), (2, 3)])
    )
    dtype = draw(st.sampled_from(DTYPES if odd else DTYPES[:2]))
    G = draw(st.sampled_from([G_tanh, None, "not callable", G_rows] if odd else [G_tanh, None]))
    D = draw(st.sampled_from([D_4d, D_two_values, D_nan, D_int, None] if odd else [D_any, D_4d]))
    seed = draw(st.sampled_from([0, 1, 2**40]))
    return method, opts, shape, dtype, G, D, seed


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
@given(calls())
def test_refine_returns_a_result_or_a_latentflow_error(call):
    method, opts, shape, dtype, G, D, seed = call
    z = torch.linspace(-1, 1, math.prod(shape)).reshape(shape) if math.prod(shape) else torch.zeros(shape)
    z = z.to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = lf.refine(G, D, z, method, generator=seed, **opts)
        except LatentflowError:
            return
    assert isinstance(res, Result)
    assert res.x.shape[0] == shape[0]
