"""The one return type of every sampler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch


class Step(NamedTuple):
    """What a sampler's ``callback`` receives after each step (read-only; the return value is ignored).

    ``i`` is the step index (0-based), ``state`` the chain state after the step (latent ``z`` for latent
    methods, particles ``x`` for data-space methods), ``energy`` the per-chain energy or D value when
    the method has one, ``accepted`` the per-chain acceptance of this step (MALA, MH) or ``None``.
    """

    i: int
    state: torch.Tensor
    energy: torch.Tensor | None = None
    accepted: torch.Tensor | None = None


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
        info: per-chain tensors (``diverged [B]`` bool, ``diverged_step [B]`` long, ``accept_rate [B]``,
            traces) and scalars (``method``, ``options``, ``n_G_forward``, ``n_G_backward``,
            ``n_D_forward``, ``n_D_backward``, ``wall_s``).
        y: the class label of each sample ``[B]`` (long) for a class-conditional model, else ``None``.
    """

    x: torch.Tensor
    z: torch.Tensor | None
    info: dict = field(default_factory=dict)
    y: torch.Tensor | None = None

    @property
    def diverged(self) -> torch.Tensor:
        return self.info["diverged"]

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
