"""Training infrastructure shared by every trainer.

* ``Run`` owns an output folder: ``checkpoint.safetensors`` + ``checkpoint.json`` (models, optimizer
  states, the trainer's ``torch.Generator`` state, the global torch RNG state and the step), written
  atomically every ``ckpt_every`` steps; ``metrics.jsonl`` with one JSON object per logged step
  (EDM's ``stats.jsonl``); a tqdm bar with the latest losses.
* Resuming reads the checkpoint back, so a run killed at any point and restarted with the same config
  continues bit-for-bit where the checkpoint left it (tested); ``metrics.jsonl`` is cut back to the rows
  of the steps the checkpoint holds, so the rows logged after it (which the resumed run logs again) are
  not doubled.
* ``out`` is checked before anything is written: a file, or a folder that cannot be written (read-only
  file system, no permission), is one ``OptionError``; a write the file system refuses later (full disk)
  is one ``OutputError`` naming the file, with the last checkpoint kept.
* Under ``torch.distributed`` (``latentflow.train.parallel``) rank 0 alone writes the checkpoint, the
  metrics and the bar; every rank resumes from the same checkpoint, and the losses a step returns are
  averaged over the ranks (``parallel.mean``) before they are checked and logged.
* ``LoopOptions`` are the keyword arguments every trainer takes (``progress``, ``resume``, ``ckpt_every``,
  ``log_every``, ``stop_after``) and hands to ``Run`` as they are.
* A finished run's folder (its weights and ``latentflow.json``) is written by :mod:`latentflow.train._trained`.
* A step whose losses are not finite, or a checkpoint whose weights are not, stops the run with
  :class:`TrainingDiverged` before anything non-finite is written: the last checkpoint stays the last
  finite one.

Every file is written atomically through :mod:`latentflow._io`, with the mode the umask gives.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, TypedDict

import torch
from safetensors.torch import load_file
from torch import nn

from .. import dist
from .._io import (
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
    output_error,
)
from ..errors import DivergenceError, LatentflowError, OptionError

log = logging.getLogger("latentflow.train")

__all__ = [
    "Run",
    "TrainingDiverged",
    "atomic_save_safetensors",
    "atomic_write_bytes",
    "config_dict",
    "make_ema",
    "ema_update",
    "check_ema",
]


class TrainingDiverged(DivergenceError):
    """A training step gave a non-finite loss, or the weights became non-finite; ``step`` is that step and
    ``checkpoint_step`` the step of the last (finite) checkpoint kept on disk, None if there is none."""

    def __init__(self, message: str, *, step: int, checkpoint_step: int | None):
        super().__init__(message)
        self.step = step
        self.checkpoint_step = checkpoint_step


def config_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return json.loads(json.dumps(d, default=str))


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` that :func:`ema_update` keeps as an exponential moving average."""
    import copy

    ema = copy.deepcopy(module).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, module: nn.Module, decay: float) -> None:
    """``θ_ema <- decay θ_ema + (1 - decay) θ`` for parameters; buffers are copied."""
    for pe, p in zip(ema.parameters(), module.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), module.buffers()):
        be.copy_(b)


def check_ema(cfg) -> None:
    v = cfg.ema
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise OptionError(f"ema must be a decay in [0, 1) (0 = off); got {v!r}")


class LoopOptions(TypedDict, total=False):
    """A trainer's keyword arguments, handed to :class:`Run` as they are: ``progress`` (a tqdm bar; default
    True), ``resume`` (continue from ``out``'s checkpoint; True), ``ckpt_every`` (steps between checkpoints;
    1000), ``log_every`` (steps between ``metrics.jsonl`` rows; 100), ``stop_after`` (stop, checkpointed,
    after that many steps of this call; None: run to the end; the tests simulate a kill with it)."""

    progress: bool
    resume: bool
    ckpt_every: int
    log_every: int
    stop_after: int | None


class Run:
    """Checkpointing, resuming, logging and progress for one training run in ``out``."""

    def __init__(
        self,
        out: str | os.PathLike,
        config,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        *,
        ckpt_every: int = 1000,
        log_every: int = 100,
        progress: bool = True,
        resume: bool = True,
        stop_after: int | None = None,
        parallel=None,
    ):
        if ckpt_every < 1 or log_every < 1:
            raise OptionError("ckpt_every and log_every must be >= 1")
        self.out = check_writable(out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise (output_error(e, self.out) or OptionError(f"out {str(out)!r} cannot be created: {e}")) from None
        self.config = config
        self.modules, self.optimizers, self.generator = modules, optimizers, generator
        self.main = dist.is_main()  # the one writer under torch.distributed
        self.parallel = parallel
        self.ckpt_every, self.log_every, self.progress = ckpt_every, log_every, progress and self.main
        self.stop_after = stop_after
        self.step = 0
        self.saved_step: int | None = None
        self.ckpt_path = self.out / "checkpoint.safetensors"
        self.meta_path = self.out / "checkpoint.json"
        self.metrics_path = self.out / "metrics.jsonl"
        if resume and self.ckpt_path.exists() and self.meta_path.exists():
            self._load()
            self.saved_step = self.step
            if self.main:
                self._cut_metrics(self.step)
            log.info("resumed %s at step %d", self.out, self.step)
        elif self.metrics_path.exists() and self.main:
            self.metrics_path.unlink()

    # -- checkpoint ---------------------------------------------------------------------------------
    def save(self) -> None:
        self._check_weights()
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"step": self.step, "config": config_dict(self.config), "optimizers": {}}
        for name, m in self.modules.items():
            for k, v in m.state_dict().items():
                tensors[f"model/{name}/{k}"] = v
        for name, opt in self.optimizers.items():
            sd = opt.state_dict()
            scalars: dict[str, Any] = {}
            for idx, st in sd["state"].items():
                for k, v in st.items():
                    if isinstance(v, torch.Tensor):
                        tensors[f"optim/{name}/{idx}/{k}"] = v
                    else:
                        scalars[f"{idx}/{k}"] = v
            meta["optimizers"][name] = {
                "param_groups": sd["param_groups"],
                "scalars": scalars,
                "state_ids": list(sd["state"].keys()),
            }
        tensors["rng/generator"] = self.generator.get_state()
        tensors["rng/torch"] = torch.get_rng_state()
        if self.main:
            atomic_save_safetensors(tensors, self.ckpt_path)
            atomic_write_bytes(self.meta_path, json.dumps(meta, indent=1, default=str).encode())
        self.saved_step = self.step

    # -- divergence ---------------------------------------------------------------------------------
    def _diverged(self, step: int, what: str) -> TrainingDiverged:
        kept = (
            f"the last finite checkpoint (step {self.saved_step}) is kept in {self.ckpt_path}"
            if self.saved_step is not None
            else "no checkpoint had been written yet"
        )
        lrs = {k: getattr(self.config, k) for k in ("lr", "lr_g", "lr_d") if hasattr(self.config, k)}
        hint = ("; try a smaller " + ", ".join(f"{k} (now {v:g})" for k, v in lrs.items())) if lrs else ""
        return TrainingDiverged(
            f"training diverged at step {step}: {what}; stopped, {kept}{hint}",
            step=step,
            checkpoint_step=self.saved_step,
        )

    def _check_losses(self, step: int, metrics: dict) -> None:
        """One host read per step: are all of this step's losses finite?"""
        ts = [v.detach().float().reshape(-1) for v in metrics.values() if isinstance(v, torch.Tensor)]
        ok = bool(torch.cat(ts).isfinite().all()) if ts else True
        ok = ok and all(math.isfinite(float(v)) for v in metrics.values() if not isinstance(v, torch.Tensor))
        if not ok:
            bad = {k: float(v) for k, v in metrics.items() if not math.isfinite(float(v))}
            raise self._diverged(step, "non-finite loss " + ", ".join(f"{k} = {v}" for k, v in bad.items()))

    def _check_weights(self) -> None:
        for name, m in self.modules.items():
            for k, v in m.state_dict().items():
                if v.is_floating_point() and not bool(v.isfinite().all()):
                    raise self._diverged(self.step, f"non-finite weights in {name}.{k}")

    def _load(self) -> None:
        try:
            meta = json.loads(self.meta_path.read_text())
            tensors = load_file(str(self.ckpt_path))
        except Exception as e:
            raise LatentflowError(f"cannot read the checkpoint in {self.out}: {e}; delete it to start over") from e
        saved_cfg = meta.get("config", {})
        now_cfg = config_dict(self.config)
        defaults = {f.name: f.default for f in dataclasses.fields(self.config) if f.default is not dataclasses.MISSING}
        # a field the checkpoint predates is fine while it keeps its default
        diff = {
            k: (saved_cfg.get(k), v)
            for k, v in now_cfg.items()
            if k not in ("steps", "out", "ckpt_every", "log_every")
            and saved_cfg.get(k) != v
            and not (k not in saved_cfg and k in defaults and defaults[k] == v)
        }
        if diff:
            raise OptionError(
                f"the checkpoint in {self.out} was made with a different config: "
                + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
                + "; use another --out or resume=False"
            )
        for name, m in self.modules.items():
            pre = f"model/{name}/"
            sd = {k[len(pre) :]: v for k, v in tensors.items() if k.startswith(pre)}
            m.load_state_dict(sd, strict=True)
        for name, opt in self.optimizers.items():
            om = meta["optimizers"][name]
            state: dict = {}
            for idx in om["state_ids"]:
                st = {}
                pre = f"optim/{name}/{idx}/"
                for k, v in tensors.items():
                    if k.startswith(pre):
                        st[k[len(pre) :]] = v
                for k, v in om["scalars"].items():
                    i, key = k.split("/", 1)
                    if i == str(idx):
                        st[key] = v
                state[int(idx)] = st
            opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
        self.generator.set_state(tensors["rng/generator"])
        torch.set_rng_state(tensors["rng/torch"])
        self.step = int(meta["step"])

    def _cut_metrics(self, step: int) -> None:
        """Keep the rows of ``metrics.jsonl`` up to ``step`` (the checkpoint's): the run logged the later ones
        before it was killed, and logs them again as it resumes. A row cut short by the kill is dropped."""
        if not self.metrics_path.exists():
            return
        keep, cut = [], 0
        for line in self.metrics_path.read_text().splitlines():
            try:
                row = json.loads(line)
                ok = isinstance(row, dict) and int(row.get("step", step + 1)) <= step
            except (ValueError, TypeError):
                ok = False
            if ok:
                keep.append(line)
            else:
                cut += 1
        if cut:
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in keep))
            log.info("metrics.jsonl: dropped %d row(s) logged after the checkpoint (step %d)", cut, step)

    # -- loop ---------------------------------------------------------------------------------------
    def log_metrics(self, step: int, metrics: dict) -> None:
        # an append-only log (one line per logged step), so not rewritten atomically
        if not self.main:
            return
        rec = {"step": step, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
        try:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        except OSError as e:
            err = output_error(e, self.metrics_path)
            if err is None:
                raise
            raise err from None

    def loop(
        self, total_steps: int, step_fn: Callable[[int], dict], desc: str = "train", stop_after: int | None = None
    ) -> None:
        """Run ``step_fn(step) -> metrics`` from the current step to ``total_steps``.

        ``stop_after`` (default: the run's) stops (after checkpointing) once that many steps ran in this
        call: the tests use it to simulate a kill mid-training."""
        stop_after = self.stop_after if stop_after is None else stop_after
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total_steps, initial=self.step, desc=desc, disable=None if self.progress else True, dynamic_ncols=True
        )
        ran = 0
        while self.step < total_steps:
            metrics = step_fn(self.step)
            if self.parallel is not None:
                metrics = self.parallel.mean(metrics)
            try:
                self._check_losses(self.step + 1, metrics)
            except TrainingDiverged:
                bar.close()
                raise
            self.step += 1
            ran += 1
            bar.update(1)
            if self.step % self.log_every == 0 or self.step == total_steps:
                vals = {k: float(v) for k, v in metrics.items()}  # one read-back per logged step
                self.log_metrics(self.step, vals)
                bar.set_postfix({k: f"{v:.3g}" for k, v in vals.items()})
            if self.step % self.ckpt_every == 0 or self.step == total_steps:
                self.save()
            if stop_after is not None and ran >= stop_after:
                self.save()
                break
        bar.close()
