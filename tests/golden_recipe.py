"""The deterministic fill recipe and fixed inputs behind the golden outputs of ``tests/data/layouts/*.json``.

Those files record, for two published CIFAR-10 GANs, every state-dict key (in order) with its shape, and what the
upstream modules output after being filled by this recipe. A module whose ``state_dict`` has the same keys in the
same order can be filled the same way here and must then reproduce the same outputs.

Recipe, for the entry at position ``k`` of the state dict and flattened index ``j`` inside it (float64, then cast
to float32): ``v = 0.05 sin(12.9898 j + 78.233 k)``; a BatchNorm ``.weight`` (its module has ``running_mean``)
gets ``1 + v``; ``.bias`` and ``running_mean`` get ``0.1 v``; ``running_var`` gets ``0.001 + 0.02 |v|``; integer
buffers are 7; spectral-norm vectors (``..._u`` / ``..._v`` of ``torch.nn.utils.parametrizations``, ``weight_u`` /
``weight_v`` of ``torch.nn.utils.spectral_norm``) are the top left / right singular vectors of the matching weight
reshaped to ``(out, -1)``, from its float64 SVD ``W = U S V^T`` (``u = U[:, 0]``, ``v = V[:, 0]``; the sign of
that pair is irrelevant since ``sigma = u^T W v = S_0`` either way, and in eval mode only ``sigma`` enters the
outputs); every other entry is ``v``.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUT_DIRS = [
    os.path.join(HERE, "data", "layouts"),
    os.path.normpath(os.path.join(HERE, "..", "..", "shared", "layouts")),
]

# golden values are rounded to 6 decimals; float32 convolutions of these sizes agree to ~1e-6
TOL = 1e-4


@pytest.fixture(autouse=True)
def own_rng():
    """Autouse in the modules that import it: building modules initialises weights (and spectral-norm
    vectors) from the global RNG; keep it out of the tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def load_layout(name: str) -> dict:
    """The JSON facts ``name`` from ``tests/data/layouts`` or else ``../shared/layouts``; skips when neither has it."""
    for folder in LAYOUT_DIRS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    pytest.skip(f"golden layout {name} not found in {' or '.join(LAYOUT_DIRS)}")


def _values(k: int, numel: int) -> torch.Tensor:
    j = torch.arange(numel, dtype=torch.float64)
    return 0.05 * torch.sin(12.9898 * j + 78.233 * k)


def _sn_weight_key(key: str) -> str | None:
    """The weight whose singular vector ``key`` holds, or None when ``key`` is not a spectral-norm vector."""
    if key.endswith((".0._u", ".0._v")) and ".parametrizations." in key:
        return key[: -len("0._u")] + "original"
    if key.endswith(("weight_u", "weight_v")):
        return key[: -len("u")] + "orig"
    return None


def top_singular_pair(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, v)``, the top left / right singular vectors of the float64 matrix ``w``: those of its SVD
    ``w = U S V^T``, computed from the eigen-decomposition of the smaller Gram matrix (``w w^T`` or ``w^T w``) for
    speed (a full SVD of the 1024 x 8192 weights takes ~20 s on one core). The pair shares one sign choice, so
    ``u^T w v = S_0 > 0``, as the SVD's."""
    if w.shape[0] <= w.shape[1]:
        _vals, vecs = torch.linalg.eigh(w @ w.T)
        u = vecs[:, -1]
        v = w.T @ u
        return u, v / v.norm()
    _vals, vecs = torch.linalg.eigh(w.T @ w)
    v = vecs[:, -1]
    u = w @ v
    return u / u.norm(), v


def recipe_state_dict(template: dict) -> dict:
    """Fill a state dict with the recipe: ``template`` gives the key order, shapes and dtypes (a module's
    ``state_dict()``, or ``{key: shape}`` from a layout file, then every entry is float32 but
    ``num_batches_tracked``)."""
    keys = list(template)

    def shape_dtype(key):
        t = template[key]
        if isinstance(t, torch.Tensor):
            return tuple(t.shape), t.dtype
        return tuple(t), (torch.long if key.endswith("num_batches_tracked") else torch.float32)

    out: dict[str, torch.Tensor] = {}
    raw: dict[str, torch.Tensor] = {}
    for k, key in enumerate(keys):
        shape, dtype = shape_dtype(key)
        if not dtype.is_floating_point:
            out[key] = torch.full(shape, 7, dtype=dtype)
            continue
        if _sn_weight_key(key) is not None:
            continue  # filled below, from the finished weight
        v = _values(k, math.prod(shape)).reshape(shape)
        leaf, module = key.rsplit(".", 1)[-1], key.rsplit(".", 1)[0] if "." in key else ""
        if leaf == "weight" and f"{module}.running_mean" in template:
            v = 1 + v
        elif leaf in ("bias", "running_mean"):
            v = 0.1 * v
        elif leaf == "running_var":
            v = 0.001 + 0.02 * v.abs()
        raw[key] = v
        out[key] = v.to(dtype)
    for key in keys:
        wkey = _sn_weight_key(key)
        if wkey is None or key in out:
            continue
        u, v = top_singular_pair(raw[wkey].reshape(raw[wkey].shape[0], -1))
        out[key] = (u if key.endswith("u") else v).to(shape_dtype(key)[1])
    return {key: out[key] for key in keys}


def recipe_z(batch: int, latent: int) -> torch.Tensor:
    """``z[i, c] = sin(12.9898 (latent i + c))`` in float64, cast to float32."""
    i = torch.arange(batch, dtype=torch.float64)[:, None]
    c = torch.arange(latent, dtype=torch.float64)[None, :]
    return torch.sin(12.9898 * (latent * i + c)).float()


def recipe_x(shape=(4, 3, 32, 32)) -> torch.Tensor:
    """``x = 0.9 cos(78.233 n)`` over the flattened index ``n``, in float64, cast to float32."""
    n = torch.arange(math.prod(shape), dtype=torch.float64)
    return (0.9 * torch.cos(78.233 * n)).float().reshape(shape)


def layout_of(module: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in module.state_dict().items()]
