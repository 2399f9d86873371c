"""The one sampling loop: a method is a :class:`Kernel` (``init`` + ``step`` + ``finish``, its maths and
nothing else); :func:`run` validates the options once, owns the loop, the progress bar, the callback,
the divergence policy and builds the ``Result``.

A kernel's ``step(engine, i, state) -> (state, Step)`` maps the state after step ``i - 1`` to the state
after step ``i``; the driver hands the ``Step`` to the callback. ``finish`` maps the chain state back
to what callers see (``x`` and ``z``, never an unconstrained ``u``) plus the method's info.

Class labels (engine options ``y`` and ``num_classes``): :func:`run` resolves them once, before the loop
(:func:`~latentflow.samplers._checks.resolve_labels`); the kernels pass ``engine.ys`` (``()`` or
``(y,)``) as per-chain rows beside the state, so every chunk of G/D calls gets the labels of its chains.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..energy import frozen, user_stacklevel
from ..errors import DivergenceError, DivergenceWarning, OptionError
from ..options import ENGINE_FIELDS, EngineOptions, Options
from ..result import Result, Step
from ..rng import stream_key
from ._checks import check_state, resolve_labels, resolve_num_classes
from ._engine import Engine

log = logging.getLogger("latentflow")

#: engine options that are not recorded in ``info["options"]`` (objects, not settings)
_UNRECORDED = ("generator", "callback", "progress", "y")


class Kernel:
    """One sampling method: ``Options`` (its record), what it ``needs`` from the model, and its maths.

    Subclasses set ``Options`` and, where the defaults below do not fit, ``needs`` and ``hint`` (the advice
    when chains diverge), and write
    ``init``, ``step`` and ``finish``; ``validate`` checks the options against the inputs; ``draws``
    says whether these options use randomness (so that nothing is drawn that is not used)."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = Options
    engine_fields: ClassVar[tuple] = ENGINE_FIELDS
    #: what the method needs from the model, declared by the method (listed by ``methods()``)
    needs: ClassVar[dict] = {"generator": "required", "discriminator": "D(x)"}
    hint: ClassVar[str] = "reduce the step size"

    def __init__(self, G, D, opts, engine_opts: EngineOptions):
        self.G, self.D, self.o, self.eo = G, D, opts, engine_opts

    def models(self) -> tuple:
        """The callables held in eval mode without parameter gradients during the run (``frozen``)."""
        return (self.G, self.D)

    def validate(self, z: Tensor) -> None:
        """Check ``z`` and the options together (shapes, G given or not); by default ``z`` is ``[B, d]``."""
        check_state(z)

    def draws(self) -> bool:
        return True

    def n_steps(self) -> int | None:
        """Steps of the loop; ``None``: until :meth:`done`."""
        return self.o.steps

    def done(self, state) -> bool:
        return False

    def init(self, e: Engine, z: Tensor):
        raise NotImplementedError

    def step(self, e: Engine, i: int, state):
        raise NotImplementedError

    def finish(self, e: Engine, state) -> tuple[Tensor, Tensor | None, dict]:
        raise NotImplementedError


def _recorded(v: Any) -> Any:
    if isinstance(v, Tensor):
        return f"tensor{list(v.shape)}"
    if callable(v) and not isinstance(v, type):  # a model given as an option (score=S): its name only
        return f"<{type(v).__name__} {getattr(v, '__qualname__', '')}>".replace(" >", ">")
    return v


def split_options(kernel_cls, options: dict) -> tuple[Options, EngineOptions]:
    """Build (and so validate) the method's record and the engine record from keyword options."""
    own = {f.name for f in dataclasses.fields(kernel_cls.Options)}
    allowed = own | set(kernel_cls.engine_fields)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OptionError(
            f'method "{kernel_cls.name}" got unknown option(s) {", ".join(unknown)}. '
            f"Valid options: {', '.join(sorted(allowed))}."
        )
    opts = kernel_cls.Options(**{k: v for k, v in options.items() if k in own})
    eng = EngineOptions(**{k: v for k, v in options.items() if k not in own})
    return opts, eng


def run(kernel_cls, G, D, z: Tensor, options: dict) -> Result:
    """Run ``kernel_cls`` on ``z`` with the keyword ``options``: the loop every sampler shares."""
    opts, eng = split_options(kernel_cls, options)
    if G is None and kernel_cls.needs.get("generator") == "required":
        raise OptionError(
            f'method "{kernel_cls.name}" needs a generator G (it samples G(z)); got G=None. '
            "latentflow.methods()[name].needs says which methods run without one"
        )
    if D is None and not str(kernel_cls.needs.get("discriminator", "")).startswith(("none", "optional")):
        raise OptionError(
            f'method "{kernel_cls.name}" needs a discriminator D ({kernel_cls.needs.get("discriminator")}); got D=None'
        )
    kernel = kernel_cls(G, D, opts, eng)
    kernel.validate(z)
    num_classes = resolve_num_classes(eng.num_classes, G, D)
    y = resolve_labels(eng.y, z.shape[0], num_classes, z.device, None) if eng.y is not None else None
    need_labels = y is None and num_classes > 0
    key = stream_key(eng.generator) if kernel.draws() or need_labels else None
    engine = Engine(kernel_cls.name, z.shape[0], z.device, eng, key)
    engine.set_labels(
        resolve_labels(None, z.shape[0], num_classes, z.device, engine.rng) if need_labels else y, num_classes
    )
    driver = Driver(kernel, engine, eng)
    n = kernel.n_steps()
    with frozen(*kernel.models()), driver.bar(n) as bar:
        state = kernel.init(engine, z)
        i = 0
        while i < n if n is not None else not kernel.done(state):
            state, info = kernel.step(engine, i, state)
            if eng.callback is not None:
                eng.callback(info)
            bar.update(1)
            i += 1
        x, z_out, extra = kernel.finish(engine, state)
    return driver.finish(x, z_out, **extra)


class Driver:
    """The loop's bookkeeping: progress bar, and the Result with the divergence policy."""

    def __init__(self, kernel: Kernel, engine: Engine, eng: EngineOptions):
        self.kernel, self.engine, self.eng = kernel, engine, eng
        rec = {k: _recorded(v) for k, v in kernel.o.as_dict().items()}
        rec.update({k: getattr(eng, k) for k in kernel.engine_fields if k not in _UNRECORDED})
        if "num_classes" in rec:
            rec["num_classes"] = engine.num_classes  # as resolved (from the model when not given)
        self.options = rec

    def bar(self, n: int | None):
        from tqdm.auto import tqdm

        return tqdm(
            total=n, desc=self.kernel.name, disable=None if self.eng.progress else True, leave=False, dynamic_ncols=True
        )

    def _divergence(self, n_div: int) -> None:
        """Report (or raise on) diverged chains: one rule, documented in ``EngineOptions``."""
        e, n = self.engine, self.engine.n
        idx = torch.nonzero(e.diverged).flatten().tolist()
        steps = e.diverged_step[e.diverged].tolist()
        at_init = [c for c, s in zip(idx, steps) if s == 0]
        later = [(c, s) for c, s in zip(idx, steps) if s != 0]
        parts = []
        if at_init:
            more = f" and {len(at_init) - 10} more" if len(at_init) > 10 else ""
            parts.append(
                f"G/D returned non-finite values on the initial state of {len(at_init)} chain(s) "
                f"(chains {', '.join(map(str, at_init[:10]))}{more}): check the model and z, not the "
                "step size"
            )
        if later:
            shown = ", ".join(f"{c} (step {s})" for c, s in later[:10])
            more = f" and {len(later) - 10} more" if len(later) > 10 else ""
            parts.append(
                f"{len(later)} chain(s) produced non-finite values (or grew past the method's bound) and "
                f"were frozen at their last good state: chains {shown}{more}. To avoid this, {self.kernel.hint}"
            )
        msg = f"{self.kernel.name}: {n_div} of {n} chains diverged. " + "; ".join(parts) + "."
        mode, frac = self.eng.on_divergence, n_div / n
        if mode == "raise" and frac > self.eng.max_diverged_fraction:
            raise DivergenceError(
                msg + f" More than max_diverged_fraction={self.eng.max_diverged_fraction} "
                'of the chains diverged; pass on_divergence="warn" to keep the run anyway.'
            )
        if mode == "keep":
            log.info("%s", msg)
            return
        log.warning("%s", msg)
        warnings.warn(msg, DivergenceWarning, stacklevel=user_stacklevel())

    def finish(self, x: Tensor, z: Tensor | None, **info) -> Result:
        e = self.engine
        n_div = int(e.diverged.sum().item())  # the one read-back of the run
        if n_div:
            self._divergence(n_div)
        if e.device.type == "cuda":
            torch.cuda.synchronize(e.device)
        full = dict(method=self.kernel.name, options=self.options)
        full.update(info)
        full["diverged"] = e.diverged
        full["diverged_step"] = e.diverged_step
        full.update(e.count.as_dict())
        if e._auto:  # what batch_size="auto" chose, per kind of evaluation
            full["auto_batch_size"] = {("grad" if g else "forward"): bs for (_, g), bs in e._auto.items()}
        full["wall_s"] = time.perf_counter() - e.t0
        return Result(x=x, z=z, info=full, y=e.y)


def loop_step(i: int, state: Tensor, energy=None, accepted=None) -> Step:
    """The ``Step`` a kernel returns with its new state (what the callback sees)."""
    return Step(i, state, energy, accepted)
