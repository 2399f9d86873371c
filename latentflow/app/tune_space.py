"""The search space of :func:`latentflow.app.tune.tune`: the candidate methods and settings, and what each
costs in D evaluations per sample."""

from __future__ import annotations

from dataclasses import dataclass

SEARCHED = ("ddls", "dot", "drs", "mh", "dg_langevin", "dgflow", "ex2mcmc")
#: Ex2MCMC candidates: N prior candidates per i-SIR move and MALA steps between moves
EX2_N, EX2_MALA = 5, 4


@dataclass(frozen=True)
class Candidate:
    method: str
    options: dict
    calibrated: bool = False

    @property
    def label(self) -> str:
        o = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.items())
        return f"{self.method}{'(cal)' if self.calibrated else ''}[{o}]"


def candidates(budget: int, methods=None, calibrated: bool = True) -> list[Candidate]:
    """The search grid, restricted to ``methods`` and to at most ``budget`` D evaluations per sample."""
    top = min(100, budget - 2)
    steps = sorted({s for s in (10, 30, top) if 1 <= s <= top})
    out = [Candidate("none", {})]
    want = set(methods or SEARCHED)
    if "ddls" in want:
        for T in (1.0, 0.3, 0.1, 0.03):
            for eps in (0.01, 0.03, 0.1):
                out += [Candidate("ddls", dict(steps=s, step_size=eps, temperature=T)) for s in steps]
            if steps:
                s = steps[-1]
                out.append(
                    Candidate("ddls", dict(steps=s, step_size=0.01, temperature=T, mala=True, adapt_steps=s // 2))
                )
                if calibrated:
                    out.append(
                        Candidate(
                            "ddls", dict(steps=s, step_size=0.01, temperature=T, mala=True, adapt_steps=s // 2), True
                        )
                    )
                    out += [Candidate("ddls", dict(steps=s, step_size=0.03, temperature=T), True) for s in steps]
    if "dot" in want:
        for space in ("latent", "target"):
            out += [
                Candidate("dot", dict(steps=s, lr=lr, space=space)) for lr in (0.003, 0.01, 0.03, 0.1) for s in steps
            ]
    if "dgflow" in want:
        out += [
            Candidate("dgflow", dict(steps=s, step_size=eta, divergence=div))
            for eta in (0.01, 0.03, 0.1)
            for div in ("KL", "logD")
            for s in steps[-2:]
        ]
    if "ex2mcmc" in want:
        per = (EX2_N - 1) + (EX2_MALA + 1)
        iters = sorted({i for i in (2, (budget - 1) // per) if i >= 1 and 1 + i * per <= budget})
        out += [
            Candidate("ex2mcmc", dict(steps=i, n_particles=EX2_N, mala_steps=EX2_MALA, step_size=eps, temperature=T))
            for i in iters
            for eps in (0.01, 0.03)
            for T in (1.0, 0.3)
        ]
    if "dg_langevin" in want:
        out += [
            Candidate("dg_langevin", dict(steps=s, step_size=eps)) for eps in (0.001, 0.003, 0.01) for s in steps[-2:]
        ]
    for cal in (False, True) if calibrated else (False,):
        if "drs" in want:
            out += [Candidate("drs", dict(gamma_percentile=g, pilot=1000), cal) for g in (95.0, 80.0, 50.0)]
        if "mh" in want:
            out += [
                Candidate("mh", dict(k=k), cal)
                for k in sorted({min(10, budget - 1), 30, budget - 1})
                if 1 <= k <= budget - 1
            ]
    return out


def _predicted_cost(c: Candidate) -> float:
    return {
        "none": 0,
        "ddls": c.options.get("steps", 0) + 1,
        "dot": c.options.get("steps", 0) + 1,
        "dg_langevin": c.options.get("steps", 0) + 1,
        "dgflow": c.options.get("steps", 0) + 1,
        "ex2mcmc": 1 + c.options.get("steps", 0) * ((EX2_N - 1) + (EX2_MALA + 1)),
        "mh": c.options.get("k", 0) + 1,
    }.get(c.method, 0)
