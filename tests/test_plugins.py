"""A third-party sampler is a first-class method: a distribution that declares an entry point in the group
``latentflow.samplers`` is registered on the first use of the registry and appears in ``refine``,
``methods()``, the CLI (``latentflow methods``, ``sample --method``), ``tune``'s search and the benchmarks'
rows, with no change to latentflow; a broken plug-in is a warning naming its entry point.

The plug-in here is a real distribution on a ``sys.path`` entry (a module and a ``*.dist-info`` folder with
``entry_points.txt``, what ``pip install --target`` writes): it shrinks the latents, ``z <- f z`` per step.
With ``G(z) = 2z`` and real samples ``N(0, I)``, ``f = 0.5`` maps the generator exactly onto the data.
"""

import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import latentflow as lf
from latentflow.samplers import _registry

ROOT = Path(__file__).resolve().parents[1]
NAME, BROKEN = "shrink_plugin", "broken_plugin"

PLUGIN = '''
"""A toy third-party sampler: shrink the latents by `factor` per step."""
from dataclasses import dataclass

from latentflow.options import Options, field
from latentflow.result import Evals, Step
from latentflow.samplers import Candidate, Kernel, Needs


@dataclass(frozen=True)
class ShrinkOptions(Options):
    steps: int = field(1, "steps of z <- factor z", ge=0)
    factor: float = field(0.9, "the factor per step", gt=0)


class Shrink(Kernel):
    """Shrink the latents towards 0 (a toy plug-in)."""

    Options = ShrinkOptions
    needs = Needs(discriminator=())  # a generator alone
    about = "shrinks the latents"
    paper = "none"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        return Evals(n_G_forward=1)

    @classmethod
    def search_space(cls, ctx):
        return [Candidate(cls.name, {"factor": f}) for f in (0.5, 0.9)]

    def draws(self):
        return False

    def init(self, e, z):
        return z

    def step(self, e, i, z):
        z = z * self.o.factor
        return z, Step(i, z, z=z)

    def finish(self, e, z):
        return e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys), z, {}
'''


def make_distribution(root: Path) -> Path:
    """The files ``pip install --target root`` writes for a distribution ``lf-test-plugin``."""
    root.mkdir(parents=True)
    (root / "lf_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "lf_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lf-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[latentflow.samplers]\n{NAME} = lf_test_plugin:Shrink\n{BROKEN} = lf_test_plugin_missing:Nope\n"
    )
    (info / "RECORD").write_text("")
    return root


@pytest.fixture
def plugin(tmp_path):
    root = make_distribution(tmp_path / "site")
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        _registry.unregister(NAME)
        sys.modules.pop("lf_test_plugin", None)


def G(z, *y):
    return 2 * z


def test_plugin_registers_on_first_use_and_runs_through_refine(plugin, caplog):
    with caplog.at_level(logging.WARNING, logger="latentflow"):
        added = _registry.load_plugins()  # what the first use of the registry does
    assert NAME in added and BROKEN not in lf.methods()
    assert any(BROKEN in r.getMessage() and "lf_test_plugin_missing:Nope" in r.getMessage() for r in caplog.records)
    info = lf.methods()[NAME]
    assert info.kernel.__module__ == "lf_test_plugin" and info.options["factor"] == 0.9
    assert info.needs.generator == "required" and info.needs.discriminator == ()
    z = lf.sample_latents(16, 2, generator=0)
    res = lf.refine(G, None, z, method=NAME, steps=2, factor=0.5, seed=0)
    torch.testing.assert_close(res.x, 2 * 0.25 * z)
    assert res.info["n_G_forward"] == 16 and res.method == NAME
    with pytest.raises(lf.OptionError, match=r'Did you mean "shrink_plugin"'):
        lf.refine(G, None, z, method="shrink_plugn")
    assert NAME not in lf.samplers.methods_table()  # the README lists what latentflow ships


def test_plugin_is_searched_by_tune(plugin):
    from latentflow.app.tune.tune import candidates, searched_methods

    _registry.load_plugins()
    assert NAME in searched_methods()
    assert [c.options for c in candidates(12, [NAME])][1:] == [{"factor": 0.5}, {"factor": 0.9}]
    real = torch.randn(600, 2, generator=torch.Generator().manual_seed(3))

    def D(x):  # the exact log density ratio of N(0, I) against G's N(0, 4I): tune needs a D
        return -0.375 * (x**2).sum(1) + math.log(4.0)

    r = lf.tune(G, D, real, latent_dim=2, methods=[NAME], budget=12, seed=0, progress=False)
    assert r.method == NAME and r.options == {"factor": 0.5}  # G(0.5 z) ~ N(0, I): the data exactly
    assert {row["method"] for row in r.table} == {lf.samplers.NO_REFINEMENT, NAME}


def test_plugin_is_a_benchmark_row(plugin):
    from latentflow.app.bench.images_rows import parse_method, run_row

    _registry.load_plugins()
    v = parse_method(f"{NAME}:factor=0.5")
    assert v.method == NAME and v.options == {"factor": 0.5}
    pair = lf.load("grid25-wgangp", device="cpu")
    z = lf.sample_latents(32, 2, generator=1)
    x, fields, _ = run_row(pair, v, z, seed=0, budget=5, n_cal=8, drs_pilot=10)
    torch.testing.assert_close(x, pair.G(0.5 * z))
    assert fields["evals"]["n_G_forward"] == 32 and fields["options"]["factor"] == 0.5


def _run(args, plugin_root, code=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_root), str(ROOT)])}
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "latentflow", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_plugin_in_a_fresh_process_cli_and_lazy_import(tmp_path):
    root = make_distribution(tmp_path / "site")
    r = _run(
        None,
        root,
        "import sys, latentflow\n"
        "assert 'lf_test_plugin' not in sys.modules  # importing latentflow scans no entry points\n"
        f"assert '{NAME}' in latentflow.methods() and 'lf_test_plugin' in sys.modules\n",
    )
    assert r.returncode == 0, r.stderr
    r = _run(["methods"], root)
    assert r.returncode == 0, r.stderr
    assert f"{NAME}: Shrink the latents" in r.stdout and "factor = 0.9" in r.stdout
    assert BROKEN in r.stderr  # the warning names the broken entry point
    out = tmp_path / "o"
    r = _run(["sample", "--method", NAME, "-n", "8", "--opt", "factor=0.5", "--out", str(out), "--quiet"], root)
    assert r.returncode == 0, r.stderr
    assert (out / "samples.safetensors").exists()
