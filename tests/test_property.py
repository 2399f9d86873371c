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


# ============================================================================================================
# the other inputs a user gives: train configs, export and convert arguments, tune's real data and settings.
# Same property: a result, or a LatentflowError (one line on the command line), never a raw exception.
# ============================================================================================================

import dataclasses  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)

#: config values of every kind, valid and not
TRAIN_JUNK = [
    None,
    True,
    0,
    -1,
    2,
    0.0,
    -0.5,
    math.nan,
    math.inf,
    "",
    "x",
    "tpu",
    "cuda:9",
    "fashion-mnist",
    [],
    [0.5],
    (0.5, 2.0),
    {"a": 1},
    {"latent_dim": 3},
]
#: choices of the string fields whose valid values are names
TRAIN_CHOICES = {
    "data": ["grid25", "ring8", "swissroll"],
    "loss": ["wgan-gp", "ns", "hinge", "ipm"],
    "prior": ["normal", "uniform"],
    "kernel": ["gaussian", "imq", "polyharmonic"],
    "dsm_weight": ["edm", "none"],
    "time_sampling": ["grid", "uniform"],
    "simulate_with": ["live", "ema"],
}
#: fields held small so that every example trains in well under a second
TRAIN_CAPS = {
    "steps": 2,
    "batch_size": 16,
    "n_critic": 2,
    "flow_steps": 3,
    "k": 2,
    "n_data": 32,
    "n_fake": 32,
    "heun_steps": 3,
    "gen_batch": 32,
    "n_levels": 3,
    "langevin_steps": 2,
    "reuse": 2,
}
TRAIN_KINDS = ["gan", "dflow", "scoregan", "flowgan", "dgd", "denoiser", "dgdisc", "corrector"]


def _train_plausible(f: dataclasses.Field) -> list:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    out = [default] + TRAIN_CHOICES.get(f.name, [])
    if "int" in str(f.type):
        out += [1, 2]
    if "float" in str(f.type):
        out += [0.5, 1e-3]
    if "None" in str(f.type):
        out.append(None)
    return out


@pytest.fixture(scope="module")
def denoiser_folder(tmp_path_factory):
    """A tiny trained denoiser: the score model a dgdisc example trains against."""
    from latentflow.train import get_trainer

    Config, train = get_trainer("denoiser")
    out = tmp_path_factory.mktemp("den")
    with torch.random.fork_rng():
        train(
            Config(steps=2, batch_size=8, arch_kwargs={"in_dim": 2, "width": 8, "depth": 2}), str(out), progress=False
        )
    return str(out)


@st.composite
def train_calls(draw):
    from latentflow.train import get_trainer

    kind = draw(st.sampled_from(TRAIN_KINDS))
    Config, _ = get_trainer(kind)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    over: dict = {}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        junk = draw(st.integers(0, 2)) == 0
        over[name] = draw(st.sampled_from(TRAIN_JUNK if junk else _train_plausible(fields[name])))
    for name, cap in TRAIN_CAPS.items():
        if name in fields:
            v = over.get(name, fields[name].default)
            if isinstance(v, int) and not isinstance(v, bool) and v > cap:
                over[name] = cap
    out = draw(st.sampled_from(["new", "new", "new", "file", "under a file"]))
    return kind, over, out


@pytest.mark.rng_ok  # trainers seed the global RNG for their initial weights
@settings(max_examples=40, **SETTINGS)
@given(train_calls())
def test_train_returns_or_raises_a_latentflow_error(tmp_path_factory, denoiser_folder, call):
    from latentflow.train import get_trainer, make_config

    kind, over, where = call
    if kind == "dgdisc":
        over.setdefault("score", denoiser_folder)
    if kind == "corrector":
        over.setdefault("model", "grid25-wgangp")
        over.setdefault("real", "grid25")
    base = tmp_path_factory.mktemp("train")
    out = base / "out"
    if where != "new":
        (base / "f").write_text("a file")
        out = base / "f" if where == "file" else base / "f" / "out"
    Config, train = get_trainer(kind)
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.simplefilter("ignore")
        try:
            train(make_config(Config, over), str(out), progress=False)
        except LatentflowError:
            return
    assert out.is_dir()


@pytest.fixture(scope="module")
def convert_files(tmp_path_factory):
    """Files ``convert`` and ``export`` may be given: a pair pickle, a malicious pickle, garbage, safetensors,
    an export folder."""
    from safetensors.torch import save_file

    from latentflow.models import export
    from latentflow.nets import build

    d = tmp_path_factory.mktemp("files")
    with torch.random.fork_rng():
        G = build("mlp_g", latent_dim=2, hidden=[8], out_dim=2)
        D = build("mlp_d", in_dim=2, hidden=[8])
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, d / "pair.pt")
    torch.save({"netG": G.state_dict()}, d / "g_only.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (d / "evil.pt").write_bytes(pickle.dumps({"G": Evil()}))
    (d / "garbage.pt").write_bytes(b"\x00not a pickle at all")
    (d / "empty.pt").write_bytes(b"")
    save_file({"w": torch.zeros(2)}, str(d / "w.safetensors"))
    (d / "folder").mkdir()
    (d / "a_file").write_text("x")
    export("grid25-wgangp", d / "exported")
    return d


def _some_bad(draw, table: dict) -> dict:
    """One value per argument: at most two arguments get a value from their bad list, the others a good one
    (so that many examples reach the work itself)."""
    bad = draw(st.lists(st.sampled_from(sorted(table)), max_size=2, unique=True))
    return {k: draw(st.sampled_from(table[k][1] if k in bad else table[k][0])) for k in table}


def _path(files: Path, name):
    if isinstance(name, str) and name.startswith("@"):
        return str(files / name[1:])
    return name


@st.composite
def export_calls(draw):
    return _some_bad(
        draw,
        {
            "ref": (["grid25-wgangp", "@exported"], ["no-such-model", "", "hf:o", None, 3, "@a_file", "@folder"]),
            "out": (["new", "@exported"], ["@a_file", "@a_file/out", "", None, 3]),
            "card": ([False, True], ["yes", None]),
            "metrics": ([None, {"fid": 12.3}, {}], [{"fid": "x"}, {"fid": math.nan}, {3: 1.0}, [1.0], "fid"]),
            "tags": ([None, ["a"], ()], ["a", [1], [None]]),
            "repo_id": ([None, "o/r"], ["", 3, "bad id", "o/r/x"]),
        },
    )


@settings(max_examples=40, **SETTINGS)
@given(export_calls())
def test_export_returns_or_raises_a_latentflow_error(tmp_path_factory, convert_files, call):
    from latentflow.models import export

    kw = {k: _path(convert_files, v) for k, v in call.items()}
    if kw["out"] == "new":
        kw["out"] = str(tmp_path_factory.mktemp("export") / "out")
    if kw["out"] == str(convert_files / "exported"):  # a copy: examples must not change the shared folder
        kw["out"] = str(tmp_path_factory.mktemp("export") / "copy")
        shutil.copytree(convert_files / "exported", kw["out"])
    ref, out = kw.pop("ref"), kw.pop("out")
    try:
        got = export(ref, out, **kw)
    except LatentflowError:
        return
    assert lf.load(str(got)).G is not None


@st.composite
def convert_calls(draw):
    kw_good, kw_bad = [{"hidden": [8]}, '{"hidden": [8]}'], [None, {}, {"bad": 1}, "not json", [1], 3]
    return _some_bad(
        draw,
        {
            "src": (["@pair.pt"], ["@g_only.pt", "@evil.pt", "@garbage.pt", "@empty.pt", "@w.safetensors",
                                   "@missing.pt", "@folder", None, 3]),
            "arch_g": (["mlp_g"], ["nope", "", None, 3, "mlp_d"]),
            "arch_d": (["mlp_d"], ["nope", None, "mlp_g"]),
            "kwargs_g": (kw_good, kw_bad),
            "kwargs_d": (kw_good, kw_bad),
            "d_path": ([None], ["@pair.pt", "@evil.pt", "@missing.pt", 3]),
            "latent_dim": ([None, 2], [3, 0, -1, "2", 2.5, True]),
            "prior": (["normal", "uniform"], ["x", None]),
            "d_output": (["logit", "critic"], ["x", None]),
            "use_ema": ([False], [True, "yes"]),
            "name": (["converted"], ["", None, 3, "a/b", "x" * 300]),
            "dataset": ([None, "grid25"], ["", 3]),
        },
    )  # fmt: skip


@settings(max_examples=60, **SETTINGS)
@given(convert_calls())
def test_convert_returns_or_raises_a_latentflow_error(tmp_path_factory, convert_files, call):
    from latentflow.models import convert

    kw = {k: _path(convert_files, v) for k, v in call.items()}
    src = kw.pop("src")
    out = tmp_path_factory.mktemp("convert") / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got = convert(src, out, **kw)
        except LatentflowError:
            return
    assert lf.load(str(got)).G is not None


def _G2(z):
    return torch.tanh(z)


def _D2(x):
    return -(x.float() ** 2).reshape(x.shape[0], -1).sum(1)


@st.composite
def tune_calls(draw):
    g = torch.Generator().manual_seed(0)
    reals = {
        "ok": torch.randn(40, 2, generator=g),
        "double": torch.randn(40, 2, generator=g).double(),
        "uint8": torch.randint(0, 255, (40, 2), generator=g, dtype=torch.uint8),
        "few": torch.randn(10, 2, generator=g),
        "flat": torch.randn(40, generator=g),
        "3 dims": torch.randn(40, 3, generator=g),
        "images": torch.randn(40, 1, 4, 4, generator=g),
        "nan": torch.full((40, 2), math.nan),
        "constant": torch.ones(40, 2),
        "bool": torch.ones(40, 2, dtype=torch.bool),
        "complex": torch.zeros(40, 2, dtype=torch.complex64),
        "list": [[0.0, 1.0]] * 40,
        "none": None,
    }
    good = ["ok", "double", "uint8"]
    return _some_bad(
        draw,
        {
            "G": ([_G2], [None, "G", lambda z: z[:1], lambda z: z * math.nan]),
            "D": ([_D2], [None, lambda x: x, lambda x: _D2(x) * math.nan]),
            "real": ([reals[k] for k in good], [v for k, v in reals.items() if k not in good]),
            "latent_dim": ([2], [1, 3, 0, -1, 2.0, "2", None, True]),
            "prior": (["normal", "uniform"], ["x", None]),
            "d_output": (["logit", "prob", "critic"], ["x", None]),
            "budget": ([1, 2, 3], [0, -1, 2.5, None, True]),
            "metric": (["emd", "fid", "kid"], ["x", None]),
            "methods": ([None, ["ddls"], ("drs", "mh")], [["none"], ["bogus"], "ddls", [], 3]),
            "seed": ([0, 1, 2**40], [-1, 2**63, 1.5, "0", None]),
            "features": ([None, lambda x: x], [lambda x: x[:, :1], "f", lambda x: x.sum()]),
        },
    )


@settings(max_examples=40, **SETTINGS)
@given(tune_calls())
def test_tune_returns_or_raises_a_latentflow_error(call):
    G, D, real = call.pop("G"), call.pop("D"), call.pop("real")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = lf.tune(G, D, real, progress=False, **call)
        except LatentflowError:
            return
    assert res.method in lf.methods() or res.method == "none"


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """Real-data files of every kind ``latentflow tune --real`` may be given, readable and not."""
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("real")
    x = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    np.savez(d / "ok.npz", x=x)
    np.savez(d / "empty.npz")
    np.savez(d / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    np.save(d / "plain.npy", x)
    torch.save(torch.from_numpy(x), d / "tensor.pt")
    torch.save({"y": 1}, d / "no_x.pt")
    torch.save({"x": "text"}, d / "text.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (d / "evil.pt").write_bytes(pickle.dumps({"x": Evil()}))
    save_file({"x": torch.from_numpy(x)}, str(d / "ok.safetensors"))
    save_file({"x": torch.zeros(3, dtype=torch.bool)}, str(d / "bool.safetensors"))
    for name in ("garbage.npz", "garbage.pt", "garbage.safetensors", "notes.txt"):
        (d / name).write_bytes(b"\x00garbage")
    for name, sizes, bad in (
        ("imgs", [8, 8, 8], None),
        ("mixed", [8, 6], None),
        ("corrupt", [8, 8], b"x"),
        ("none", [], None),
    ):
        f = d / name
        f.mkdir()
        for i, s in enumerate(sizes):
            Image.fromarray(np.zeros((s, s), np.uint8)).save(f / f"{i}.png")
        if bad is not None:
            (f / "9.png").write_bytes(bad)
    return d


@settings(max_examples=30, **SETTINGS)
@given(st.sampled_from(["ok.npz", "empty.npz", "objects.npz", "plain.npy", "tensor.pt", "no_x.pt", "text.pt",
                        "evil.pt", "ok.safetensors", "bool.safetensors", "garbage.npz", "garbage.pt",
                        "garbage.safetensors", "notes.txt", "imgs", "mixed", "corrupt", "none", "missing.npz"]))  # fmt: skip
def test_tune_real_data_is_read_or_refused_with_a_latentflow_error(real_files, name):
    from latentflow.app.tune.tune_cmd import read_real

    try:
        x = read_real(real_files / name)
    except LatentflowError:
        return
    assert isinstance(x, torch.Tensor) and x.is_floating_point()
