"""What the app layer writes: samples (safetensors), pictures (PNG) and strict JSON reports.

Every file goes through :mod:`latentflow._io` (temporary file, then ``os.replace``; the umask's mode).
Reports are strict JSON: a non-finite number becomes ``null`` and its place is listed under
``null_reasons`` (``{"result.accept_rate": "non-finite (nan)"}``). matplotlib is imported lazily.
"""

from __future__ import annotations

import io
import json
import math
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_save_safetensors, atomic_write_bytes, atomic_write_json, strict_json
from ..result import Evals


def package_version() -> str:
    """latentflow's version (the package is imported before any of its modules: this imports nothing)."""
    return sys.modules[__package__.rsplit(".", 1)[0]].__version__


def env_info(device: torch.device | str = "cpu") -> dict:
    __version__ = package_version()
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except Exception:
        commit = None
    return {
        "latentflow": __version__,
        "torch": torch.__version__,
        "device": device.type,
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        "git_commit": commit,
    }


def _nonfinite(obj, where: str, found: dict) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        found[where] = f"non-finite ({obj})"
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _nonfinite(v, f"{where}.{k}" if where else str(k), found)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _nonfinite(v, f"{where}[{i}]", found)


def with_null_reasons(obj: Any) -> Any:
    """``obj`` with a ``null_reasons`` entry naming each non-finite number (which strict JSON writes as
    ``null``); ``obj`` itself when there are none."""
    found: dict = {}
    _nonfinite(obj, "", found)
    if found and isinstance(obj, dict):
        obj = {**obj, "null_reasons": {**obj.get("null_reasons", {}), **found}}
    return obj


def json_text(obj, indent: int = 2) -> str:
    """Strict JSON text of a report (see :func:`write_json`), for printing."""
    return json.dumps(strict_json(with_null_reasons(obj)), indent=indent, default=str, allow_nan=False)


def write_json(path: Path, obj: dict) -> None:
    """``obj`` as strict JSON: non-finite numbers as ``null``, their places and values under
    ``null_reasons`` (added only when there are any); objects JSON cannot hold are written as ``str``."""
    atomic_write_json(Path(path), with_null_reasons(obj), indent=2, default=str)


def write_samples(path: Path, metadata: dict[str, str] | None = None, **tensors) -> None:
    """The tensors that are not None as safetensors, with string ``metadata``."""
    atomic_save_safetensors({k: v for k, v in tensors.items() if v is not None}, Path(path), metadata=metadata)


def _save_fig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())


def scatter_png(
    path: Path,
    before: torch.Tensor,
    after: torch.Tensor,
    data: torch.Tensor | None,
    title_after: str,
    lim: float | None = None,
    title_before: str = "generator",
) -> None:
    """Side-by-side scatter plots of the generator's samples (or a generator-free model's ``x0``:
    ``title_before``) and the refined ones, over the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for i, (ax, pts, title) in enumerate(((axes[0], before, title_before), (axes[1], after, title_after))):
        if data is not None:
            d = data.detach().cpu()
            ax.scatter(d[:, 0], d[:, 1], s=2, c="0.75", alpha=0.5, label="data")
        p = pts.detach().float().cpu()
        ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:blue" if i == 0 else "tab:red", alpha=0.6)
        ax.set_title(title)
        ax.set_aspect("equal")
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
    _save_fig(fig, path)
    plt.close(fig)


def image_grid(x: torch.Tensor, nrow: int, value_range=(-1.0, 1.0)) -> torch.Tensor:
    """``[N, C, H, W]`` -> one ``[C, H', W']`` grid in [0, 1] (own code; no torchvision needed)."""
    lo, hi = value_range
    x = ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    n, c, h, w = x.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    pad = 2
    grid = torch.ones(c, nrows * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return grid


def grid_png(
    path: Path,
    before: torch.Tensor,
    after: torch.Tensor,
    title_after: str,
    value_range=(-1.0, 1.0),
    max_images: int = 64,
    title_before: str = "generator",
) -> None:
    """Before/after image grids side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_images, before.shape[0])
    nrow = max(1, int(n**0.5))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.3))
    for ax, imgs, title in ((axes[0], before[:n], title_before), (axes[1], after[:n], title_after)):
        g = image_grid(imgs, nrow, value_range)
        if g.shape[0] == 1:
            ax.imshow(g[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(g.permute(1, 2, 0).numpy())
        ax.set_title(title)
        ax.axis("off")
    _save_fig(fig, path)
    plt.close(fig)


def sample_summary(rep: dict, out) -> list[str]:
    """The lines ``latentflow sample`` prints for its report ``rep`` (written to ``out``)."""
    model, method, num = rep["model"], rep["method"], rep["num"]
    r = rep["result"]
    lines = [f"{model} · {method} · {num} samples · {r['wall_s']:.2f} s · device {rep['env']['device']}"]
    ev = Evals(**rep["evaluations_per_sample"])
    lines.append(
        f"evaluations per sample: G {ev.n_G_forward:.0f} fwd / {ev.n_G_backward:.0f} bwd, "
        f"D {ev.n_D_forward:.0f} fwd / {ev.n_D_backward:.0f} bwd"
    )
    for key in ("accept_rate", "accept_rate_mean"):
        if key in r:
            lines.append(f"acceptance: {r[key]:.3f}")
    if r.get("n_diverged"):
        lines.append(f"diverged chains: {r['n_diverged']} (see report.json)")
    m = rep.get("metrics") or {}
    if "before" in m and "after" in m:
        lines += [f"| metric | {rep.get('start', 'generator')} | {method} |", "|---|---|---|"]
        fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
        for k in m["after"]:
            lines.append(f"| {k} | {fmt(m['before'].get(k))} | {fmt(m['after'].get(k))} |")
    ref = m.get("real") or {}
    if "error" in ref:
        lines.append(f"real-data metrics failed: {ref['error']}")
    elif ref:
        lines.append(
            f"FID/KID vs {ref['real']} ({ref.get('split') or ref['kind']}, {ref['num_real']} real images, "
            f"{'cached' if ref.get('cache_hit') else 'new'} reference statistics)"
        )
        if ref.get("prdc"):
            p = ref["prdc"]
            lines.append(
                f"precision/recall/density/coverage: pool3 features, k={p['k']}, {p['num_real']} real vs "
                f"{p['num_fake']} generated rows"
            )
        for k, why in (ref.get("null_reasons") or {}).items():
            if k == "is":
                lines.append(f"IS not computed: {why}")
    lines.append("wrote " + ", ".join(f"{out}/{f}" for f in rep["files"].values()))
    return lines
