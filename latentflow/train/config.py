"""Type checks of trainer configs, so that a wrong ``--set`` value fails at once with a one-line
``OptionError`` naming the field and the expected type (e.g. ``betas=[0.5]``: "betas must be 2 numbers").

A field's type is its annotation, checked by the samplers' option checker (:func:`latentflow.options.check_value`:
one validator for every typed record); a tuple or list field with a non-empty default must keep the
default's length and element kinds.

Two rules hold for every trainer's config: a ``device`` field must name a torch device (``"tpu"`` is
refused; :func:`train_device` refuses, before anything is built, one this machine does not have), and a ``latent_dim`` field
must agree with the generator's own ``latent_dim`` in ``arch_g_kwargs`` (the architecture is built from
the kwargs, the latents are drawn with ``latent_dim``). :func:`check_nets_fit` then runs the built
generator once on ``latent_dim``-sized latents (and D on its samples), so any other mismatch is one
``ShapeError`` before training.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import OptionError, ShapeError
from ..options import check_value, field_types

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "TrainConfig",
    "check_config",
    "make_config",
    "check_nets_fit",
    "train_device",
    "check_positive_int",
    "check_positive_float",
    "check_betas",
    "check_choice",
]


@functools.cache
def _hints(cls: type) -> dict:
    return field_types(cls)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _alts(tp) -> tuple:
    return typing.get_args(tp) if type(tp).__name__ in ("UnionType", "_UnionGenericAlias") else (tp,)


def _check_field(cls_name: str, f: dataclasses.Field, value, tp) -> Any:
    where = f"{f.name} ({cls_name})"
    default = _default(f)
    if isinstance(value, (tuple, list)) and isinstance(default, (tuple, list)) and default:
        numeric = all(_number(d) for d in default)
        if len(value) != len(default) or (numeric and not all(_number(v) for v in value)):
            what = f"{len(default)} numbers" if numeric else f"{len(default)} items"
            raise OptionError(f"{where} must be {what} like {list(default)}; got {list(value)!r}")
        value = tuple(value) if isinstance(default, tuple) else list(value)
    check_value(where, value, tp)
    alts = _alts(tp)
    if float in alts and int not in alts and _number(value) and isinstance(value, int):
        return float(value)
    return value


def check_config(cfg):
    """Check (and normalise: ints to floats, lists to tuples where the field says so) every field of the
    dataclass ``cfg`` against its annotation; returns ``cfg``. Raises ``OptionError`` on the first bad field."""
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        fixed = _check_field(type(cfg).__name__, f, value, hints[f.name])
        if fixed is not value:
            setattr(cfg, f.name, fixed)
    if isinstance(getattr(cfg, "device", None), str):  # a name torch knows ("tpu" is not one)
        import torch

        try:
            torch.device(cfg.device)
        except (RuntimeError, ValueError) as e:
            raise OptionError(
                f'device ({type(cfg).__name__}) must be a torch device such as "cpu" or "cuda:0"; got {cfg.device!r}'
            ) from e
    own = (getattr(cfg, "arch_g_kwargs", None) or {}).get("latent_dim") if hasattr(cfg, "latent_dim") else None
    if own is not None and own != cfg.latent_dim:
        kw = {**cfg.arch_g_kwargs, "latent_dim": cfg.latent_dim}
        raise OptionError(
            f"latent_dim={cfg.latent_dim!r} does not match arch_g_kwargs latent_dim={own!r} (the generator "
            f"{getattr(cfg, 'arch_g', 'G')} is built from arch_g_kwargs); set both, e.g. --set "
            f"latent_dim={cfg.latent_dim} --set 'arch_g_kwargs={json.dumps(kw)}'"
        )
    return cfg


@dataclass
class TrainConfig:
    """The base of every trainer's config: the fields every trainer has, first in every config (the seed:
    initial weights from ``seed``, the step generator from ``seed + 1``; the device; the number of steps, the
    batch size and Adam's betas, whose defaults a trainer redeclares where its own differ), and :meth:`validate`."""

    seed: int = 0
    device: str = "cpu"
    steps: int = 4000
    batch_size: int = 256
    betas: tuple = (0.5, 0.999)

    def validate(self) -> Self:
        """Check every field's type (:func:`check_config`), the trainer's own rules (:meth:`check`), then that
        ``batch_size`` and ``steps`` are positive ints; returns the config. Raises ``OptionError`` on the first
        bad field."""
        check_config(self)
        self.check()
        check_positive_int(self, "batch_size", "steps")
        return self

    def check(self) -> None:
        """The trainer's own rules beyond the fields' types (none here)."""


def train_device(cfg, out=None):
    """``torch.device(cfg.device)``, refused in one line (``OptionError``) when this machine does not have it
    (``"cuda"`` without CUDA, ``"cuda:7"`` on a machine with one GPU), after checking that ``out`` can be a
    folder written to (not a file, not on a read-only file system); both before anything is built. A config
    names a device it cannot check alone (``--dry-run`` prints a GPU recipe on any machine)."""
    import torch

    from .._io import check_writable
    from ..models.loading import check_device

    if out is not None:
        if not isinstance(out, (str, os.PathLike)) or not str(out):
            raise OptionError(f"out must be a folder path; got {out!r}")
        check_writable(out)
    check_device(cfg.device)
    return torch.device(cfg.device)


def check_nets_fit(G, latent_dim: int, data_shape=None, D=None, *, arch_g: str = "G", arch_d: str = "D") -> None:
    """Run ``G`` once on zero latents ``[2, latent_dim]`` and ``D`` on what it returns (eval mode, no
    gradients, the modules' modes restored): a generator that cannot take the latents, whose samples do not
    have the data's shape ``data_shape``, or a discriminator that cannot take them is one ``ShapeError``
    before any training step."""
    import torch

    p = next(iter(G.parameters()), None)
    dev, dtype = (p.device, p.dtype) if p is not None else ("cpu", torch.float32)
    modes = [(m, m.training) for m in (G, D) if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        with torch.no_grad():
            try:
                x = G(torch.zeros(2, int(latent_dim), device=dev, dtype=dtype))
            except (RuntimeError, ValueError, TypeError, IndexError) as e:
                raise ShapeError(
                    f"latent_dim={latent_dim} does not fit the generator {arch_g}: G(z [2, {latent_dim}]) "
                    f"failed: {_first_line(e)}"
                ) from None
            if data_shape is not None and tuple(x.shape[1:]) != tuple(data_shape):
                raise ShapeError(
                    f"the generator {arch_g} makes samples of shape {list(x.shape[1:])}; the data has shape "
                    f"{list(data_shape)} (set arch_g_kwargs to fit the data)"
                )
            if D is not None:
                try:
                    D(x)
                except (RuntimeError, ValueError, TypeError, IndexError) as e:
                    raise ShapeError(
                        f"the discriminator {arch_d} cannot take samples of shape {list(x.shape[1:])}: "
                        f"{_first_line(e)} (set arch_d_kwargs to fit the data)"
                    ) from None
    finally:
        for m, was in modes:
            m.train(was)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def make_config(cls, overrides: Mapping[str, Any] | None = None):
    """``cls(**overrides)`` after checking the names and types of ``overrides`` (the ``--set`` values),
    then ``validate()``. Unknown names and wrong types raise ``OptionError`` naming the field."""
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    bad = sorted(set(overrides) - set(fields))
    if bad:
        raise OptionError(
            f"unknown config field(s) {', '.join(bad)} for {cls.__name__}; valid: {', '.join(sorted(fields))}"
        )
    hints = _hints(cls)
    checked = {k: _check_field(cls.__name__, fields[k], v, hints[k]) for k, v in overrides.items()}
    cfg = cls(**checked)
    return cfg.validate() if hasattr(cfg, "validate") else cfg


def check_positive_int(cfg, *names) -> None:
    """Each field of ``names`` is an int >= 1 (a bool is not)."""
    for k in names:
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise OptionError(f"{k} must be a positive int; got {v!r}")


def check_positive_float(cfg, *names) -> None:
    """Each field of ``names`` is a finite number > 0."""
    for k in names:
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > 0:
            raise OptionError(f"{k} must be a finite number > 0; got {v!r}")


def check_betas(cfg) -> None:
    """``cfg.betas`` is Adam's two betas, each in [0, 1)."""
    b = cfg.betas
    if not (
        isinstance(b, (list, tuple)) and len(b) == 2 and all(isinstance(v, (int, float)) and 0 <= v < 1 for v in b)
    ):
        raise OptionError(f"betas must be two numbers in [0, 1); got {b!r}")


def check_choice(cfg, name: str, choices, *, quoted: bool = False) -> None:
    """``cfg.<name>`` is one of ``choices``; the message lists them (``quoted``: ``"a" or "b"``)."""
    v = getattr(cfg, name)
    if v not in choices:
        want = " or ".join(f'"{c}"' for c in choices) if quoted else f"one of {', '.join(choices)}"
        raise OptionError(f"{name} must be {want}; got {v!r}")
