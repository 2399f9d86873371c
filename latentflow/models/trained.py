"""The ``latentflow.json`` of a training folder whose model is not a G/D pair.

``latentflow train dflow|scoregan|flowgan|dgd`` write their final weights as ``<ROLE>.safetensors`` beside a
``latentflow.json`` naming each role's architecture. The roles are

* ``G``: a generator ``G(z)`` (Score GAN, FloWGAN); the spec then has ``latent: {dim, prior}``;
* ``D``: a conditioned discriminator (Discriminator Flow: ``D(x, t)``, ``d_conditioning: time``; the
  noise-conditioned D of discriminator-guided Langevin: ``D(x, σ)``, ``d_conditioning: sigma``) with its
  ``d_output``; without a generator the spec has ``x0: {prior: normal, std}``, the distribution the
  particles start from;
* ``S``: Score GAN's generated-distribution denoiser ``S(x̃, σ)`` (an auxiliary of ``G``, not a discriminator);
* ``P``: the starting distribution of a generator-free model when it is not ``N(0, std² I)``: a
  ``gaussian_prior`` (``x0 = mean + L z``, fitted to the training data), with ``x0: {prior: gaussian}``.

Schema (every field but ``arch`` is optional or depends on the roles)::

    arch:      {<role>: {name: <zoo name>, kwargs: {...}}}     roles: G, D, S (not G + D: that is a pair)
    latent:    {dim: <int>, prior: normal | uniform}           with G (required), never without
    d_output:  logit | prob | critic                          with D (required)
    d_conditioning: time | sigma | null                       with D (null: an unconditioned D(x))
    x0:        {prior: normal | gaussian, std: <float > 0> (default 1)}   without G (required; gaussian: x0 = P(std·z))
    output:    {shape, range}                                 default: the shape of recipe.config.data
    sampling:  {<method>: {<option>: <value>}}                recommended per-method options
    recipe:    {trainer: <str>, config: {...}} | <str> | null  what wrote it (config.data: the dataset)
    dataset, name, license, citation: <str> | null;  files: {<role>: {path, sha256, bytes}};  schema: 1

A G/D pair (``arch`` with exactly G and D) is a manifest-style entry and is validated by
:func:`~latentflow.models.manifest.validate_entry` instead. Both give a
:class:`~latentflow.models.spec.ModelEntry`.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping

from ..data import sample_shape
from ..errors import LatentflowError
from .spec import ALL_ROLES, ROLES, SCHEMA, ModelEntry
from .validate import (
    _NAME,
    D_OUTPUTS,
    PRIORS,
    _fail,
    _int,
    _keys,
    _mapping,
    _opt_str,
    validate_arch,
    validate_file,
    validate_output,
    validate_sampling,
)

__all__ = ["TRAINED_ROLES", "CONDITIONINGS", "is_pair_spec", "validate_trained"]

#: the roles a training folder may hold, in load order
TRAINED_ROLES = ALL_ROLES
CONDITIONINGS = ("time", "sigma")
X0_PRIORS = ("normal", "gaussian")

_OPTIONAL = (
    "latent",
    "d_output",
    "d_conditioning",
    "x0",
    "output",
    "sampling",
    "recipe",
    "dataset",
    "name",
    "license",
    "citation",
    "files",
    "schema",
    "verified",
)


def is_pair_spec(spec) -> bool:
    """True when ``spec`` describes a G/D pair (or has no readable ``arch``: the pair validator then says why)."""
    arch = spec.get("arch") if isinstance(spec, Mapping) else None
    return not isinstance(arch, Mapping) or not arch or set(map(str, arch)) == set(ROLES)


def _data_shape(dataset: str | None) -> list | None:
    """Per-sample shape of a dataset the trainers know (``latentflow.data.sample_shape``), else None."""
    if dataset is None:
        return None
    try:
        return list(sample_shape(dataset))
    except LatentflowError:
        return None


def validate_trained(
    raw, where: str, *, source: dict, files=None, name_hint: str = "trained", check_registry: bool = True
) -> ModelEntry:
    """Check a training folder's ``latentflow.json`` (see the module docstring) and build its :class:`~latentflow.models.spec.ModelEntry`.

    ``files`` overrides ``raw["files"]``; by default each role's file is ``<ROLE>.safetensors``."""
    raw = _mapping(raw, where)
    _keys(raw, where, ("arch",), _OPTIONAL)
    if raw.get("schema", SCHEMA) != SCHEMA:
        _fail(f"{where}.schema", f"{raw.get('schema')!r} is not supported (expected {SCHEMA})")
    arch = _mapping(raw["arch"], f"{where}.arch")
    unknown = sorted(set(map(str, arch)) - set(TRAINED_ROLES))
    if unknown or not arch:
        _fail(
            f"{where}.arch",
            f"roles are G (generator), D (discriminator), S (Score GAN's score net) and P "
            f"(a generator-free model's starting distribution); "
            f"got {', '.join(map(str, arch)) or 'none'}",
        )
    roles = tuple(r for r in TRAINED_ROLES if r in arch)
    if "G" not in roles and "D" not in roles:
        _fail(f"{where}.arch", f"a model needs a generator G or a discriminator D; got only {', '.join(roles)}")
    if "S" in roles and "G" not in roles:
        _fail(f"{where}.arch", "S (the score net of the generated distribution) comes with a generator G")
    if "P" in roles and "G" in roles:
        _fail(f"{where}.arch", "P (where the particles start) is for models without a generator G")
    archs = {r: validate_arch(arch[r], f"{where}.arch.{r}", check_registry) for r in roles}

    def forbidden(key: str, why: str):
        if key in raw:
            _fail(f"{where}.{key}", f"does not apply: {why}")

    latent = None
    if "G" in roles:
        if "latent" not in raw:
            _fail(where, "missing field latent (the generator's latent: {dim, prior})")
        lat = _mapping(raw["latent"], f"{where}.latent")
        _keys(lat, f"{where}.latent", ("dim",), ("prior",))
        latent = {"dim": _int(lat["dim"], f"{where}.latent.dim"), "prior": lat.get("prior", "normal")}
        if latent["prior"] not in PRIORS:
            _fail(f"{where}.latent.prior", f"expected one of {', '.join(PRIORS)}; got {latent['prior']!r}")
        forbidden("x0", "the model has a generator (its samples start from G(z), z from latent)")
    else:
        forbidden("latent", "the model has no generator G")

    d_output = d_cond = None
    if "D" in roles:
        if "d_output" not in raw:
            _fail(where, f"missing field d_output (what D returns: {', '.join(D_OUTPUTS)})")
        d_output = raw["d_output"]
        if d_output not in D_OUTPUTS:
            _fail(f"{where}.d_output", f"expected one of {', '.join(D_OUTPUTS)}; got {d_output!r}")
        d_cond = raw.get("d_conditioning")
        if d_cond is not None and d_cond not in CONDITIONINGS:
            _fail(f"{where}.d_conditioning", f"expected one of {', '.join(CONDITIONINGS)} or null; got {d_cond!r}")
    else:
        forbidden("d_output", "the model has no discriminator D")
        forbidden("d_conditioning", "the model has no discriminator D")

    recipe, trainer, config = raw.get("recipe"), None, {}
    recipe_text: str | None
    if isinstance(recipe, Mapping):
        _keys(recipe, f"{where}.recipe", ("trainer",), ("config",))
        trainer = recipe["trainer"]
        if not isinstance(trainer, str) or not trainer:
            _fail(f"{where}.recipe.trainer", f"expected the trainer's name; got {trainer!r}")
        config = dict(_mapping(recipe.get("config") or {}, f"{where}.recipe.config"))
        recipe_text = json.dumps({k: recipe[k] for k in recipe})
    else:
        recipe_text = _opt_str(recipe, f"{where}.recipe")
    dataset = _opt_str(raw.get("dataset"), f"{where}.dataset")
    if dataset is None and isinstance(config.get("data"), str):
        dataset = config["data"]

    if raw.get("output") is not None:
        output = validate_output(raw["output"], f"{where}.output")
    else:
        shape = _data_shape(dataset)
        output = {"shape": shape, "range": None if shape is None or len(shape) == 1 else [-1.0, 1.0]}

    x0 = None
    if "G" not in roles:
        if "x0" not in raw:
            _fail(where, "missing field x0 (the distribution the particles start from: {prior: normal, std})")
        x = _mapping(raw["x0"], f"{where}.x0")
        _keys(x, f"{where}.x0", (), ("prior", "std"))
        prior = x.get("prior", "normal")
        if prior not in X0_PRIORS:
            _fail(f"{where}.x0.prior", f"expected one of {', '.join(X0_PRIORS)}; got {prior!r}")
        std = x.get("std", 1.0)
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std <= 0:
            _fail(f"{where}.x0.std", f"expected a number > 0; got {std!r}")
        if output["shape"] is None:
            _fail(
                where,
                f"cannot tell the shape of x0: dataset {dataset!r} is not one latentflow knows; "
                "give output: {shape: [...]} in latentflow.json",
            )
        if (prior == "gaussian") != ("P" in roles):
            _fail(
                f"{where}.x0.prior",
                f'prior "gaussian" and a P network in arch go together; got prior {prior!r} '
                f"with roles {', '.join(roles)}",
            )
        x0 = {"prior": prior, "std": float(std), "shape": list(output["shape"])}

    files = raw.get("files") if files is None else files
    if files is None:
        files = {r: {"path": f"{r}.safetensors"} for r in roles}
    files = _mapping(files, f"{where}.files")
    _keys(files, f"{where}.files", roles)
    files = {r: validate_file(files[r], f"{where}.files.{r}", local=source.get("kind") == "local") for r in roles}
    unhashed = [r for r in roles if files[r].sha256 is None]
    verified = raw.get("verified", not unhashed)
    if not isinstance(verified, bool) or (verified and unhashed):
        _fail(f"{where}.verified", f"must be false while files {', '.join(unhashed)} have no sha256; got {verified!r}")

    name = raw.get("name")
    if name is None:
        name = "-".join(p for p in (dataset, trainer) if p) or name_hint
        name = name.lower() if _NAME.match(name.lower()) else name_hint
    elif not isinstance(name, str) or not _NAME.match(name):
        _fail(f"{where}.name", f"model names are lowercase letters, digits, '.', '_' and '-'; got {name!r}")

    return ModelEntry(
        name=name,
        source=dict(source),
        files=files,
        arch=archs,
        output=output,
        latent=latent,
        d_output=d_output,
        d_conditioning=d_cond,
        x0=x0,
        sampling=validate_sampling(raw.get("sampling"), f"{where}.sampling", check_registry),
        trainer=trainer,
        recipe=recipe_text,
        dataset=dataset,
        license=_opt_str(raw.get("license"), f"{where}.license"),
        citation=_opt_str(raw.get("citation"), f"{where}.citation"),
        verified=verified,
        raw=copy.deepcopy(dict(raw)),
    )
