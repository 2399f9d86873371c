"""``latentflow tune`` on the command line: read the real samples, run :func:`latentflow.app.tune.tune.tune` on a
loaded model, write ``tune.json``, a markdown table and a metric-vs-steps plot."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import Tensor

from ..._io import atomic_write_json, atomic_write_text
from ...errors import OptionError
from .tune import TuneResult, tune

log = logging.getLogger("latentflow")


def read_real(path) -> Tensor:
    """Real samples from a ``.npz`` (key ``x``, ``real`` or the first array), ``.pt`` (a tensor or a dict
    with ``x``; ``torch.load(weights_only=True)``), ``.safetensors`` (``x`` or the first tensor) or a folder
    of images (PNG/JPEG, to ``[N, C, H, W]`` in [-1, 1]); uint8 arrays are mapped to [-1, 1]."""
    p = Path(path).expanduser()
    if not p.exists():
        raise OptionError(f"real_path: no such file or folder: {str(p)!r}")
    if p.is_dir():
        import numpy as np
        from PIL import Image

        from ...metrics.real import check_image_files

        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise OptionError(f"real_path: folder {p} holds no .png/.jpg images")
        check_image_files(files, "real_path")  # readable, one size: before any decoding
        try:
            arr = np.stack([np.asarray(Image.open(f)) for f in files])
        except (OSError, ValueError) as e:  # decodes differently (modes) although sizes agree
            raise OptionError(f"real_path: the images of {str(p)!r} cannot be stacked: {e}") from None
        x = torch.from_numpy(arr)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    else:
        x = _read_tensor_file(p)
    if not isinstance(x, Tensor):
        raise OptionError(f"real_path: {p} holds no tensor of real samples")
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int64, torch.int32)):
        raise OptionError(f"real_path: {p} holds a {x.dtype} tensor; expected numbers (float, or uint8 images)")
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()


def _read_tensor_file(p: Path):
    """The samples of a ``.npz`` / ``.pt`` / ``.safetensors`` file; an unreadable file (or a pickle holding
    more than tensors: never unpickled with code) is one ``OptionError`` naming ``real_path``."""
    from ...errors import LatentflowError

    try:
        if p.suffix == ".npz":
            import numpy as np

            with np.load(p, allow_pickle=False) as f:
                key = next((k for k in ("x", "real") if k in f.files), f.files[0] if f.files else None)
                if key is None:
                    raise OptionError(f"real_path: {p} holds no array")
                return torch.from_numpy(f[key].copy())
        if p.suffix in (".pt", ".pth"):
            from ...models.checkpoints import read_pickle_weights_only

            obj = read_pickle_weights_only(p)
            return obj.get("x") if isinstance(obj, dict) else obj
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            d = load_file(str(p))
            return d.get("x", next(iter(d.values()), None))
    except LatentflowError as e:
        raise OptionError(f"real_path: {e}") from None
    except Exception as e:  # noqa: BLE001  (numpy, zipfile and safetensors report a bad file each their way)
        raise OptionError(f"real_path: {str(p)!r} is not a readable {p.suffix} file: {type(e).__name__}: {e}") from None
    raise OptionError(f"real_path must be a .npz, .pt, .safetensors file or an image folder; got {p}")


def tune_table(res: TuneResult, max_rows: int = 30) -> str:
    """A markdown table of the candidates at their last rung, best first."""
    last = {}
    for row in res.table:
        last[row["label"]] = row
    rows = sorted(last.values(), key=lambda r: (-r["rung"], r["metric"] if r.get("metric") is not None else math.inf))
    out = [
        f"winner: **{res.summary['winner']}** ({res.summary['verdict']})",
        "",
        f"| candidate | rung | n | metric ({res.metric}) | D evals/sample | CPU s | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows[:max_rows]:
        m = "-" if r.get("metric") is None else f"{r['metric']:.4g} {r.get('metric_name', '')}".strip()
        e = "-" if r.get("d_evals_per_sample") is None else f"{r['d_evals_per_sample']:.1f}"
        cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else "-"
        out.append(f"| {r['label']} | {r['rung']} | {r['n']} | {m} | {e} | {cpu} | {r['status']} |")
    return "\n".join(out) + "\n"


def plot_tune(res: TuneResult, path) -> bool:
    """Metric against D evaluations per sample (steps) at the first rung, one series per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for meth in dict.fromkeys(r["method"] for r in res.table):  # the generator alone first
        pts = [
            (r["d_evals_per_sample"], r["metric"])
            for r in res.table
            if r["rung"] == 0 and r["method"] == meth and r["metric"] is not None
        ]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, label=meth, s=14)
    ax.set_xlabel("D evaluations per sample")
    ax.set_ylabel(f"{res.metric} (rung 0)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def label_object(p: Path) -> object:
    """What a label file holds, unchecked: ``.npy``, ``.npz`` (key ``y``, ``labels`` or the first array), ``.txt``
    (one integer a line), ``.pt`` (a tensor or a dict with ``y`` / ``labels``; ``weights_only``) or
    ``.safetensors`` (``y``, ``labels`` or the first tensor). The one reader of ``tune`` and ``bench``'s labels;
    each checks the result its own way. A reader's own error propagates."""
    if p.suffix == ".npy":
        import numpy as np

        return torch.from_numpy(np.load(p, allow_pickle=False))
    if p.suffix == ".npz":
        import numpy as np

        with np.load(p, allow_pickle=False) as f:
            key = next((k for k in ("y", "labels") if k in f.files), f.files[0] if f.files else None)
            return torch.from_numpy(f[key].copy()) if key else None
    if p.suffix == ".txt":
        return torch.tensor([int(v) for v in p.read_text().split()])
    if p.suffix in (".pt", ".pth"):
        from ...models.checkpoints import read_pickle_weights_only

        obj = read_pickle_weights_only(p)
        return obj.get("y", obj.get("labels")) if isinstance(obj, dict) else obj
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        d = load_file(str(p))
        return d.get("y", d.get("labels", next(iter(d.values()), None)))
    raise OptionError(f"labels must be a .npy, .npz, .txt, .pt or .safetensors file; got {p}")


def read_label_file(p: Path, kind: str | None = None) -> object:
    """:func:`label_object` of ``p``, a missing file or one its reader fails on refused in one line
    (``OptionError``: "not a readable <kind> file", ``kind`` the file's suffix unless given)."""
    if not p.is_file():
        raise OptionError(f"labels: no such file: {str(p)!r}")
    try:
        return label_object(p)
    except OptionError:
        raise
    except Exception as e:  # noqa: BLE001  (each reader reports a bad file its own way)
        what = kind or p.suffix
        raise OptionError(f"labels: {str(p)!r} is not a readable {what} file: {type(e).__name__}: {e}") from None


def read_labels(path, n: int) -> Tensor:
    """Class labels ``[n]`` of the real samples from a label file (see :func:`label_object`)."""
    p = Path(path).expanduser()
    y = read_label_file(p)
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        got = f"a {y.dtype} tensor" if isinstance(y, Tensor) else type(y).__name__
        raise OptionError(f"labels: {p} must hold integer class labels [N]; got {got}")
    if tuple(y.shape) != (n,):
        raise OptionError(f"labels: expected one label per real sample, shape ({n},); got {tuple(y.shape)} in {p}")
    return y.long()


def _model_ref(model):
    """A model folder's ``latentflow.json`` given as a FILE names its folder."""
    p = Path(str(model)).expanduser()
    return str(p.parent) if p.is_file() and p.name == "latentflow.json" else model


def run_tune_command(
    model,
    real_path,
    budget: int = 100,
    out=None,
    seed: int = 0,
    quiet: bool = False,
    *,
    labels=None,
    features=None,
    time_budget: float | None = None,
    metric: str | None = None,
) -> dict:
    """``latentflow tune``: load ``model`` (``latentflow.load``: a name, ``hf:owner/repo``, a folder or its
    ``latentflow.json``), read ``real_path`` (see ``read_real``) and ``labels`` (see ``read_labels``), tune,
    write ``tune.json``, ``tune.md`` and ``tune.png`` into ``out`` and return the JSON dict. ``metric``
    defaults to ``"emd"`` for 2-D points and ``"fid"`` otherwise. ``out`` is checked before anything runs."""
    from ..._io import check_writable
    from ...models import load

    if out is not None:
        check_writable(out, "out")
    real = read_real(real_path)
    y = None if labels is None else read_labels(labels, real.shape[0])
    pair = load(_model_ref(model))
    if metric is None:
        metric = "emd" if real.dim() == 2 and real.shape[1] == 2 else "fid"
    tune_log = logging.getLogger("latentflow.app.tune")
    level = tune_log.level
    if not quiet:  # the features chosen, the estimate and one line per rung, beside the progress bar
        tune_log.setLevel(logging.INFO)
    try:
        res = _tune(pair, real, y, budget, metric, seed, quiet, features, time_budget)
    finally:
        tune_log.setLevel(level)
    doc = {"model": str(model), "real": str(real_path), "budget": budget, "seed": seed, **res.to_dict()}
    doc.update(labels=str(labels) if labels is not None else doc.get("labels"), time_budget=time_budget)
    table = tune_table(res)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "tune.json", doc)
        atomic_write_text(out / "tune.md", table)
        plot_tune(res, out / "tune.png")
    return {**doc, "table_md": table}


def _tune(pair, real, y, budget, metric, seed, quiet, features, time_budget) -> TuneResult:
    meta = pair.meta
    return tune(
        pair.G,
        pair.D,
        real,
        latent_dim=int(meta["latent_dim"]),
        prior=meta.get("prior") or "normal",
        d_output=meta.get("d_output") or "logit",
        budget=budget,
        metric=metric,
        seed=seed,
        progress=not quiet,
        features=features,
        time_budget=time_budget,
        num_classes=pair.num_classes or None,
        real_labels=y,
    )
