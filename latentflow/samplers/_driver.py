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
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..energy import frozen, user_stacklevel
from ..errors import DivergenceError, DivergenceWarning, OptionError
from ..options import ENGINE_FIELDS, EngineOptions, Options
from ..result import Evals, Result, Step
from ..rng import stream_key
from ._checks import check_state, resolve_labels, resolve_num_classes
from ._declare import Candidate, Needs, SearchContext
from ._engine import Engine

log = logging.getLogger("latentflow")

#: engine options that are not recorded in ``info["options"]`` (objects, not settings)
_UNRECORDED = ("generator", "callback", "progress", "y")


class Kernel:
    """One sampling method: its maths, and everything the rest of latentflow needs to know about it.

    The maths: ``Options`` (its record), ``init``, ``step`` and ``finish``; ``validate`` checks the options
    against the inputs; ``draws`` says whether these options use randomness (so that nothing is drawn that
    is not used).

    The declarations (read by ``refine``, ``latentflow sample``/``methods``/``tune``/``bench`` and the README
    method table; a subclass overrides those whose defaults below do not fit):

    * ``needs`` (:class:`~latentflow.samplers._declare.Needs`): generator, discriminator calls, score model,
      labels; :meth:`d_call` (which D call given options) and :meth:`misfit_options` refine it per options;
    * :meth:`cost`: G/D evaluations per sample as a function of the options;
    * :meth:`fit_budget` (or just ``budget_option``): the options that spend a budget of D evaluations per
      sample;
    * :meth:`search_space`: the candidates ``tune`` tries, the method's published settings among them;
    * ``calibration``: how a calibrated D applies ("temperature", "discriminator" or None) and
      :meth:`calibrated_options`;
    * ``refines`` (False only for the generator alone, the baseline every refinement is compared with),
      ``hint`` (the advice when chains diverge), ``about`` and ``paper`` (the README table's row).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    engine_fields: ClassVar[tuple] = ENGINE_FIELDS
    needs: ClassVar[Needs] = Needs()
    hint: ClassVar[str] = "reduce the step size"
    calibration: ClassVar[str | None] = None
    #: the option that counts D evaluations per sample (steps, proposals), which ``fit_budget`` sets
    budget_option: ClassVar[str | None] = None
    refines: ClassVar[bool] = True
    about: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    def __init__(self, G, D, opts, engine_opts: EngineOptions):
        self.G, self.D, self.o, self.eo = G, D, opts, engine_opts

    # -- declarations ------------------------------------------------------------------------------
    @classmethod
    def defaults(cls) -> dict:
        """The method's options at their defaults."""
        return {f.name: f.default for f in dataclasses.fields(cls.Options)}

    @classmethod
    def options_of(cls, options: Mapping | None = None) -> dict:
        """``options`` over the defaults (the method's own options; others are left out)."""
        own = cls.defaults()
        return {**own, **{k: v for k, v in (options or {}).items() if k in own}}

    @classmethod
    def cost(cls, options: Mapping | None = None, *, n: int | None = None, generator: bool = True) -> Evals:
        """G/D (and score) evaluations per sample of a run with ``options`` (forward and backward). ``n``: the
        chains of the run, to spread what a run evaluates once (the probe of G and D, a pilot run, pairs)
        over them; None leaves those out. ``generator``: whether G is given, for methods where it is
        optional. A method whose cost depends on chance (DRS) gives its least."""
        return Evals()

    @classmethod
    def fit_budget(cls, budget: int, options: Mapping | None = None) -> dict:
        """The options that make the method spend about ``budget`` D forward evaluations per sample
        (``options``: the caller's own, where the cost per step depends on them): by default its
        ``budget_option`` (one D evaluation each) set to ``budget``; ``{}`` when its cost has no such option."""
        return {cls.budget_option: int(budget)} if cls.budget_option else {}

    @classmethod
    def search_space(cls, ctx: SearchContext) -> list[Candidate]:
        """The candidates ``tune`` tries for this method within ``ctx.budget``: by default one, its
        defaults fitted to the budget."""
        return [Candidate(cls.name, cls.fit_budget(ctx.budget))]

    @classmethod
    def calibrated_options(cls, options: Mapping, a: float) -> dict:
        """The options that run a ``calibration="temperature"`` method on a D calibrated as ``a·d + b``
        with the raw D: the temperature ``T`` becomes ``T/a``."""
        if cls.calibration != "temperature":
            raise OptionError(f'method "{cls.name}" takes a calibrated D as {cls.calibration}, not as options')
        opts = dict(options)
        opts["temperature"] = cls.options_of(options)["temperature"] / a
        return opts

    @classmethod
    def d_call(cls, options: Mapping | None = None) -> str | None:
        """The call of D a run with ``options`` makes (one of ``needs.discriminator``), None for none."""
        return cls.needs.discriminator[0] if cls.needs.discriminator else None

    @classmethod
    def misfit_options(cls, model_call: str | None, options: Mapping) -> str | None:
        """Why ``options`` do not fit a model whose D is called as ``model_call`` (None: it fits)."""
        return None

    # -- the maths ---------------------------------------------------------------------------------
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


def probe_cost(n: int | None) -> float:
    """The two-row probe of G and D at the boundary, per sample of ``n`` chains (0 when ``n`` is unknown)."""
    return min(2, n) / n if n else 0.0


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
    needs = kernel_cls.needs
    if G is None and needs.generator == "required":
        raise OptionError(
            f'method "{kernel_cls.name}" needs a generator G (it samples G(z)); got G=None. '
            "latentflow.methods()[name].needs says which methods run without one"
        )
    if D is None and needs.needs_discriminator:
        raise OptionError(
            f'method "{kernel_cls.name}" needs a discriminator D ({" or ".join(needs.discriminator)}); got D=None'
        )
    if eng.y is not None and not needs.labels:
        raise OptionError(f'method "{kernel_cls.name}" takes no class labels; got y (leave y=None)')
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
        full: dict[str, Any] = dict(method=self.kernel.name, options=self.options)
        full.update(info)
        full["diverged"] = e.diverged
        full["diverged_step"] = e.diverged_step
        full.update(e.count.as_dict())
        if e._auto:  # what batch_size="auto" chose, per kind of evaluation
            full["auto_batch_size"] = {("grad" if g else "forward"): bs for (_, g), bs in e._auto.items()}
        full["wall_s"] = time.perf_counter() - e.t0
        return Result(x=x, z=z, info=full, y=e.y)


def loop_step(i: int, state: Tensor, energy=None, accepted=None, z: Tensor | None = None) -> Step:
    """The ``Step`` a kernel returns with its new state (what the callback sees; ``z``: the chains' latents
    when the state is not them, see :class:`~latentflow.result.Step`)."""
    return Step(i, state, energy, accepted, z)
