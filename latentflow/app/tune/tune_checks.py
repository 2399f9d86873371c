"""``tune``'s input checks: every bad argument is one ``LatentflowError`` naming it, raised before any search.

Beyond types and ranges, the checks run G on two latents and D on two real rows (and on G's samples) and
compare the real data with G's samples, so that a mismatch is refused with the fix instead of producing a
confident but meaningless recommendation:

* layout: real rows ``[N, H, W]`` for a ``[1, H, W]`` G get the channel axis, channels-last rows
  (``[N, H, W, C]``) for a ``[C, H, W]`` G are moved (``latentflow sample --real`` reads the same layouts);
* dtype: float64 and integer tensors become float32, uint8 images are mapped from [0, 255] to [-1, 1]
  (as ``latentflow tune --real`` reads them); bool and complex tensors are refused;
* range: real data whose spread differs from G's samples by more than ``RANGE_RATIO`` times, or
  non-negative images (a [0, 1] or [0, 255] set) for a G whose images reach well below 0, are refused;
* D must be connected to x (its output has a gradient with respect to x) and finite somewhere; G's samples
  must be finite;
* labels: a class-conditional G (``num_classes`` > 0) takes labels in range; a G that fails without labels
  is refused with the hint to pass ``num_classes``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ...energy import d_values
from ...errors import LatentflowError, OptionError, ShapeError
from ...rng import sample_latents
from ...samplers import generate
from ...samplers._checks import resolve_num_classes

log = logging.getLogger("latentflow.app.tune")

RANGE_RATIO = 10.0  # real spread / G spread beyond which (or below 1/RANGE_RATIO) real is off G's range
N_PROBE = 64  # G samples drawn to learn G's output range


@dataclass
class Checked:
    """What the checks learnt: the real rows as G's samples are laid out, the classes (0: unconditional),
    the real labels (or None) and the value range of G's samples."""

    real: Tensor
    num_classes: int
    real_labels: Tensor | None
    value_range: tuple[float, float]


def conform_real(real: Tensor, shape: tuple) -> Tensor:
    """``real`` in G's layout ``[N, *shape]``: ``[N, H, W]`` gets a channel axis for a ``[1, H, W]`` G, and
    ``[N, H, W, C]`` becomes ``[N, C, H, W]`` for a ``[C, H, W]`` G; other shapes are returned as they are."""
    got = tuple(real.shape[1:])
    if got == shape:
        return real
    if len(shape) == 3 and shape[0] == 1 and got == shape[1:]:
        log.info("tune: real rows %s read as one-channel images %s", got, shape)
        return real.unsqueeze(1)
    if len(shape) == 3 and got == (*shape[1:], shape[0]):
        log.info("tune: real rows %s read as channels-last images, moved to %s", got, shape)
        return real.permute(0, 3, 1, 2).contiguous()
    return real


def as_float(real, name: str = "real") -> Tensor:
    if not isinstance(real, Tensor) or real.dim() < 2 or real.shape[0] < 20:
        got = tuple(real.shape) if isinstance(real, Tensor) else type(real).__name__
        raise ShapeError(f"{name} must be a tensor [N, *X] with N >= 20; got {got}")
    if real.dtype == torch.bool or real.is_complex():
        raise ShapeError(f"{name} must hold real numbers (float samples, or uint8 images); got a {real.dtype} tensor")
    if real.dtype == torch.uint8:
        log.info("tune: uint8 %s mapped from [0, 255] to [-1, 1]", name)
        return real.float() / 127.5 - 1
    real = real.float()
    if not torch.isfinite(real).all():
        raise ShapeError(f"{name} must hold finite values only")
    return real


def _labels(labels, n: int, k: int, name: str) -> Tensor:
    if (
        not isinstance(labels, Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or labels.dtype == torch.bool
    ):
        got = f"a {labels.dtype} tensor" if isinstance(labels, Tensor) else type(labels).__name__
        raise OptionError(f"{name} must be integer class labels, a [N] tensor; got {got}")
    if tuple(labels.shape) != (n,):
        raise ShapeError(f"{name} must hold one label per real sample, shape ({n},); got {tuple(labels.shape)}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= k:
        raise OptionError(f"{name} must hold class labels in [0, {k - 1}]; got values {lo}..{hi}")
    return labels.long()


def _spread(x: Tensor) -> tuple[float, float, float]:
    """(1 % quantile, 99 % quantile, median) of the values of ``x`` (subsampled to 100,000)."""
    v = x.flatten()[:: max(1, x.numel() // 100_000)].double()
    q = torch.quantile(v, torch.tensor([0.01, 0.99, 0.5], dtype=v.dtype))
    return float(q[0]), float(q[1]), float(q[2])


def value_range(x: Tensor) -> tuple[float, float]:
    """The range images of G live in, from its samples: [-1, 1] (tanh), [0, 1] (sigmoid) or their extent."""
    lo, hi = float(x.min()), float(x.max())
    if lo >= -1.001 and hi <= 1.001:
        return (0.0, 1.0) if lo >= -1e-3 else (-1.0, 1.0)
    return lo, hi


def check_range(real: Tensor, fake: Tensor, image: bool) -> None:
    """Refuse real data off G's range (scaled or shifted by far more than a trained G errs), with the fix."""
    rl, rh, rm = _spread(real)
    gl, gh, gm = _spread(fake)
    rs, gs = max(rh - rl, 1e-12), max(gh - gl, 1e-12)
    if image and rl >= -1e-3 and gl < -0.25:
        hint = "real / 127.5 - 1" if rh > 2 else "real * 2 - 1"
        raise ShapeError(
            f"real: values in [{rl:.3g}, {rh:.3g}] but G's images reach {gl:.3g} (range [{gl:.3g}, {gh:.3g}]): "
            f"scale real to G's range first (e.g. {hint})"
        )
    if rs / gs > RANGE_RATIO or gs / rs > RANGE_RATIO or abs(rm - gm) > RANGE_RATIO * gs:
        raise ShapeError(
            f"real: values span [{rl:.3g}, {rh:.3g}] (1-99 %) but G's samples span [{gl:.3g}, {gh:.3g}]: real "
            "is off G's range; rescale it to the range G was trained on"
        )


def check_models(G, D, real: Tensor, latent_dim: int, prior: str, num_classes, y, real_labels) -> Checked:
    """Run G on probe latents and D on real rows and G's samples; see the module docstring."""
    z = sample_latents(N_PROBE, latent_dim, prior, generator=0)
    k = resolve_num_classes(num_classes, G, D)
    if y is not None and (isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < max(k, 1) or k == 0):
        raise OptionError(f"y must be one class label, an int in [0, {k - 1}], for a conditional G; got {y!r}")
    yz = torch.arange(N_PROBE) % k if k > 0 else None
    try:
        x = generate(G, z, y=yz)  # eval mode, no gradients, in chunks: as every candidate's G runs
    except LatentflowError:
        raise
    except TypeError as e:
        if k == 0 and "positional argument" in str(e):
            raise OptionError(
                f"G needs class labels (G(z, y)): pass num_classes= (latentflow tune: a model whose metadata "
                f"says num_classes) and real_labels=; G said: {e}"
            ) from None
        raise ShapeError(
            f"G failed on latents of shape ({N_PROBE}, {latent_dim}) (latent_dim): TypeError: {e}"
        ) from None
    except Exception as e:  # noqa: BLE001  (a user's G that cannot take the latents)
        raise ShapeError(
            f"G failed on latents of shape ({N_PROBE}, {latent_dim}) (latent_dim): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] != N_PROBE:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"G(z [{N_PROBE}, {latent_dim}]) must return samples [{N_PROBE}, *X]; got {got}")
    real = conform_real(real, tuple(x.shape[1:]))
    if tuple(x.shape[1:]) != tuple(real.shape[1:]):
        raise ShapeError(
            f"real: G's samples have shape [*, {', '.join(map(str, x.shape[1:]))}] but the real samples have "
            f"[*, {', '.join(map(str, real.shape[1:]))}]; give real data of G's sample shape"
        )
    if not torch.isfinite(x).all():
        raise LatentflowError("the model failed: G returned non-finite values (NaN or inf) on latents from the prior")
    image = x.dim() == 4
    check_range(real, x.float(), image)
    rl = None
    if real_labels is not None:
        if k == 0:
            raise OptionError("real_labels are given but the model is not class-conditional (num_classes is 0)")
        rl = _labels(real_labels, real.shape[0], k, "real_labels")
    _check_d(D, real[:2].to(x.dtype), x, None if rl is None else rl[:2], yz)
    return Checked(real, k, rl, value_range(x) if image else (float(x.min()), float(x.max())))


def _check_d(D, xr: Tensor, xg: Tensor, yr, yg) -> None:
    cond_r = () if yg is None else (yr if yr is not None else yg[:2],)
    cond_g = () if yg is None else (yg,)
    xr = xr.detach().clone().requires_grad_(True)
    try:
        out = d_values(D(xr, *cond_r), 2, "D(x)")
        with torch.no_grad():
            og = d_values(D(xg, *cond_g), xg.shape[0], "D(x)")
    except LatentflowError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ShapeError(f"D failed on real samples of shape {tuple(xr.shape)}: {type(e).__name__}: {e}") from None
    if not out.requires_grad:
        raise OptionError("D's output does not depend on x (no gradient reaches x): pass the discriminator D(x)")
    if not torch.isfinite(og).any():
        raise LatentflowError("the model failed: D returned non-finite values (NaN or inf) on every sample of G")


def check_args(
    G,
    D,
    latent_dim,
    prior,
    d_output,
    budget,
    metric,
    features,
    methods,
    seed,
    time_budget,
    num_classes,
    *,
    metrics: tuple,
    searched: tuple,
) -> None:
    """Types and ranges of ``tune``'s arguments (``metrics``: the metric names, ``searched``: the methods)."""
    if not callable(G) or not callable(D):
        raise OptionError(f"G and D must be callables; got {type(G).__name__} and {type(D).__name__}")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise OptionError(f"latent_dim must be an int >= 1; got {latent_dim!r}")
    if prior not in ("normal", "uniform"):
        raise OptionError(f'prior must be "normal" or "uniform"; got {prior!r}')
    if d_output not in ("logit", "prob", "critic"):
        raise OptionError(f'd_output must be "logit", "prob" or "critic"; got {d_output!r}')
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise OptionError(f"budget must be an int >= 1 (D evaluations per sample); got {budget!r}")
    if metric not in metrics:
        raise OptionError(f"metric must be one of {', '.join(metrics)}; got {metric!r}")
    if features is not None and not callable(features) and features not in ("inception", "raw"):
        raise OptionError(f'features must be "inception", "raw", a callable x -> [B, F] or None; got {features!r}')
    if methods is not None and (isinstance(methods, str) or not all(isinstance(m, str) for m in methods)):
        raise OptionError(f"methods must be a list of method names among {', '.join(searched)}; got {methods!r}")
    bad = sorted(set(methods or ()) - set(searched))
    if bad:
        raise OptionError(f"methods must be a subset of {', '.join(searched)}; got {', '.join(bad)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise OptionError(f"seed must be an int in 0..2**63-1; got {seed!r}")
    tb = time_budget
    if tb is not None and (isinstance(tb, bool) or not isinstance(tb, (int, float)) or not 0 < tb < math.inf):
        raise OptionError(f"time_budget must be a number of CPU seconds > 0 or None; got {tb!r}")
    k = num_classes
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        raise OptionError(f"num_classes must be an int >= 0 or None; got {k!r}")
