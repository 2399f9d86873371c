"""Nothing silent at the edges: full and read-only disks, odd folders, resumed logs, long runs and the score
sampler's defaults. One test per case, named after the behaviour: a silent wrong result now comes out right
(or is flagged), a raw traceback is now one ``error: ...`` line (exit code 1) naming the argument.

Full and read-only file systems are real (a small ``tmpfs`` mounted for the test) where the machine allows
``mount`` (root); elsewhere a refused write is injected (``ENOSPC`` once the folder would pass its budget, or a
folder without write permission)."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import latentflow as lf
from latentflow.app import OUTPUT_FILES
from latentflow.cli import main
from latentflow.errors import (
    DivergenceError,
    DivergenceWarning,
    IntegrityError,
    LatentflowError,
    ManifestError,
    OptionError,
    OutputError,
    ShapeError,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ["sample", "--model", "grid25-wgangp", "--steps", "3", "--quiet"]


def cli(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r, *needles):
    """Exit code 1 and exactly one line ``error: ...`` containing every needle; no traceback."""
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- file systems that refuse writes --------------------------------------------------------------------


def _mount(path: Path, opts: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


class _Budget:
    """Where ``mount`` is not allowed: the atomic writes under ``root`` fail with ENOSPC once the files under
    ``root`` (temporary ones included) would pass ``size`` bytes, as a full file system refuses them."""

    def __init__(self, monkeypatch, root: Path, size: int):
        self.root, self.size = root.resolve(), size
        real = os.replace

        def replace(src, dst, *a, **k):
            s = Path(src).resolve()
            if self.root in s.parents and s.name.startswith(".") and s.name.endswith(".tmp"):
                used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
                if used > self.size:
                    raise OSError(errno.ENOSPC, "No space left on device", str(dst))
            return real(src, dst, *a, **k)

        monkeypatch.setattr(os, "replace", replace)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """``make(size_kib) -> folder``: a file system of that size (tmpfs), else an injected one."""
    mounted = []

    def make(kib: int) -> Path:
        root = tmp_path / f"disk{len(mounted)}"
        root.mkdir()
        if _mount(root, f"size={kib}k,mode=0777"):
            mounted.append(root)
        else:
            _Budget(monkeypatch, root, kib * 1024)
        return root

    yield make
    for root in mounted:
        _umount(root)


@pytest.fixture
def read_only(tmp_path):
    """A folder whose file system refuses writes: a read-only tmpfs, else a folder without write permission."""
    root = tmp_path / "ro"
    root.mkdir()
    if _mount(root, "ro,size=64k"):
        yield root
        _umount(root)
        return
    if os.name == "posix" and os.geteuid() == 0:
        pytest.skip("root without mount: permissions do not stop root, and there is no read-only mount")
    root.chmod(0o555)
    yield root
    root.chmod(0o755)


# ============================================================================================================
# silent wrong results
# ============================================================================================================


def _exact_gaussian_score(x, s):  # the score of N(0, (1 + σ²) I): data N(0, I)
    return -x / (1 + s.reshape(-1, *[1] * (x.dim() - 1)) ** 2)


def _sigma_blind_d(x, s):  # a "discriminator" that ignores σ: its input gradient is -0.2 x at every level
    return -0.1 * x.pow(2).flatten(1).sum(1)


def test_dg_score_defaults_are_safe_and_growth_counts_as_divergence():
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    kw = dict(score=_exact_gaussian_score, generator=0, progress=False)
    res = lf.refine(None, _sigma_blind_d, z, "dg_score", **kw)  # the defaults: guidance on σ <= 1 only
    assert int(res.info["diverged"].sum()) == 0
    # data N(0, I); guidance at σ <= 1 pulls toward N(0, I / 1.2) (std 0.913): the std lies between, and the
    # Monte-Carlo error of a std at n = 2000 is 0.016
    assert 0.87 < float(res.x.std()) < 1.05, float(res.x.std())
    # guidance on every level blows up (std 6e8 before): every chain is flagged, and the default policy raises
    with pytest.raises(DivergenceError, match="2000 of 2000 chains diverged"):
        lf.refine(None, _sigma_blind_d, z, "dg_score", guide_range=None, **kw)
    kept = lf.refine(None, _sigma_blind_d, z, "dg_score", guide_range=None, on_divergence="keep", **kw)
    bound = 10 * 80.0  # DIVERGE_RMS · max(σ_0, σ_data = 1)
    rms = kept.x.pow(2).mean(1).sqrt()
    assert bool(kept.info["diverged"].all()) and float(rms.max()) <= bound  # frozen within the bound


def test_dg_score_healthy_runs_are_not_flagged():
    # the exact score, unguided and guided by the exact (zero) log ratio, on every level: nothing diverges,
    # although the start is 80 z (RMS 80 per chain, the bound is 800)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    zero = lambda x, s: 0.0 * x.flatten(1).sum(1)  # noqa: E731
    # Langevin: ε/σ_L² = 0.5 (a stable step), 40 steps per level (annealed to within the tolerance)
    for solver, extra in (("heun", {}), ("langevin", dict(sigma_min=0.05, langevin_steps=40, step_size=1.25e-3))):
        for D, w in ((None, 0.0), (zero, 1.0)):
            res = lf.refine(
                None,
                D,
                z,
                "dg_score",
                score=_exact_gaussian_score,
                w=w,
                guide_range=None,
                solver=solver,
                generator=0,
                progress=False,
                **extra,
            )
            assert int(res.info["diverged"].sum()) == 0, (solver, w)
            assert 0.85 < float(res.x.std()) < 1.15, (solver, float(res.x.std()))


def test_sample_into_a_symlinked_folder_writes_at_the_target(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "o_link"
    link.symlink_to(target, target_is_directory=True)
    for seed in (1, 2):  # a first set, then one that replaces it
        r = cli(SAMPLE + ["-n", "20", "--seed", seed, "--out", link])
        assert r.exit_code == 0, r.output
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert sorted(p.name for p in target.iterdir()) == sorted(OUTPUT_FILES)
    assert json.loads((target / "report.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o_link", "target"]  # nothing left beside them


def _tiny_run(out, steps_total, fail_at=None):
    """A Run over a one-parameter model, logging every 10 steps, checkpointing every 20; ``fail_at``: the step
    at which the process "dies" (an exception out of the loop, after the steps before it were logged)."""
    import dataclasses

    from latentflow.train._loop import Run

    Cfg = dataclasses.make_dataclass("Cfg", [("seed", int, 0)])
    with torch.random.fork_rng():  # the module's init and the checkpoint's RNG state: not the caller's RNG
        m = torch.nn.Linear(1, 1)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(0)
        run = Run(out, Cfg(), {"m": m}, {"m": opt}, gen, ckpt_every=20, log_every=10, progress=False)

        def step(i):
            if fail_at is not None and i + 1 == fail_at:
                raise KeyboardInterrupt("killed")
            loss = m(torch.ones(1, 1)).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss.detach()}

        run.loop(steps_total, step)


def test_resumed_training_logs_every_step_once(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path, 130, fail_at=115)  # logged 10 .. 110; the last checkpoint is step 100
    rows = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1] == 110
    _tiny_run(tmp_path, 130)  # resumes at 100 and logs 110, 120, 130
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(10, 131, 10)), steps


def test_cli_noise_scale_none_means_sqrt_step_size_as_in_python(tmp_path):
    out = tmp_path / "o"
    r = cli(SAMPLE + ["-n", "16", "--seed", "3", "--opt", "noise_scale=none", "--out", out, "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["result"]["options"]["noise_scale"] is None  # not the manifest's 0.01
    pair = lf.load("grid25-wgangp")
    py = pair.refine(n=16, seed=3, method="ddls", steps=3, noise_scale=None, progress=False)
    x = load_file(str(out / "samples.safetensors"))["x"]
    torch.testing.assert_close(x, py.x)
    given = pair.refine(n=16, seed=3, method="ddls", steps=3, progress=False)  # the manifest's τ = 0.01
    assert not torch.allclose(given.x, py.x)


def _nan_on_a_region(x, *rest):
    d = -(x**2).sum(1)
    return torch.where(x[:, 0] > 0.77, torch.full_like(d, math.nan), d)  # 22 % of N(0, 1) lies above 0.77


@pytest.mark.parametrize("method, opts", [("drs", dict(pilot=500)), ("mh", dict(k=10))])
def test_rejection_samplers_warn_when_d_is_nan_on_a_region(method, opts, caplog):
    z = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DivergenceWarning, match=r"D returned NaN on \d+ of \d+ proposals \(2\d\.\d %\)") as w:
        res = lf.refine(lambda z: z, _nan_on_a_region, z, method, seed=0, progress=False, **opts)
    assert len(w) == 1
    assert res.info["n_nonfinite_d"] > 0 and not bool((res.x[:, 0] > 0.77).any())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a D that is finite everywhere: no warning
        lf.refine(lambda z: z, lambda x: -(x**2).sum(1), z, method, seed=0, progress=False, **opts)


# ============================================================================================================
# raw tracebacks -> one line naming the argument, before compute where it can be known
# ============================================================================================================

TRAIN = ["train", "gan", "--steps", "2", "--batch-size", "8", "--quiet"]


@pytest.mark.rng_ok  # a trainer seeds the global RNG for its initial weights
def test_train_out_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(cli(TRAIN + ["--out", f]), "--out must be a folder")
    assert f.read_text() == "x"


@pytest.mark.rng_ok  # a trainer seeds the global RNG for its initial weights
def test_train_latent_dim_that_the_architecture_does_not_take(tmp_path):
    one_line_error(
        cli(TRAIN + ["--out", tmp_path / "t", "--set", "latent_dim=3"]),
        "latent_dim=3 does not match arch_g_kwargs latent_dim=2",
    )
    kw = json.dumps({"latent_dim": 3, "hidden": [8], "out_dim": 3})  # samples of 3 numbers for 2-D data
    one_line_error(
        cli(TRAIN + ["--out", tmp_path / "t", "--set", "latent_dim=3", "--set", f"arch_g_kwargs={kw}"]),
        "makes samples of shape [3]; the data has shape [2]",
    )
    assert not (tmp_path / "t" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("device", ["tpu", "cuda", "cuda:7"])
@pytest.mark.rng_ok  # a trainer seeds the global RNG for its initial weights
def test_train_device_this_machine_does_not_have(tmp_path, device):
    if device.startswith("cuda") and torch.cuda.is_available() and device == "cuda":
        pytest.skip("this machine has CUDA")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 CUDA devices")
    one_line_error(cli(TRAIN + ["--out", tmp_path / "t", "--device", device]), "device")
    assert not (tmp_path / "t").exists()


def _pair_pickle(folder: Path, hidden=(8,)) -> Path:
    """A ``.pt`` holding ``{"G": state dict, "D": state dict}`` of 2-D MLPs (what ``convert`` reads)."""
    from latentflow.nets import build

    with torch.random.fork_rng():
        G = build("mlp_g", latent_dim=2, hidden=list(hidden), out_dim=2)
        D = build("mlp_d", in_dim=2, hidden=list(hidden))
    path = folder / f"pair{len(hidden)}x{hidden[0]}.pt"
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, path)
    return path


@pytest.mark.rng_ok  # a trainer seeds the global RNG for its initial weights
def test_commands_into_a_read_only_file_system(read_only, tmp_path):
    src = _pair_pickle(tmp_path)
    for args in (
        TRAIN + ["--out", read_only / "t"],
        ["export", "grid25-wgangp", "--out", read_only / "e"],
        ["convert", src, "--arch-g", "mlp_g", "--arch-d", "mlp_d", "--out", read_only / "c"],
        SAMPLE + ["-n", "8", "--out", read_only / "s"],
    ):
        one_line_error(cli(args), "is not writable")
    assert list(read_only.iterdir()) == []


def test_export_and_convert_on_a_full_disk_leave_the_folder_as_it_was(small_disk, tmp_path):
    disk = small_disk(2048)  # dcgan-fashion's pair (1.2 MB) fits; grid25-wgangp's (2.6 MB) does not
    out = disk / "e"
    assert cli(["export", "dcgan-fashion", "--out", out]).exit_code == 0
    before = _tree(out)
    one_line_error(cli(["export", "grid25-wgangp", "--out", out]), f"--out '{out}'", "no space left", "as it was")
    assert _tree(out) == before and sorted(p.name for p in disk.iterdir()) == ["e"]  # no staging folder left
    assert lf.load(str(out)).meta["latent_dim"] == 64  # still the complete dcgan-fashion export
    src = _pair_pickle(tmp_path, hidden=[512, 512])  # a pair too big for what is left
    one_line_error(
        cli(
            [
                "convert",
                src,
                "--arch-g",
                "mlp_g",
                "--arch-d",
                "mlp_d",
                "--kwargs-g",
                '{"hidden": [512, 512]}',
                "--kwargs-d",
                '{"hidden": [512, 512]}',
                "--latent-dim",
                "2",
                "--out",
                out,
            ]
        ),
        "no space left",
    )
    assert _tree(out) == before and sorted(p.name for p in disk.iterdir()) == ["e"]


def test_sample_on_a_full_disk_keeps_the_previous_set(small_disk):
    disk = small_disk(256)  # a 20-sample set (60 kB) fits, a 20000-sample one (700 kB) does not
    out = disk / "o"
    assert cli(SAMPLE + ["-n", "20", "--seed", "1", "--out", out]).exit_code == 0
    before = _tree(out)
    one_line_error(
        cli(SAMPLE + ["-n", "20000", "--seed", "2", "--out", out]),
        f"out '{out}'",
        "no space left",
        "the previous set is kept",
    )
    assert _tree(out) == before
    assert sorted(p.name for p in disk.iterdir()) == ["o"]  # no staging folder, no lock


@pytest.mark.rng_ok  # a trainer seeds the global RNG for its initial weights
def test_train_on_a_full_disk_says_so_in_one_line(small_disk):
    disk = small_disk(64)  # the checkpoint (about 10 MB) does not fit
    out = disk / "t"
    one_line_error(cli(TRAIN + ["--out", out]), f"--out '{out}'", "no space left", "checkpoint")
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]  # nothing half written


def _images(folder: Path, sizes, bad: dict | None = None) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, s in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (s, s), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    for name, data in (bad or {}).items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def no_sampling(monkeypatch):
    import latentflow.app.sample.sample as s

    def boom(*a, **k):
        raise AssertionError("sampling started before the real set was checked")

    monkeypatch.setattr(s, "_run", boom)


def test_sample_real_folder_with_a_corrupt_png_is_refused_before_sampling(tmp_path, no_sampling):
    real = _images(tmp_path / "r", [28] * 5, bad={"002.png": b"not a png"})
    out = tmp_path / "o"
    one_line_error(
        cli(["sample", "--model", "dcgan-fashion", "-n", "8", "--real", real, "--out", out, "--quiet"]),
        "real:",
        "002.png",
        "not a readable image",
    )
    truncated = _images(tmp_path / "t", [28] * 3)
    data = (truncated / "001.png").read_bytes()
    (truncated / "001.png").write_bytes(data[: len(data) // 2])
    one_line_error(
        cli(["sample", "--model", "dcgan-fashion", "-n", "8", "--real", truncated, "--out", out, "--quiet"]),
        "001.png",
    )
    assert not out.exists()


def test_sample_real_folder_with_mixed_image_sizes_is_refused_before_sampling(tmp_path, no_sampling):
    real = _images(tmp_path / "r", [32, 28, 32])
    one_line_error(
        cli(["sample", "--model", "dcgan-fashion", "-n", "8", "--real", real, "--out", tmp_path / "o", "--quiet"]),
        "one size",
        "000.png is 32x32",
        "001.png is 28x28",
    )


def test_real_folder_checks_only_the_images_it_uses(tmp_path):
    from latentflow.metrics import resolve_real

    real = _images(tmp_path / "r", [28, 28, 28], bad={"999.png": b"broken"})  # sorted last: unused below
    assert resolve_real(real, 3).num == 3
    with pytest.raises(OptionError, match="999.png"):
        resolve_real(real)


def test_latentflow_json_whose_latent_dim_does_not_fit_g(tmp_path):
    from latentflow.models import export

    out = tmp_path / "m"

    export("grid25-wgangp", out)
    spec = json.loads((out / "latentflow.json").read_text())
    spec["latent"]["dim"] = 5
    (out / "latentflow.json").write_text(json.dumps(spec))
    with pytest.raises(ManifestError, match=r"latent.dim 5 .* does not fit G \(mlp_g\), which takes latents of size 2"):
        lf.load(str(out))
    one_line_error(cli(SAMPLE + ["-n", "4", "--model", out, "--out", tmp_path / "o"]), "latent.dim 5")


def test_latent_dim_of_a_generator_without_the_attribute_is_checked_by_a_forward_pass(tmp_path):
    from latentflow.models import export
    from latentflow.models.loading import check_latent_dim
    from latentflow.models.resolve import resolve

    out = tmp_path / "m"
    export("grid25-wgangp", out)
    spec = json.loads((out / "latentflow.json").read_text())
    spec["latent"]["dim"] = 7
    (out / "latentflow.json").write_text(json.dumps(spec))
    entry = resolve(str(out))
    with torch.random.fork_rng():
        G = torch.nn.Sequential(torch.nn.Linear(2, 2))  # takes latents of size 2; no latent_dim attribute
    with pytest.raises(ManifestError, match=r"latent.dim 7 .* G \(mlp_g\): G\(z \[1, 7\]\) failed"):
        check_latent_dim(entry, G)
    check_latent_dim(resolve("grid25-wgangp"), G)  # latent.dim 2 fits


def test_z_on_the_meta_device():
    pair = lf.load("grid25-wgangp")
    with pytest.raises(ShapeError, match="z is on the meta device"):
        lf.refine(pair.G, pair.D, torch.zeros(4, 2, device="meta"), "ddls", steps=2, seed=0, progress=False)


@pytest.mark.parametrize("method", ["dg_langevin", "dgflow", "dflow"])
def test_a_constant_d_is_named_by_gradient_samplers(method):
    G = None if method in ("dg_langevin", "dflow") else (lambda z: z)
    D = (lambda x, t: torch.zeros(x.shape[0])) if method == "dflow" else (lambda x: torch.zeros(x.shape[0]))
    with pytest.raises(ShapeError, match=rf"{method}: D's output does not depend on its input x"):
        z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
        lf.refine(G, D, z, method, steps=2, seed=0, progress=False)


def test_labels_for_an_unconditional_generator():
    pair = lf.load("grid25-wgangp")
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(OptionError, match="y .* was given, but G is not class-conditional"):
        lf.refine(pair.G, pair.D, z, "ddls", y=3, steps=2, seed=0, progress=False)
    with pytest.raises(OptionError, match="not class-conditional"):
        pair.refine(n=4, y=3, steps=2, seed=0, progress=False)


def test_dflow_given_an_unconditioned_d():
    pair = lf.load("grid25-wgangp")
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(OptionError, match=r"dflow calls D\(x, t\), a time-conditioned discriminator; this D .* x only"):
        lf.refine(None, pair.D, x0, "dflow", steps=2, seed=0, progress=False)
    with pytest.raises(OptionError, match=r"dg_langevin calls D\(x, sigma\)"):
        lf.refine(None, pair.D, x0, "dg_langevin", sigmas=[1.0, 0.5], steps=2, seed=0, progress=False)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.rng_ok  # a trainer seeds the global RNG for its initial weights
def test_a_malicious_pickle_is_refused_without_suggesting_weights_only_false(tmp_path):
    import pickle

    evil = tmp_path / "real.pt"
    torch.save({"x": torch.randn(30, 2), "y": _Evil()}, evil)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"x": _Evil()}))
    for args, what in (
        (["tune", "--model", "grid25-wgangp", "--real", evil, "--budget", "2"], "real_path"),
        (
            ["train", "corrector", "--model", "grid25-wgangp", "--real", raw, "--steps", "2", "--out", tmp_path / "c"],
            "real",
        ),
        (["convert", evil, "--arch-g", "mlp_g", "--arch-d", "mlp_d", "--out", tmp_path / "v"], "refused to unpickle"),
    ):
        line = one_line_error(cli(args), what, "refused to unpickle", "never runs code")
        assert "weights_only=False" not in line and "weights_only` set to `False" not in line
    from latentflow.app.tune.tune_cmd import read_real

    with pytest.raises(OptionError, match="refused to unpickle"):
        read_real(evil)


# ============================================================================================================
# also: long runs, concurrent runs, deterministic bytes, the Hub offline, doubled lines, advice
# ============================================================================================================


def test_many_chains_are_chunked_by_default(monkeypatch):
    from latentflow.samplers import _auto_batch, _checks

    assert _checks.check_batch_size(None, 16384) == 16384
    assert _checks.check_batch_size(None, 2_000_000) == "auto"
    pair = lf.load("grid25-wgangp")
    z = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    kw = dict(steps=3, step_size=0.01, d_output="critic", seed=1, progress=False)
    one = lf.refine(pair.G, pair.D, z, "ddls", batch_size=300, **kw)
    monkeypatch.setattr(_checks, "ONE_CHUNK_MAX_ROWS", 100)  # 300 chains are now "many"
    monkeypatch.setattr(_auto_batch, "available_ram_bytes", lambda: 64 << 20)  # and memory is short
    many = lf.refine(pair.G, pair.D, z, "ddls", **kw)
    assert many.info["auto_batch_size"]["grad"] < 300
    torch.testing.assert_close(many.x, one.x, rtol=1e-5, atol=1e-5)  # the same samples up to round-off


def test_refine_to_disk_refuses_a_second_concurrent_run(tmp_path):
    pair = lf.load("grid25-wgangp")
    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename, "run_id": "x"}))
        with pytest.raises(OptionError, match=r"another refine_to_disk \(pid \d+ .*\) is writing"):
            lf.refine_to_disk(pair.G, pair.D, 8, "ddls", out, chunk=4, steps=2, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the running writer's folder untouched
    finally:
        holder.kill()
        holder.wait()
    idx = lf.refine_to_disk(pair.G, pair.D, 8, "ddls", out, chunk=4, steps=2, progress=False)  # stale: taken over
    assert len(idx["shards"]) == 2 and not (out / ".lock").exists()
    again = lf.refine_to_disk(pair.G, pair.D, 8, "ddls", out, chunk=4, steps=2, progress=False)  # a rerun: resumed
    assert again["run_key"] == idx["run_key"]


def _without_timing(obj):
    """A report without what records the wall time and the machine (everything else is the same)."""
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if k != "env" and not k.endswith("wall_s")}
    return [_without_timing(v) for v in obj] if isinstance(obj, list) else obj


def test_same_seed_gives_byte_identical_output_files(tmp_path):
    runs = [
        (["--model", "grid25-wgangp", "-n", "50"], "in-process"),
        (["--model", "grid25-wgangp", "-n", "50"], "in-process"),
        # another process: safetensors writes its metadata in the order of a per-process hash seed
        (["--model", "grid25-wgangp", "-n", "50"], "subprocess"),
        (["--model", "dcgan-fashion", "-n", "6", "--format", "safetensors,npz,png"], "in-process"),
        (["--model", "dcgan-fashion", "-n", "6", "--format", "safetensors,npz,png"], "in-process"),
    ]
    trees, reports = [], []
    for i, (args, how) in enumerate(runs):
        out = tmp_path / f"o{i}"
        argv = ["sample", *args, "--steps", "2", "--seed", "4", "--quiet", "--out", str(out)]
        if how == "subprocess":
            subprocess.run([sys.executable, "-m", "latentflow", *argv], check=True, env=_env(), capture_output=True)
        else:
            r = cli(argv)
            assert r.exit_code == 0, r.output
        trees.append({k: v for k, v in _tree(out).items() if k != "report.json"})
        reports.append(_without_timing(json.loads((out / "report.json").read_text())))
    assert "samples.safetensors" in trees[0] and "samples.npz" in trees[3] and "samples/000000.png" in trees[3]
    assert trees[0] == trees[1] == trees[2] and trees[3] == trees[4]
    assert reports[0] == reports[1] == reports[2] and reports[3] == reports[4]
    from latentflow.models import export

    export("grid25-wgangp", tmp_path / "e1")
    export("grid25-wgangp", tmp_path / "e2")
    assert _tree(tmp_path / "e1") == _tree(tmp_path / "e2")


def test_canonical_safetensors_header_sorts_the_metadata(tmp_path):
    from latentflow._io import atomic_save_safetensors

    t = {"b": torch.arange(3.0), "a": torch.zeros(2, 2)}
    meta = {f"k{i}": str(i) * i for i in range(20)}
    atomic_save_safetensors(t, tmp_path / "x.safetensors", metadata=meta)
    raw = (tmp_path / "x.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    assert list(header["__metadata__"]) == sorted(meta)
    got = load_file(str(tmp_path / "x.safetensors"))
    assert all(torch.equal(got[k], t[k]) for k in t)


def test_hub_load_without_network_fails_at_once_with_one_line(tmp_path):
    env = _env(
        HF_ENDPOINT="https://latentflow-test.invalid",  # .invalid never resolves (RFC 6761)
        HF_HOME=str(tmp_path / "hf"),
        LATENTFLOW_CACHE=str(tmp_path / "lf"),
    )
    for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        env.pop(v, None)
    t0 = time.monotonic()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentflow",
            "sample",
            "--model",
            "sngan-cifar",
            "-n",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - t0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert "cannot be downloaded now (no network" in lines[0] and "hf download" in lines[0]
    assert "Retrying" not in p.stderr
    assert took < 20, took  # huggingface_hub alone retries for about 30 s


def test_hub_download_is_not_tried_when_the_host_cannot_be_reached(monkeypatch):
    import socket

    hub = pytest.importorskip("huggingface_hub")
    from latentflow.models import sources

    calls = []
    monkeypatch.setattr(hub, "hf_hub_download", lambda **k: calls.append(k))
    monkeypatch.setattr(sources, "_hf_cached", lambda *a: None)
    for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(v, raising=False)

    def refuse(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(LatentflowError, match="no network: .* cannot be reached: Name or service not known"):
        sources.hf_download("o/r", "G.safetensors", "abc")
    assert calls == []


def test_cli_prints_each_log_line_once(tmp_path):
    # a divergence is logged (WARNING) and warned (DivergenceWarning, for Python callers): the CLI shows one line
    import logging

    p = subprocess.run(
        [sys.executable, "-m", "latentflow", *SAMPLE, "-n", "20", "--step-size", "1e8", "--opt", "on_divergence=warn",
         "--out", str(tmp_path / "o")],
        env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    hits = [ln for ln in p.stderr.splitlines() if "chains diverged" in ln]
    assert len(hits) == 1, p.stderr
    # huggingface_hub logs through its own handler: the CLI does not pass its records on to a second one
    cli(["methods"])
    assert logging.getLogger("huggingface_hub").propagate is False


def test_models_advice_fits_where_the_file_comes_from(monkeypatch):
    from latentflow.models import pins, table

    monkeypatch.setattr(table, "sha256_file", lambda p: "0" * 64)  # every file on disk "changed"
    rows = {r["name"]: r for r in table.model_rows()}
    assert rows["grid25-wgangp"]["checkpoints"] == "mismatch"
    assert "reinstall latentflow" in rows["grid25-wgangp"]["advice"] and "cache" not in rows["grid25-wgangp"]["advice"]
    r = cli(["models"])
    assert "grid25-wgangp: a checkpoint does not match its SHA-256; it ships inside the installed" in r.output
    monkeypatch.setattr(pins, "sha256_file", lambda p: "0" * 64)
    with pytest.raises(IntegrityError, match="reinstall latentflow") as ei:
        lf.load("grid25-wgangp")
    assert "cache" not in str(ei.value)


def test_output_error_for_a_write_the_file_system_refuses(tmp_path, monkeypatch):
    from latentflow import _io

    real = _io.tempfile.mkstemp

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_io.tempfile, "mkstemp", full)
    with pytest.raises(OutputError, match=r"cannot write .*x.json.*no space left") as ei:
        _io.atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert ei.value.reason.startswith("no space left")
    monkeypatch.setattr(_io.tempfile, "mkstemp", real)
    with pytest.raises(ValueError, match="boom"):  # other errors pass through unchanged
        with _io.atomic_path(tmp_path / "y"):
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
