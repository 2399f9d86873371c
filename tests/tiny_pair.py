"""A tiny 2-D G/D pair (MLPs with fixed weights, exported with a recommended DDLS setting) and the command line
through click's runner: what the command-line tests and the one-line error tests share."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from latentflow.cli import main
from latentflow.models import export, make_pair
from latentflow.nets import build

ARCH_G = {"name": "mlp_g", "kwargs": {"latent_dim": 2, "hidden": [16], "out_dim": 2}}
ARCH_D = {"name": "mlp_d", "kwargs": {"in_dim": 2, "hidden": [16]}}


def tiny_modules():
    """G and D in eval mode, weights ``0.3 N(0, 1)`` from seed 0 (the global RNG untouched)."""
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # module init draws from the global RNG; keep it untouched
        G = build("mlp_g", **ARCH_G["kwargs"])
        D = build("mlp_d", **ARCH_D["kwargs"])
    for p in list(G.parameters()) + list(D.parameters()):
        p.data = 0.3 * torch.randn(p.shape, generator=g)
    return G.eval(), D.eval()


def export_tiny(out) -> str:
    """The pair exported into ``out`` (a grid25 model, critic D, DDLS 7 steps of 0.01 recommended)."""
    G, D = tiny_modules()
    pair = make_pair(
        G,
        D,
        arch_g=ARCH_G,
        arch_d=ARCH_D,
        name="tiny",
        latent_dim=2,
        d_output="critic",
        output_range=None,
        output_shape=[2],
        dataset="grid25",
        sampling={"ddls": {"steps": 7, "step_size": 0.01}},
    )
    export(pair, out)
    return str(out)


def cli(args):
    return CliRunner().invoke(main, args)


def one_line_error(r, *needles):
    """Exit code 1 and exactly one line ``error: ...`` containing every needle; no traceback."""
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
