"""Whether a method can sample a model, read off the method's declarations (``Kernel.needs``).

A model's ``meta`` (manifest entry or ``latentflow.json``) says which roles it has (``G``, ``D``) and how
its D is called; :func:`check_method_fits` refuses a method the model cannot serve, naming what it lacks.
The options a run uses are :func:`latentflow.models.sampling_options`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import OptionError
from ..models import meta_get, sampling_options  # noqa: F401  (re-exported)
from ..samplers import generate, kernel, methods  # noqa: F401  (generate re-exported)

#: how a model's ``d_conditioning`` calls its D, and in words
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
    k = kernel(method)
    needs, roles = k.needs, _roles(meta)
    call = _CALLS.get(meta_get(meta, "d_conditioning"))
    if needs.score:
        return (
            f'samples a score model (refine(None, D, z, method="{method}", score=S) in Python); '
            "model folders do not load score models yet"
        )
    if needs.generator == "required" and "G" not in roles:
        return "needs a generator G, and the model has none"
    if needs.needs_discriminator and "D" not in roles:
        return "needs a discriminator D, and the model has none"
    if needs.discriminator and "D" in roles and call not in needs.discriminator:
        kind = _KIND.get(meta_get(meta, "d_conditioning"), repr(meta_get(meta, "d_conditioning")))
        return f"calls {' or '.join(needs.discriminator)}, and the model's D is {kind}"
    if options is not None and "D" in roles:
        return k.misfit_options(call, options)
    return None


def fitting_methods(meta: Any) -> list[str]:
    """The methods that can sample the model ``meta`` describes (the generator alone among them, first)."""
    ms = methods()
    return sorted((m for m in ms if misfit(m, meta) is None), key=lambda m: ms[m].kernel.refines)


def check_method_fits(method: str, meta: Any, options: dict | None = None) -> None:
    """Raise ``OptionError`` naming the method and what the model lacks when ``method`` cannot sample it."""
    why = misfit(method, meta, options)
    if why is None:
        return
    fits = fitting_methods(meta)
    hint = ", ".join(f'"{m}"' + ("" if kernel(m).refines else " (no refinement)") for m in fits)
    raise OptionError(
        f'method "{method}" {why} (model "{meta_get(meta, "name")}" is {describe_model(meta)}). '
        + (f"Methods that fit it: {hint}." if fits else "No method fits it.")
    )
