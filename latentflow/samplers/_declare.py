"""What a method declares about itself beside its maths, in types the rest of latentflow reads.

* :class:`Needs`: what it needs from the model: a generator (required, optional or none), which calls of a
  discriminator it makes (``D(x)``, ``D(x, t)``, ``D(x, sigma)``; none, or optional), a score model, and
  whether it takes class labels. The driver refuses a call that lacks what is needed; ``latentflow sample``
  (``app.fit.misfit``) refuses a model that cannot serve it.
* :class:`SearchContext` -> ``[Candidate, ...]``: the candidates ``tune`` tries for a method at an evaluation
  budget, its published settings among them (named after their paper).

The declarations themselves sit on :class:`~latentflow.samplers._driver.Kernel` and its subclasses
(``needs``, ``cost``, ``fit_budget``, ``search_space``, ``calibration``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Needs", "SearchContext", "Candidate", "D_CALLS", "GENERATOR_NEEDS", "CALIBRATIONS"]

#: the calls of a discriminator a method can make: unconditioned, time-conditioned, noise-conditioned
D_CALLS = ("D(x)", "D(x, t)", "D(x, sigma)")
DCall = Literal["D(x)", "D(x, t)", "D(x, sigma)"]
#: does a method need a generator G: "required", "optional" (``G=None``: ``z`` holds the samples), "none"
GENERATOR_NEEDS = ("required", "optional", "none")
#: how a calibrated D (Platt scaling, ``latentflow.calibrate``) applies to a method: as a temperature
#: rescale ``T -> T/a`` of plain options (the energy ``-(a s + b)/T`` has the gradient of ``-s/(T/a)``), as
#: the calibrated D itself (its acceptance tests need the calibrated logit), or not at all (None)
CALIBRATIONS = ("temperature", "discriminator", None)


@dataclass(frozen=True)
class Needs:
    """What a method needs from the model (``methods()[name].needs``)."""

    generator: Literal["required", "optional", "none"] = "required"
    #: the calls of D the method makes (which one may depend on the options: ``Kernel.d_call``); () : no D
    discriminator: tuple[DCall, ...] = ("D(x)",)
    #: runs without a discriminator too (e.g. guidance weight 0)
    discriminator_optional: bool = False
    #: samples a score model ``S(x, σ)``, given as the option ``score=S``
    score: bool = False
    #: takes class labels ``y`` of a class-conditional model (``G(z, y)``, ``D(x, ..., y)``)
    labels: bool = True
    #: one line for people: what the options change about the above
    note: str = ""

    def __post_init__(self):
        if self.generator not in GENERATOR_NEEDS:
            raise TypeError(f"Needs.generator must be one of {', '.join(GENERATOR_NEEDS)}; got {self.generator!r}")
        bad = [c for c in self.discriminator if c not in D_CALLS]
        if not isinstance(self.discriminator, tuple) or bad:
            raise TypeError(f"Needs.discriminator must be a tuple of {', '.join(D_CALLS)}; got {self.discriminator!r}")

    @property
    def needs_discriminator(self) -> bool:
        return bool(self.discriminator) and not self.discriminator_optional

    def describe(self) -> str:
        """``'a generator and D(x)'``, ``'no generator, D(x, t)'``: for messages and listings."""
        g = {"required": "a generator", "optional": "a generator (optional)", "none": "no generator"}[self.generator]
        d = " or ".join(self.discriminator) or "no discriminator"
        parts = [g, d + (" (optional)" if self.discriminator and self.discriminator_optional else "")]
        if self.score:
            parts.append("a score model (score=S)")
        text = ", ".join(parts) + ("" if self.labels else "; no class labels")
        return text + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict:
        """JSON-able (``latentflow methods --json``)."""
        return {
            "generator": self.generator,
            "discriminator": list(self.discriminator),
            "discriminator_optional": self.discriminator_optional,
            "score": self.score,
            "labels": self.labels,
            "note": self.note,
            "summary": self.describe(),
        }


@dataclass(frozen=True)
class SearchContext:
    """What a method's search space may depend on (``Kernel.search_space``).

    ``budget``: D forward evaluations per sample a candidate may use; ``calibrated``: whether a calibrated D
    is at hand (then methods whose ``calibration`` is not None add calibrated candidates); ``prior``: the
    model's latent prior. Scales a caller derives from the model go beside them: ``step_scale`` multiplies
    every step size of a grid (1: none known; e.g. the inverse of a typical latent gradient norm), ``extra``
    holds anything else (e.g. the model's prior network) by name."""

    budget: int
    calibrated: bool = False
    prior: str = "normal"
    step_scale: float = 1.0
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def step(self, eps: float) -> float:
        """A grid's step size scaled to the model (``eps`` as it is when ``step_scale`` is 1)."""
        return eps * self.step_scale if self.step_scale != 1.0 else eps

    @property
    def steps(self) -> list[int]:
        """The step counts of a step grid: 10, 30 and the most the budget allows (100 at most, two D
        evaluations kept for the initial state and the probe)."""
        top = min(100, self.budget - 2)
        return sorted({s for s in (10, 30, top) if 1 <= s <= top})


@dataclass(frozen=True)
class Candidate:
    """One setting ``tune`` tries: a method, its options, whether its D is calibrated, and a name when it is
    the method's published setting (``"Che et al. 2020"``)."""

    method: str
    options: dict
    calibrated: bool = False
    name: str | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        o = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.items())
        return f"{self.method}{'(cal)' if self.calibrated else ''}[{o}]"


def with_published(grid: list[Candidate], published: list[Candidate]) -> list[Candidate]:
    """``grid`` with the ``published`` candidates: one equal to a grid point names that point, another is
    added after the grid."""
    out = list(grid)
    for p in published:
        same = next((i for i, c in enumerate(out) if c == p), None)
        if same is None:
            out.append(p)
        elif out[same].name is None:
            out[same] = Candidate(p.method, out[same].options, p.calibrated, p.name)
    return out
