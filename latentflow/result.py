"""The one return type of every sampler, what its callback sees, and the evaluation counters.

The counters of G/D evaluations (:class:`Evals`: ``n_G_forward``, ``n_G_backward``, ``n_D_forward``,
``n_D_backward``, ``n_score_forward``) are declared here once; :data:`EVAL_KEYS` and :data:`GD_EVAL_KEYS` name
them for every table, report and benchmark that reads them out of ``Result.info``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

import torch


@dataclass
class Evals:
    """Evaluations of G, D and a score model, counted in samples (rows), forward and backward separately.

    The engine counts a run's evaluations in one (ints); a method's declared cost
    (``Kernel.cost``) is one per sample (floats)."""

    n_G_forward: float = 0
    n_G_backward: float = 0
    n_D_forward: float = 0
    n_D_backward: float = 0
    n_score_forward: float = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: every counter, in the order of :class:`Evals`
EVAL_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Evals))
#: the G/D counters (the score model's left out): what the benchmarks' budgets count
GD_EVAL_KEYS: tuple[str, ...] = EVAL_KEYS[:4]


class Step(NamedTuple):
    """What a sampler's ``callback`` receives after each step (read-only; the return value is ignored).

    ``i`` is the step index (0-based). ``state`` is the variable the method moves, after the step:

    * DDLS and Ex2MCMC: the unconstrained coordinates ``u`` (``u = z`` for a normal prior; ``z = erf(u/√2)``
      for a uniform one), and with DDLS's ``output_noise > 0`` the output-noise coordinates after the first
      ``latent_dim`` columns;
    * DOT (latent space), DGflow, MH-GAN: the latents ``z``; DOT in target space: the samples ``x``;
    * DRS: the proposals of the rows still waiting for an acceptance (a subset of the rows);
    * data-space methods (``dg_langevin``, ``dflow``, ``dg_score``): the particles ``x``.

    ``z`` is the latent ``[B, latent_dim]`` of every chain after the step for the latent-space methods whose
    state maps to one (DDLS, Ex2MCMC, DOT in latent space, DGflow, MH-GAN), else ``None``. ``energy`` is the
    per-chain energy or D value when the method has one, ``accepted`` the per-chain acceptance of this step
    (MALA, MH) or ``None``.
    """

    i: int
    state: torch.Tensor
    energy: torch.Tensor | None = None
    accepted: torch.Tensor | None = None
    z: torch.Tensor | None = None


class Info(TypedDict, total=False):
    """The fields every sampler's ``Result.info`` holds (a plain dict; methods add their own diagnostics)."""

    method: str
    options: dict
    diverged: torch.Tensor  # [B] bool
    diverged_step: torch.Tensor  # [B] long, -1 for chains that never diverged
    n_G_forward: int
    n_G_backward: int
    n_D_forward: int
    n_D_backward: int
    n_score_forward: int
    wall_s: float
    auto_batch_size: dict


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        if v.numel() == 1:
            return v.item()
        return v.detach().cpu().tolist()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and v != v:
        return None
    return v


@dataclass(frozen=True)
class Result:
    """Samples and diagnostics of one sampler run.

    Attributes:
        x: the samples ``[B, *X]``.
        z: the final latents ``[B, d]`` for latent-space methods, else ``None``.
        info: a dict: the fields every method gives (:class:`Info`: ``method``, ``options``, ``diverged [B]``
            bool, ``diverged_step [B]`` long, the counters of :class:`Evals`, ``wall_s``; read them as the
            properties below) and the method's own diagnostics (``accept_rate [B]``, traces, ...).
        y: the class label of each sample ``[B]`` (long) for a class-conditional model, else ``None``.
    """

    x: torch.Tensor
    z: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)  # its common fields: Info
    y: torch.Tensor | None = None

    @property
    def method(self) -> str:
        return self.info["method"]

    @property
    def options(self) -> dict:
        """The options the run used (method and engine options; objects as their names)."""
        return self.info["options"]

    @property
    def diverged(self) -> torch.Tensor:
        return self.info["diverged"]

    @property
    def diverged_step(self) -> torch.Tensor:
        return self.info["diverged_step"]

    @property
    def evals(self) -> Evals:
        """The run's evaluations of G, D and a score model (:class:`Evals`)."""
        return Evals(*[self.info.get(k, 0) for k in EVAL_KEYS])

    @property
    def wall_s(self) -> float:
        return self.info["wall_s"]

    def to_dict(self, per_chain: bool = False) -> dict:
        """A JSON-serialisable summary: scalars as they are, per-chain tensors summarised.

        With ``per_chain=False`` a per-chain tensor becomes its mean (``accept_rate`` ...), and
        ``diverged`` becomes the list of diverged chain indices; traces are dropped.
        """
        out: dict[str, Any] = {}
        for k, v in self.info.items():
            if isinstance(v, torch.Tensor) and v.numel() > 1 and not per_chain:
                if k == "diverged":
                    out["diverged_chains"] = torch.nonzero(v).flatten().cpu().tolist()
                    out["n_diverged"] = int(v.sum().item())
                elif k.endswith("_trace") or k == "diverged_step":
                    continue
                elif v.dtype == torch.bool:
                    out[k + "_mean"] = float(v.float().mean().item())
                elif v.is_floating_point():
                    out[k + "_mean"] = float(v.float().mean().item())
                continue
            if k == "diverged" and isinstance(v, torch.Tensor):
                out["diverged_chains"] = torch.nonzero(v.reshape(-1)).flatten().cpu().tolist()
                out["n_diverged"] = int(v.sum().item())
                continue
            out[k] = _jsonable(v)
        out["n"] = int(self.x.shape[0])
        return out
