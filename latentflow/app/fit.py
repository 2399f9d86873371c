"""What a method needs of a model, and the options a run uses.

A model's ``meta`` (manifest entry or ``latentflow.json``) says which roles it has (``G``, ``D``) and how
its D is called; :func:`check_method_fits` refuses a method the model cannot serve, naming what it lacks.
:func:`method_options` layers the model's recommended settings, its ``d_output`` and prior, and the
user's options, in that order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import OptionError
from ..models import sampling_options
from ..samplers import methods

#: the ``method`` of :func:`sample_model` (``latentflow sample --method none``) that refines nothing
NO_REFINEMENT = "none"

# what each method needs of a model: a generator G, a discriminator D, and how it calls D
_NEEDS: dict[str, tuple[bool, bool, tuple]] = {
    NO_REFINEMENT: (True, False, ()),
    "ddls": (True, True, (None,)),
    "dot": (True, True, (None,)),
    "drs": (True, True, (None,)),
    "mh": (True, True, (None,)),
    "truncation": (True, False, ()),
    "dflow": (False, True, ("time",)),
    "dg_langevin": (False, True, (None, "sigma")),
}
_CALLS = {None: "D(x)", "time": "D(x, t)", "sigma": "D(x, sigma)"}
_KIND = {
    None: "an unconditioned D(x)",
    "time": "a time-conditioned D(x, t)",
    "sigma": "a noise-conditioned D(x, sigma)",
}


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise OptionError(f"device must be auto, cpu or cuda[:i]; got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device cuda was asked for but CUDA is not available; use --device cpu")
    return dev


def meta_get(meta: Any, key: str, default=None):
    if isinstance(meta, dict):
        return meta.get(key, default)
    return getattr(meta, key, default)


def num_classes_of(G) -> int:
    """Classes of a class-conditional generator (its ``num_classes`` attribute), 0 when unconditional."""
    k = getattr(G, "num_classes", 0)
    return k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else 0


def labels_for(G, n: int, class_label=None, *, generator=None, device="cpu") -> torch.Tensor | None:
    """The labels ``[n]`` a run of a class-conditional ``G`` uses: ``class_label`` (an int) for every sample, or
    uniform per sample (``None`` or ``"random"``) from the per-chain streams of ``generator`` (as the
    samplers draw them); ``None`` for an unconditional G, where an int ``class_label`` is an ``OptionError``."""
    from ..rng import sample_labels

    k = num_classes_of(G)
    if class_label == "random":
        class_label = None
    if k == 0:
        if class_label is not None:
            raise OptionError(
                f"class {class_label!r} was given, but the model is not class-conditional "
                "(its G has no num_classes); drop --class"
            )
        return None
    if class_label is None:
        return sample_labels(n, k, generator=generator, device=device)
    if isinstance(class_label, bool) or not isinstance(class_label, int) or not 0 <= class_label < k:
        raise OptionError(f'class must be an int in [0, {k - 1}] or "random"; got {class_label!r}')
    return torch.full((n,), class_label, dtype=torch.long, device=device)


def generate(G, z: torch.Tensor, batch_size: int = 1024, y: torch.Tensor | None = None) -> torch.Tensor:
    """``G(z)`` (``G(z, y)`` with labels ``y [B]``) in chunks of ``batch_size`` latents, without gradients and
    with every ``nn.Module`` in eval mode (restored afterwards). A class-conditional G given no labels gets
    uniform ones (:func:`labels_for` with seed 0: a fixed, class-balanced draw)."""
    if y is None and num_classes_of(G):
        y = labels_for(G, z.shape[0], generator=0, device=z.device)
    modes = [(m, m.training) for m in G.modules()] if isinstance(G, nn.Module) else []
    for m, _ in modes:
        m.eval()
    try:
        with torch.no_grad():
            return torch.cat(
                [
                    G(z[i : i + batch_size], *(() if y is None else (y[i : i + batch_size],)))
                    for i in range(0, z.shape[0], batch_size)
                ]
            )
    finally:
        for m, t in modes:
            m.train(t)


def method_options(method: str, meta: Any, user: dict) -> dict:
    """The options a run uses: the model's recommended ones for ``method`` (manifest ``sampling``),
    the model's ``d_output`` and prior where the method takes them, then the user's on top (``None``: not
    given). One rule with :meth:`ModelPair.refine <latentflow.models.ModelPair.refine>`:
    :func:`latentflow.models.sampling_options`."""
    return sampling_options(method, meta, user, methods()[method].options)


def _roles(meta: Any) -> list[str]:
    return list(meta_get(meta, "roles") or ("G", "D"))


def describe_model(meta: Any) -> str:
    """``'a dflow model with D(x, t) only'``, ``'a scoregan model with G + S'``: for messages."""
    roles = _roles(meta)
    parts = [_CALLS.get(meta_get(meta, "d_conditioning"), "D") if r == "D" else r for r in roles]
    trainer = meta_get(meta, "trainer")
    return (
        (f"a {trainer} model" if trainer else "a model")
        + " with "
        + " + ".join(parts)
        + (" only" if len(parts) == 1 else "")
    )


def misfit(method: str, meta: Any, options: dict | None = None) -> str | None:
    """Why ``method`` cannot sample the model ``meta`` describes (with ``options``), or None when it can."""
    if method == "dg_score":
        return (
            'samples a score model (refine(None, D, z, method="dg_score", score=S) in Python); '
            "model folders do not load score models yet"
        )
    if method not in _NEEDS:
        return None
    needs_g, needs_d, calls = _NEEDS[method]
    roles = _roles(meta)
    cond = meta_get(meta, "d_conditioning")
    if needs_g and "G" not in roles:
        return "needs a generator G, and the model has none"
    if needs_d and "D" not in roles:
        return "needs a discriminator D, and the model has none"
    if needs_d and cond not in calls:
        return f"calls {' or '.join(_CALLS[c] for c in calls)}, and the model's D is {_KIND.get(cond, repr(cond))}"
    if method == "dg_langevin" and options is not None:
        if cond == "sigma" and options.get("sigmas") is None:
            return "needs sigmas (the noise levels) for a noise-conditioned D(x, sigma); pass --opt sigmas=[...]"
        if cond is None and options.get("sigmas") is not None:
            return "with sigmas calls D(x, sigma), and the model's D is an unconditioned D(x); drop sigmas"
    return None


def fitting_methods(meta: Any) -> list[str]:
    """The methods (and ``"none"``) that can sample the model ``meta`` describes."""
    return [m for m in (NO_REFINEMENT, *methods()) if misfit(m, meta) is None]


def check_method_fits(method: str, meta: Any, options: dict | None = None) -> None:
    """Raise ``OptionError`` naming the method and what the model lacks when ``method`` cannot sample it."""
    why = misfit(method, meta, options)
    if why is None:
        return
    fits = fitting_methods(meta)
    hint = ", ".join(f'"{m}"' + (" (no refinement)" if m == NO_REFINEMENT else "") for m in fits)
    raise OptionError(
        f'method "{method}" {why} (model "{meta_get(meta, "name")}" is {describe_model(meta)}). '
        + (f"Methods that fit it: {hint}." if fits else "No method fits it.")
    )
