"""Score models: a user's network as a score ``∇x log p_σ(x)``, the EDM sampler, discriminator guidance.

A score model is a callable ``S(x [B, *X], σ [B]) -> [B, *X]`` in the variance-exploding parametrisation of
Karras et al. 2022 (EDM): ``x = y + σ n`` with ``y ~ p_data``, ``n ~ N(0, I)``, so ``p_σ = p_data ⋆ N(0, σ² I)``.
:func:`as_score` turns what the network predicts into the score:

* ``"score"``: ``S`` is ``∇x log p_σ(x)`` itself;
* ``"denoised"``: ``S = D(x, σ) ≈ E[y | x]`` and ``∇x log p_σ(x) = (D(x, σ) - x)/σ²`` (Tweedie);
* ``"eps"``: ``S = ε̂(x, σ) ≈ E[n | x]`` and ``∇x log p_σ(x) = -ε̂/σ``;
* ``"raw"``: ``S = F(c_in x, c_noise)``, an EDM network without its preconditioning (Karras et al. 2022,
  Table 1, ``σ_data`` given): ``D = c_skip x + c_out F``.

Sampling (Karras et al. 2022, Alg. 1, deterministic): the probability-flow ODE ``dx/dσ = -σ ∇x log p_σ(x)``
on the grid ``σ_i = (σ_max^{1/ρ} + i/(N-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ``, ``σ_N = 0`` (:func:`edm_sigmas`),
integrated with Heun's 2nd-order method (Euler for the last step to ``σ = 0``): ``2N - 1`` score evaluations.

Discriminator guidance (Kim et al. 2023): with ``d(x, σ)`` the probability that ``x`` is noised *data* rather
than a noised sample of the score model, the optimal ``d*`` satisfies ``d*/(1 - d*) = p_σ/q_σ``, so
``∇ log p_σ = ∇ log q_σ + ∇ log(d*/(1 - d*))``: :func:`dg_correction` is ``w ∇x log(d/(1 - d))`` (``w ∇x d``
for a logit), :func:`guided_score` the corrected score. These are the pure parts a sampler calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, cast

import torch
from torch import Tensor

from .errors import OptionError, ShapeError

ScoreFn = Callable[[Tensor, Tensor], Tensor]


class Score(Protocol):
    """What :func:`as_score` returns: a score ``S(x, σ)`` (``σ`` a scalar or ``[B]``) that names the
    network's ``output``."""

    output: str

    def __call__(self, x: Tensor, sigma: Tensor | float, /) -> Tensor: ...


class DiffusersScore(Protocol):
    """What :func:`diffusers_score` returns: an ``ε``-predictor ``S(x, σ)`` and the ``σ`` range of its
    scheduler."""

    sigma_min: float
    sigma_max: float

    def __call__(self, x: Tensor, sigma: Tensor | float, /) -> Tensor: ...


OUTPUTS = ("score", "denoised", "eps", "raw")
D_OUTPUTS = ("logit", "prob")

__all__ = [
    "as_score",
    "edm_sigmas",
    "edm_precond",
    "edm_loss_weight",
    "heun_step",
    "edm_heun_sample",
    "dg_correction",
    "guided_score",
    "diffusers_score",
    "OUTPUTS",
    "D_OUTPUTS",
]


def _sigma_rows(sigma, x: Tensor) -> Tensor:
    """``σ`` as a ``[B]`` tensor on ``x``'s device/dtype: a scalar is broadcast, ``[B]`` / ``[B, 1]`` kept."""
    B = x.shape[0]
    s = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    if s.dim() == 0:
        s = s.expand(B)
    elif s.dim() == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.shape != (B,):
        raise ShapeError(
            f"sigma must be a scalar or a tensor of shape ({B},) (one per sample); got shape {tuple(s.shape)}"
        )
    return s


def _col(s: Tensor, x: Tensor) -> Tensor:
    return s.reshape(-1, *([1] * (x.dim() - 1)))


def edm_precond(sigma: Tensor, sigma_data: float):
    """``(c_skip, c_out, c_in, c_noise)`` (Karras et al. 2022, Table 1): ``σ_d²/(σ² + σ_d²)``,
    ``σ σ_d/sqrt(σ² + σ_d²)``, ``1/sqrt(σ² + σ_d²)``, ``log(σ)/4``."""
    sd2 = float(sigma_data) ** 2
    r = (sigma**2 + sd2).sqrt()
    return sd2 / (sigma**2 + sd2), sigma * sigma_data / r, 1 / r, torch.log(sigma) / 4


def edm_loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """EDM's loss weight ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²`` (``λ c_out² = 1``)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def as_score(model: Callable, output: str = "score", sigma_data: float | None = None) -> Score:
    """The score ``∇x log p_σ(x)`` of a network ``model(x [B, *X], σ [B])`` that predicts ``output``
    (module docstring); ``sigma_data`` is needed for ``"raw"`` only. The returned callable takes ``σ`` as a
    scalar or one value per sample and checks shapes and dtypes (``ShapeError``)."""
    if output not in OUTPUTS:
        raise OptionError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
    if not callable(model):
        raise OptionError(f"model must be a callable S(x, sigma); got {type(model).__name__}")
    if output == "raw" and (not isinstance(sigma_data, (int, float)) or not sigma_data > 0):
        raise OptionError(
            f'output="raw" needs sigma_data > 0 (the data std of the EDM preconditioning); got {sigma_data!r}'
        )
    sd = sigma_data if sigma_data is not None else 0.0  # > 0 when output == "raw", unused otherwise

    def score(x: Tensor, sigma) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point():
            got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"x must be a floating tensor [B, *X]; got {got}")
        s = _sigma_rows(sigma, x)
        if output == "raw":
            c_skip, c_out, c_in, c_noise = (_col(c, x) for c in edm_precond(s, sd))
            y = model(c_in * x, c_noise.flatten())
        else:
            y = model(x, s)
        if not isinstance(y, Tensor) or y.shape != x.shape or y.dtype != x.dtype:
            got = f"{y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise ShapeError(
                f"the score model must return a {x.dtype} tensor of shape {tuple(x.shape)} (its "
                f'"{output}" prediction for x); got {got}'
            )
        sc = _col(s, x)
        if output == "score":
            return y
        if output == "eps":
            return -y / sc
        den = y if output == "denoised" else c_skip * x + c_out * y
        return (den - x) / sc**2

    typed = cast(Score, score)  # a function with an attribute: mypy cannot type the assignment below otherwise
    typed.output = output
    return typed


def edm_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, dtype=torch.float64
) -> Tensor:
    """``[n + 1]`` noise levels: ``σ_i = (σ_max^{1/ρ} + i/(n-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ`` for
    ``i < n`` (``σ_0 = σ_max``, ``σ_{n-1} = σ_min``) and ``σ_n = 0`` (Karras et al. 2022, Eq. 5)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise OptionError(f"n (the number of noise levels) must be an int >= 2; got {n!r}")
    if not 0 < sigma_min < sigma_max or not rho > 0:
        raise OptionError(
            f"edm_sigmas needs 0 < sigma_min < sigma_max and rho > 0; got sigma_min={sigma_min!r}, "
            f"sigma_max={sigma_max!r}, rho={rho!r}"
        )
    i = torch.arange(n, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    s = (a + i / (n - 1) * (b - a)) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)]).to(dtype)


def heun_step(score: ScoreFn, x: Tensor, sigma: float, sigma_next: float, d: Tensor | None = None):
    """One step of the probability-flow ODE ``dx/dσ = -σ s(x, σ)`` from ``σ`` to ``σ_next``: Heun's method
    ``x' = x + h d``, ``x_next = x + h (d + d')/2`` with ``h = σ_next - σ``, ``d = -σ s(x, σ)``,
    ``d' = -σ_next s(x', σ_next)``; Euler (``x'``) when ``σ_next = 0``. ``d`` may be passed when known.
    Returns ``(x_next, nfe)`` (score evaluations made)."""
    nfe = 0
    if d is None:
        d = -sigma * score(x, torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device))
        nfe += 1
    h = sigma_next - sigma
    x_e = x + h * d
    if sigma_next == 0:
        return x_e, nfe
    d2 = -sigma_next * score(x_e, torch.full((x.shape[0],), float(sigma_next), dtype=x.dtype, device=x.device))
    return x + h * (d + d2) / 2, nfe + 1


@torch.no_grad()
def edm_heun_sample(score: ScoreFn, x_init: Tensor, sigmas: Tensor, *, batch_size: int | None = None) -> Tensor:
    """Integrate ``dx/dσ = -σ s(x, σ)`` from ``x_init`` (at ``σ_0 = sigmas[0]``, e.g. ``σ_max n``) along
    ``sigmas`` (ending at 0) with :func:`heun_step`; ``2(len(sigmas) - 1) - 1`` score evaluations per sample.
    ``batch_size`` splits the samples into chunks (the result does not depend on it). Runs without autograd
    (:func:`dg_correction` turns it back on for its own gradient)."""
    sig = [float(v) for v in torch.as_tensor(sigmas).flatten()]
    if len(sig) < 2 or any(b >= a for a, b in zip(sig, sig[1:])) or sig[-1] < 0:
        raise OptionError(f"sigmas must decrease strictly to a value >= 0 (edm_sigmas); got {sig[:4]}...")
    if batch_size is not None and batch_size < x_init.shape[0]:
        return torch.cat([edm_heun_sample(score, c, sigmas) for c in x_init.split(batch_size)])
    x = x_init
    for a, b in zip(sig, sig[1:]):
        x, _ = heun_step(score, x, a, b)
        x = x.detach()
    return x


def dg_correction(D: Callable, x: Tensor, sigma, w: float = 1.0, d_output: str = "logit") -> Tensor:
    """Discriminator guidance (Kim et al. 2023, Eq. 7): ``w ∇x log(d/(1 - d))(x, σ)``, detached.

    ``d_output="logit"``: ``D`` returns ``log(d/(1 - d))`` and the term is ``w ∇x D``; ``"prob"``: ``D`` returns
    ``d`` in (0, 1), clamped to ``[1e-6, 1 - 1e-6]``. ``D(x, σ [B])`` must return ``[B]`` (or ``[B, 1]``)."""
    if d_output not in D_OUTPUTS:
        raise OptionError(f"d_output must be one of {', '.join(D_OUTPUTS)}; got {d_output!r}")
    s = _sigma_rows(sigma, x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = D(xg, s)
        if not isinstance(out, Tensor) or out.reshape(-1).shape != (x.shape[0],):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(f"D(x, sigma) must return one value per sample, shape ({x.shape[0]},); got {got}")
        out = out.reshape(-1)
        if d_output == "prob":
            p = out.clamp(1e-6, 1 - 1e-6)
            out = torch.log(p) - torch.log1p(-p)
        (g,) = torch.autograd.grad(out.sum(), xg)
    return (w * g).detach()


def guided_score(
    score: ScoreFn,
    D: Callable | None,
    w: float = 1.0,
    d_output: str = "logit",
    *,
    sigma_range: tuple[float, float] | None = None,
) -> ScoreFn:
    """``s(x, σ) + w ∇x log(d/(1 - d))(x, σ)``: the discriminator-guided score (``D=None`` or ``w=0``: ``s``).

    ``sigma_range=(lo, hi)`` applies the correction only to samples with ``lo <= σ <= hi`` (the noise levels
    the discriminator was trained on; Kim et al. 2023 guide on a range of times): outside it ``D`` is an
    extrapolation, and in the ODE ``dx/dσ = -σ s`` its gradient is multiplied by ``σ dσ``."""
    if D is None or w == 0:
        return score
    if sigma_range is not None and not (len(sigma_range) == 2 and 0 <= sigma_range[0] < sigma_range[1]):
        raise OptionError(f"sigma_range must be (lo, hi) with 0 <= lo < hi; got {sigma_range!r}")

    def g(x: Tensor, sigma) -> Tensor:
        with torch.no_grad():
            base = score(x, sigma)
        if sigma_range is None:
            return base + dg_correction(D, x, sigma, w, d_output).to(base.dtype)
        s = _sigma_rows(sigma, x)
        on = (s >= sigma_range[0]) & (s <= sigma_range[1])
        if not bool(on.any()):
            return base
        out = base.clone()
        out[on] = out[on] + dg_correction(D, x[on], s[on], w, d_output).to(base.dtype)
        return out

    return g


def diffusers_score(unet, scheduler) -> DiffusersScore:
    """An ``ε``-predictor ``S(x, σ)`` (use ``as_score(S, "eps")``) from a diffusers ``UNet2DModel`` and its
    DDPM / DDIM / Euler (Karras) scheduler.

    The scheduler's ``ᾱ_t`` (``alphas_cumprod``) defines ``σ_t = sqrt((1 - ᾱ_t)/ᾱ_t)``: the VP state
    ``x_t = sqrt(ᾱ_t) y + sqrt(1 - ᾱ_t) n`` is ``x/sqrt(1 + σ²)`` for the VE state ``x = y + σ n``. ``S`` feeds
    the UNet ``x/sqrt(1 + σ²)`` at the timestep whose ``σ_t`` is nearest to ``σ`` in ``log σ``, and turns a
    ``prediction_type`` of ``sample`` or ``v_prediction`` into ``ε``. ``S.sigma_min`` / ``S.sigma_max`` give
    the range the scheduler covers (for :func:`edm_sigmas`)."""
    ac = getattr(scheduler, "alphas_cumprod", None)
    if ac is None:
        raise OptionError(f"scheduler must have alphas_cumprod (DDPM, DDIM, Euler); got {type(scheduler).__name__}")
    ac = torch.as_tensor(ac, dtype=torch.float64)
    log_sig = 0.5 * (torch.log1p(-ac) - torch.log(ac))
    pred = getattr(getattr(scheduler, "config", None), "prediction_type", "epsilon")
    if pred not in ("epsilon", "sample", "v_prediction"):
        raise OptionError(f"scheduler.config.prediction_type must be epsilon, sample or v_prediction; got {pred!r}")

    def S(x: Tensor, sigma) -> Tensor:
        s = _sigma_rows(sigma, x)
        t = (torch.log(s.double().cpu())[:, None] - log_sig[None, :]).abs().argmin(1)
        a = ac[t].to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        sc = _col(s, x)
        xt = x / (1 + sc**2).sqrt()
        out = unet(xt, t.to(x.device)).sample
        if pred == "sample":
            out = (xt - a.sqrt() * out) / (1 - a).sqrt()
        elif pred == "v_prediction":
            out = a.sqrt() * out + (1 - a).sqrt() * xt
        return out

    typed = cast(DiffusersScore, S)  # a function with attributes (as in as_score)
    typed.sigma_min = float(math.exp(float(log_sig.min())))
    typed.sigma_max = float(math.exp(float(log_sig.max())))
    return typed
