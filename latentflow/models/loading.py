"""Loading a model: resolve -> fetch -> verify -> read -> build -> load -> finish, one function each.

Every file is hash-checked (:func:`~latentflow.models.pins.verify`) before it is deserialised; networks are
built from :mod:`latentflow.nets` with the caller's global RNG untouched, loaded with ``strict=True`` (an
error lists missing, unexpected and mis-shaped keys) and finished with ``eval().requires_grad_(False)`` on the
requested device and dtype.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import IntegrityError, ManifestError, OptionError
from ..nets import build as _build
from ..nets import settle_spectral_norm, spectral_norm_buffer_keys
from .checkpoints import read_role_states
from .pair import ModelPair
from .pins import pin_key, verify
from .resolve import resolve
from .sources import fetch
from .spec import ArchSpec, ModelEntry

log = logging.getLogger("latentflow")

__all__ = ["load", "build", "load_state", "finish", "check_device", "check_latent_dim", "pair_meta"]


def build(arch: ArchSpec):
    import torch

    # the random initial weights are overwritten by the checkpoint: don't let them consume the
    # caller's global RNG (loading a model must not change what torch.randn gives next)
    with torch.random.fork_rng(devices=[]):
        return _build(arch.name, **dict(arch.kwargs))


def _fmt_keys(keys: Sequence[str], limit: int = 12) -> str:
    keys = list(keys)
    s = ", ".join(keys[:limit])
    return s + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state(model, state_dict: Mapping, *, what: str = "model", settle_iterations: int = 20) -> None:
    """``model.load_state_dict(state_dict, strict=True)``, with an error listing missing, unexpected and
    mis-shaped keys. Spectral-norm power-iteration vectors (``*_u``/``*_v``) and BatchNorm's
    ``num_batches_tracked`` may be absent; the former are then settled by power iteration."""
    own = model.state_dict()
    sd = dict(state_dict)
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    misshaped = [
        (k, tuple(sd[k].shape), tuple(own[k].shape))
        for k in own
        if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    sn_keys = spectral_norm_buffer_keys(model)
    tolerated = [k for k in missing if k in sn_keys or k.endswith("num_batches_tracked")]
    missing = [k for k in missing if k not in tolerated]
    if missing or unexpected or misshaped:
        parts = [f"the state dict does not fit {what} ({type(model).__name__}):"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
        if misshaped:
            parts.append(
                f"mis-shaped keys ({len(misshaped)}): "
                + _fmt_keys([f"{k} (checkpoint {a}, model {b})" for k, a, b in misshaped])
            )
        parts.append("check the architecture name and kwargs in the manifest / latentflow.json")
        raise IntegrityError("\n  ".join(parts))
    for k in tolerated:
        sd[k] = own[k]
    model.load_state_dict(sd, strict=True)
    if any(k in sn_keys for k in tolerated):
        n = settle_spectral_norm(model, settle_iterations)
        log.info(
            "%s: the checkpoint had no spectral-norm vectors; settled %d weights with %d power iterations",
            what,
            n,
            settle_iterations,
        )


def check_device(device) -> None:
    """Refuse, in one line, a device this machine does not have (before any file is read)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise OptionError(f'device must be a torch device such as "cpu" or "cuda:0"; got {device!r}') from e
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise OptionError(
                f'device "{device}": CUDA is not available on this machine (torch {torch.__version__}); '
                'use device="cpu"'
            )
        if dev.index is not None and dev.index >= n:
            raise OptionError(f'device "{device}": this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}')
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise OptionError(f'device "{device}": MPS is not available on this machine; use device="cpu"')


def check_latent_dim(entry: ModelEntry, G) -> None:
    """Refuse (``ManifestError``) a spec whose ``latent.dim`` does not fit the generator it builds: read off
    G's ``latent_dim`` attribute where it has one, else found by one forward pass on a zero latent."""
    import torch

    dim = entry.latent_dim
    if G is None or dim is None:
        return
    where = f'model "{entry.name}": latent.dim {dim} (manifest entry or latentflow.json)'
    arch = entry.arch["G"].name
    own = getattr(G, "latent_dim", None)
    if isinstance(own, int) and not isinstance(own, bool):
        if own != int(dim):
            raise ManifestError(f"{where} does not fit G ({arch}), which takes latents of size {own}")
        return
    p = next(iter(G.parameters()), None)
    dev, dtype = (p.device, p.dtype) if p is not None else ("cpu", torch.float32)
    k = getattr(G, "num_classes", 0)
    y = (torch.zeros(1, dtype=torch.long, device=dev),) if isinstance(k, int) and k > 0 else ()
    try:
        with torch.no_grad():
            G(torch.zeros(1, int(dim), device=dev, dtype=dtype), *y)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ManifestError(f"{where} does not fit G ({arch}): G(z [1, {dim}]) failed: {first}") from None


def finish(model, device="cpu", dtype=None):
    """Inference state: ``eval()``, no parameter gradients, on ``device`` (and ``dtype`` if given)."""
    model = model.to(device=device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


# -------------------------------------------------------------------------------------------------
# the whole pipeline
# -------------------------------------------------------------------------------------------------


def _trainer_of(recipe: str | None) -> str | None:
    """The ``trainer`` of a recipe written as JSON (as ``latentflow train gan`` does), else None."""
    try:
        r = json.loads(recipe) if recipe else None
    except ValueError:
        return None
    t = r.get("trainer") if isinstance(r, dict) else None
    return t if isinstance(t, str) else None


def pair_meta(entry: ModelEntry, hashes: Mapping[str, str | None], G) -> dict:
    roles = entry.roles
    trained = not entry.is_pair
    return {
        "name": entry.name,
        "latent_dim": entry.latent_dim,
        "prior": entry.prior,
        "d_output": entry.d_output,
        "output_shape": entry.output["shape"],
        "output_range": entry.output["range"],
        "sampling": {k: dict(v) for k, v in entry.sampling.items()},
        "verified": entry.verified,
        "num_classes": int(getattr(G, "num_classes", 0) or 0),
        "license": entry.license,
        "citation": entry.citation,
        "recipe": entry.recipe,
        "dataset": entry.dataset,
        "roles": list(roles),
        "trainer": entry.trainer if trained else _trainer_of(entry.recipe),
        "d_conditioning": entry.d_conditioning if trained else None,
        "x0": dict(entry.x0) if trained and entry.x0 is not None else None,
        "source": dict(entry.source),
        "files": {r: {"path": entry.files[r].path, "sha256": hashes[r]} for r in roles},
        "spec": entry.spec(),
    }


def load(ref, device="cpu", dtype=None) -> ModelPair:
    """Load a model by manifest name, ``hf:owner/repo[@revision]``, local folder or ``(G, D)`` file pair.

    Every file is hash-checked before any is read; the networks come back in eval mode without gradients.
    A G/D pair fills ``G`` and ``D``; a ``latentflow train`` folder of another kind fills the roles it has
    (``G=None`` for ``dflow`` and ``dgd``, ``D=None`` for ``scoregan`` and ``flowgan``, Score GAN's score
    net in ``pair.extra["S"]``; see :class:`ModelPair`)."""
    check_device(device)
    entry = resolve(ref)
    paths: dict[str, Path] = {}
    hashes: dict[str, str] = {}
    for role in entry.roles:
        if entry.combined and role != entry.roles[0]:  # one file holds G and D: fetched and hashed once
            paths[role], hashes[role] = paths[entry.roles[0]], hashes[entry.roles[0]]
            continue
        paths[role] = fetch(entry, role)
        hashes[role] = verify(
            paths[role], entry.files[role].sha256, key=pin_key(entry, role), source=entry.source.get("kind")
        )
    # pickled files (StudioGAN .pth, xyfJASON model.pt) are unpickled (weights_only=True) once, then cached
    states = read_role_states(entry.reader, {r: (paths[r], hashes[r]) for r in entry.roles}, what=entry.name)
    models = {}
    for role in entry.roles:
        sd = states[role]
        m = build(entry.arch[role])
        where = "" if entry.is_pair else f" ({paths[role]})"
        load_state(m, sd, what=f'{role} of "{entry.name}"{where}')
        models[role] = finish(m, device, dtype)
    log.info('loaded "%s" (%s; roles %s)', entry.name, entry.source["kind"], ", ".join(entry.roles))
    G, D = models.pop("G", None), models.pop("D", None)
    check_latent_dim(entry, G)
    return ModelPair(G, D, pair_meta(entry, hashes, G), extra=models)
