"""The sampler registry: ``register(name, Kernel)`` builds the public function of a kernel from its
options record and files both under ``name``; the one registry of methods and their records.

The function's signature (``G, D, z, *, <method options>, <engine options>``) and its docstring
(one ``Args`` line per field, from the record's help) are generated, so every option is declared
once, in its record. ``methods()`` reads the kernels: fields, types, defaults, help, and what the
method needs from the model.

Third-party samplers: a distribution that declares an entry point in the group ``latentflow.samplers``
(``name = "package.module:MyKernel"``, a :class:`Kernel` subclass) is registered under that name on the
first use of the registry (:func:`methods`, :func:`get`, ``refine``, the CLI, ``tune``, ``bench``); a
plug-in that fails to load is logged with a warning naming its entry point and left out.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import options as _options
from ..errors import OptionError, suggest
from ..options import EngineOptions, check_value
from ..result import Result
from ._declare import CALIBRATIONS, Needs
from ._driver import Kernel, run, split_options

log = logging.getLogger("latentflow")

METHODS: dict[str, Callable] = {}
KERNELS: dict[str, type[Kernel]] = {}

#: positional parameters every sampler takes (the callables and the initial state), not options.
POSITIONAL = ("G", "D", "z")
#: the entry point group of third-party samplers
ENTRY_POINT_GROUP = "latentflow.samplers"
#: engine options that are objects, not values: not given as ``key=value``
_NOT_CLI = ("generator", "callback")
_plugins_loaded = False


def _fields(kernel_cls) -> list:
    eng = [f for f in dataclasses.fields(EngineOptions) if f.name in kernel_cls.engine_fields]
    return list(dataclasses.fields(kernel_cls.Options)) + eng


def _hints(kernel_cls) -> dict:
    h = {k: v for k, v in typing.get_type_hints(EngineOptions).items() if k in kernel_cls.engine_fields}
    h.update(typing.get_type_hints(kernel_cls.Options))
    return h


def _doc(kernel_cls, name: str) -> str:
    doc = inspect.getdoc(kernel_cls) or name
    hints = typing.get_type_hints(kernel_cls.Options)
    lines = [
        doc,
        "",
        "Args:",
        "    G, D, z: the generator, the discriminator and the initial state, one chain per row.",
    ]
    for f in dataclasses.fields(kernel_cls.Options):
        lines.append(
            f"    {f.name} ({_options.type_name(hints[f.name])}, default {f.default!r}): {f.metadata.get('help', '')}"
        )
    eng = ", ".join(f.name for f in dataclasses.fields(EngineOptions) if f.name in kernel_cls.engine_fields)
    lines.append(f"    {eng}: the engine options, see ``latentflow.options.EngineOptions``.")
    return "\n".join(lines)


def _check_declarations(name: str, kernel_cls) -> None:
    """A kernel's declarations have the types the rest of latentflow reads (a plug-in's too)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise OptionError(f"a method name is an identifier (letters, digits, _); got {name!r}")
    if not (isinstance(kernel_cls, type) and issubclass(kernel_cls, Kernel)):
        raise OptionError(f'method "{name}": expected a subclass of latentflow.samplers.Kernel; got {kernel_cls!r}')
    if not (dataclasses.is_dataclass(kernel_cls.Options) and issubclass(kernel_cls.Options, _options.Options)):
        raise OptionError(f'method "{name}": Options must be a dataclass record subclassing latentflow.options.Options')
    if not isinstance(kernel_cls.needs, Needs):
        raise OptionError(f'method "{name}": needs must be a latentflow.samplers.Needs; got {kernel_cls.needs!r}')
    if kernel_cls.calibration not in CALIBRATIONS:
        raise OptionError(f'method "{name}": calibration must be one of {CALIBRATIONS}; got {kernel_cls.calibration!r}')
    bad = sorted(set(kernel_cls.engine_fields) - {f.name for f in dataclasses.fields(EngineOptions)})
    if bad:
        raise OptionError(f'method "{name}": unknown engine field(s) {", ".join(bad)}')


def register(name: str, kernel_cls: type[Kernel]) -> Callable:
    """File ``kernel_cls`` under ``name`` and return its public sampler function; a duplicate raises."""
    if name in METHODS:
        raise OptionError(f'method "{name}" is already registered (by {KERNELS[name].__module__})')
    _check_declarations(name, kernel_cls)
    kernel_cls.name = name

    def sampler(G, D, z, **options) -> Result:
        return run(kernel_cls, G, D, z, options)

    hints = _hints(kernel_cls)
    params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in POSITIONAL]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in _fields(kernel_cls)
    ]
    sampler.__signature__ = inspect.Signature(params, return_annotation=Result)  # type: ignore[attr-defined]
    sampler.__name__ = sampler.__qualname__ = name
    sampler.__module__ = kernel_cls.__module__
    sampler.__doc__ = _doc(kernel_cls, name)
    sampler.method_name = name  # type: ignore[attr-defined]
    sampler.kernel = kernel_cls  # type: ignore[attr-defined]
    METHODS[name] = sampler
    KERNELS[name] = kernel_cls
    return sampler


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a plug-in's tests clean up with it)."""
    METHODS.pop(name, None)
    KERNELS.pop(name, None)


def load_plugins() -> list[str]:
    """Register the samplers that installed distributions declare in the entry point group
    ``latentflow.samplers`` and that are not registered yet; returns their names. A plug-in that cannot
    be loaded (an import error, not a Kernel subclass, a name taken, declarations of the wrong type) is
    logged with a warning naming the entry point and left out; the registry stays as it was."""
    global _plugins_loaded
    _plugins_loaded = True
    from importlib.metadata import entry_points

    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if KERNELS.get(ep.name) is cls:
                continue  # its module registered it itself
            register(ep.name, cls)
            added.append(ep.name)
        except Exception as e:  # noqa: BLE001  (a broken plug-in must not break the registry)
            log.warning(
                'sampler plug-in "%s = %s" (entry point group %s) is left out: %s: %s',
                ep.name,
                ep.value,
                ENTRY_POINT_GROUP,
                type(e).__name__,
                " ".join(str(e).split()),
            )
    return added


def kernels() -> dict[str, type[Kernel]]:
    """``name -> Kernel subclass`` of every registered method, plug-ins included, in registration order."""
    if not _plugins_loaded:
        load_plugins()
    return KERNELS


@dataclass(frozen=True)
class MethodInfo:
    name: str
    fn: Callable
    options: dict[str, Any]  # option name -> default
    summary: str  # first line of the docstring
    fields: tuple = ()  # ({name, type, default, help}, ...) from the options record
    needs: Needs = dataclasses.field(default_factory=Needs)  # what the method needs from the model
    kernel: type[Kernel] = Kernel  # the kernel, with the rest of its declarations (cost, search space, ...)

    def to_dict(self) -> dict:
        def enc(v):
            return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)

        return {
            "name": self.name,
            "summary": self.summary,
            "options": {k: enc(v) for k, v in self.options.items()},
            "fields": [dict(f) for f in self.fields],
            "needs": self.needs.as_dict(),
            "refines": self.kernel.refines,
            "calibration": self.kernel.calibration,
        }


def describe(name: str) -> list[dict]:
    """The fields of ``name``'s options record and of the engine options it takes: name, type, default,
    help (JSON-able)."""
    k = kernel(name)
    return k.Options.fields_info() + [f for f in EngineOptions.fields_info() if f["name"] in k.engine_fields]


def methods() -> dict[str, MethodInfo]:
    """Every registered method, sorted by name: ``name -> MethodInfo(fn, options, summary, fields, needs, kernel)``."""
    out = {}
    for name in sorted(kernels()):
        k = KERNELS[name]
        doc = (inspect.getdoc(k) or "").strip().splitlines()
        out[name] = MethodInfo(
            name,
            METHODS[name],
            {f.name: f.default for f in _fields(k)},
            doc[0] if doc else "",
            tuple(describe(name)),
            k.needs,
            k,
        )
    return out


def _unknown(name) -> OptionError:
    return OptionError(
        f'Unknown method "{name}". Available: {", ".join(sorted(KERNELS))}.'
        + (suggest(name, KERNELS) if isinstance(name, str) else "")
    )


def get(name: str) -> Callable:
    """The public sampler function of method ``name``; an unknown name is an ``OptionError`` listing them."""
    if not isinstance(name, str) or name not in kernels():
        raise _unknown(name)
    return METHODS[name]


def kernel(name: str) -> type[Kernel]:
    """The :class:`Kernel` subclass of method ``name`` (its declarations); unknown: ``OptionError``."""
    if not isinstance(name, str) or name not in kernels():
        raise _unknown(name)
    return KERNELS[name]


def check_options(name: str, options: dict) -> None:
    """Raise ``OptionError`` for unknown option names of ``name`` (values are checked by the records)."""
    valid = {f.name for f in _fields(kernel(name))}
    unknown = sorted(set(options) - valid)
    if unknown:
        hint = suggest(unknown[0], valid) if len(unknown) == 1 else ""
        raise OptionError(
            f'method "{name}" got unknown option(s) {", ".join(unknown)}. '
            f"Valid options: {', '.join(sorted(valid))}.{hint}"
        )


def parse_cli_options(method: str, pairs) -> dict:
    """Parse ``["key=value", ...]`` by the types ``method`` declares (:func:`latentflow.options.parse_pairs`);
    returns ``{key: value}``, each value checked against its field.

    Bools take ``true/false/1/0/yes/no/on/off``; optional fields take ``none``; Literal fields one of
    their choices. Unknown keys get a close-match suggestion. Engine options that are not plain values
    (``generator``, ``callback``) cannot be given here."""
    k = kernel(method)
    hints = {n: t for n, t in _hints(k).items() if n not in _NOT_CLI}
    metas = {f.name: f.metadata for f in _fields(k)}
    out = _options.parse_pairs(pairs, {n: t for n, t in hints.items()})
    for key, value in out.items():
        if key not in hints:
            valid = sorted(hints)
            raise OptionError(
                f'method "{method}" got unknown option(s) {key}.'
                + suggest(key, valid)
                + f" Valid options: {', '.join(valid)}."
            )
        check_value(key, value, hints[key], metas[key])
    return out


__all__ = [
    "METHODS",
    "KERNELS",
    "POSITIONAL",
    "ENTRY_POINT_GROUP",
    "register",
    "unregister",
    "load_plugins",
    "kernels",
    "kernel",
    "MethodInfo",
    "methods",
    "describe",
    "get",
    "check_options",
    "parse_cli_options",
    "split_options",
]
