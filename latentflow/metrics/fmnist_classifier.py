"""A small Fashion-MNIST classifier used as a feature extractor for FID/KID and a classifier score.

The Inception network knows nothing of 28x28 grey clothes; a classifier trained on Fashion-MNIST gives
features that do. The project trains it itself (no download) and ships the weights as
``latentflow/checkpoints/fmnist_classifier.safetensors`` with ``fmnist_classifier.json`` next to it
(sha256, test accuracy, training command and seed). Rebuild them with::

    nice -n 10 python -m latentflow.metrics.fmnist_classifier --train \\
        --out latentflow/checkpoints/fmnist_classifier.safetensors --seed 0 --epochs 8

Registered with torch-fidelity as the feature extractor ``"fmnist-classifier"`` (see
:func:`register`), it provides

* ``"penultimate"``: the 128-d ReLU features before the last layer (used for FID, KID, precision/recall);
* ``"logits"``: the 10 class logits (used for the classifier score, an Inception Score computed with this
  classifier's softmax; keys stay torch-fidelity's ``inception_score_mean`` / ``inception_score_std``).

Inputs are uint8 ``[N, 3, H, W]`` (the channels are averaged back to grey; other sizes are resized to
28x28 with antialiasing). torch-fidelity is imported only inside functions.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._io import atomic_save_safetensors, atomic_write_json, sha256_file
from ..errors import IntegrityError, LatentflowError, ShapeError
from ._base import FMNIST, register_extractor
from .fidelity import compute_metrics

log = logging.getLogger("latentflow.metrics")

NAME = FMNIST
FEATURES = ("penultimate", "logits")
FEATURE_DIM = 128
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST train pixel mean / std on [0, 1]
CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "fmnist_classifier.safetensors"
INFO = CHECKPOINT.with_suffix(".json")


class FMNISTNet(nn.Module):
    """conv16-pool-conv32-pool-conv64-pool-fc128-fc10 (about 98k parameters, < 0.5 MB in float32)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 3 * 3, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)
        self.drop = nn.Dropout(0.3)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of normalised grey images ``[N, 1, 28, 28]``."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 7
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)  # 3
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(self.features(x)))


def preprocess(x: Tensor) -> Tensor:
    """uint8 ``[N, C, H, W]`` (C = 1 or 3) -> normalised float ``[N, 1, 28, 28]``."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ShapeError(f"images: expected a tensor [N, 1 or 3, H, W]; got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ShapeError(f"images: expected dtype torch.uint8 (use latentflow.metrics.to_uint8); got {x.dtype}")
    x = x.float().mean(1, keepdim=True) / 255.0
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    return (x - MEAN) / STD


def load_classifier(path: str | os.PathLike | None = None, check: bool = True) -> FMNISTNet:
    """The bundled classifier (or the one at ``path``), in eval mode; checks its sha256 against the JSON."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else CHECKPOINT
    if not path.exists():
        raise LatentflowError(
            f"Fashion-MNIST classifier weights not found: expected {path}. Rebuild them with "
            "`python -m latentflow.metrics.fmnist_classifier --train --out " + str(CHECKPOINT) + "`."
        )
    if check and path == CHECKPOINT and INFO.exists():
        expected = json.loads(INFO.read_text())["sha256"]
        IntegrityError.check_digest(path, "sha256", expected, sha256_file(path), INFO.name)
    with torch.device("meta"):  # no random init: leaves the global RNG alone
        net = FMNISTNet()
    try:
        net.load_state_dict(load_file(str(path)), assign=True)
    except RuntimeError as e:
        raise IntegrityError(f"{path}: state dict does not fit FMNISTNet: {e}", path=str(path)) from e
    return net.eval().requires_grad_(False)


def weights_tag(path: str | os.PathLike | None = None) -> str:
    """Short hash naming the classifier weights in cache keys."""
    return sha256_file(Path(path) if path is not None else CHECKPOINT)[:12]


_EXTRACTOR_CLS = None


def extractor_class():
    """The torch-fidelity ``FeatureExtractorBase`` subclass (built on first use, so that importing this
    module does not import torch-fidelity)."""
    global _EXTRACTOR_CLS
    if _EXTRACTOR_CLS is not None:
        return _EXTRACTOR_CLS
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class FeatureExtractorFMNIST(FeatureExtractorBase):
        calls = 0  # forward calls, summed over instances (tests check cache reuse with it)

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.net = load_classifier(feature_extractor_weights_path)

        def forward(self, x):
            type(self).calls += 1
            x = preprocess(x)
            feats = self.net.features(x)
            out = {"penultimate": feats, "logits": self.net.fc2(feats)}
            return tuple(out[a].float() for a in self.features_list)

        @staticmethod
        def get_provided_features_list():
            return FEATURES

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits", "fid": "penultimate", "kid": "penultimate", "prc": "penultimate"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    _EXTRACTOR_CLS = FeatureExtractorFMNIST
    return _EXTRACTOR_CLS


def register() -> str:
    """Register ``"fmnist-classifier"`` with torch-fidelity (idempotent); returns the name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(NAME, extractor_class())
    return NAME


@register_extractor(NAME)
def _resolve(offline: bool | None, need_logits: bool) -> tuple[dict, str]:
    """torch-fidelity kwargs and cache tag of this extractor (it has logits, and needs no download)."""
    register()
    return {}, "sha" + weights_tag()


# ---------------------------------------------------------------------------------------------------
# Convenience metrics (thin wrappers over latentflow.metrics.fidelity)


def fid_fmnist(samples_uint8: Tensor, split: str = "test", **kwargs) -> dict:
    """FID in this classifier's feature space between samples and Fashion-MNIST ``split``
    (torch-fidelity's dict; the value is under ``"frechet_inception_distance"``)."""
    return compute_metrics(samples_uint8, f"fashion-mnist-{split}", fid=True, feature_extractor=NAME, **kwargs)


def kid_fmnist(samples_uint8: Tensor, split: str = "test", **kwargs) -> dict:
    """KID in this classifier's feature space (``"kernel_inception_distance_mean"`` / ``_std``)."""
    return compute_metrics(samples_uint8, f"fashion-mnist-{split}", kid=True, feature_extractor=NAME, **kwargs)


def classifier_score(samples_uint8: Tensor, **kwargs) -> dict:
    """Inception Score computed with this classifier's softmax (``"inception_score_mean"`` / ``_std``)."""
    return compute_metrics(samples_uint8, None, isc=True, feature_extractor=NAME, **kwargs)


def fmnist_metrics(samples_uint8: Tensor, split: str = "test", **kwargs) -> dict:
    """FID, KID and classifier score in one pass over the samples."""
    return compute_metrics(
        samples_uint8, f"fashion-mnist-{split}", fid=True, kid=True, isc=True, feature_extractor=NAME, **kwargs
    )


# ---------------------------------------------------------------------------------------------------
# Training (python -m latentflow.metrics.fmnist_classifier --train --out PATH)


@torch.no_grad()
def accuracy(net: FMNISTNet, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = net(preprocess(images[i : i + batch_size]))
        correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
    return correct / len(images)


def train(
    out: str | os.PathLike, seed: int = 0, epochs: int = 8, batch_size: int = 128, lr: float = 2e-3, threads: int = 1
) -> dict:
    """Train on Fashion-MNIST train, evaluate on test, write ``out`` (safetensors) and ``out.json``."""

    from ..data import load_fashion_mnist

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xtr, ytr = load_fashion_mnist("train")
    xte, yte = load_fashion_mnist("test")
    net = FMNISTNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(xtr) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.time()
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        tot = 0.0
        for i in range(0, len(xtr), batch_size):
            idx = perm[i : i + batch_size]
            xb = xtr[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5  # clothes are left-right symmetric
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = F.cross_entropy(net(preprocess(xb)), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        acc = accuracy(net, xte, yte)
        log.info("epoch %d loss %.4f test acc %.4f (%.0f s)", ep + 1, tot / len(xtr), acc, time.time() - t0)
    net.eval()
    out = Path(out)
    atomic_save_safetensors(net.state_dict(), out)
    info = {
        "name": NAME,
        "sha256": sha256_file(out),
        "test_accuracy": accuracy(net, xte, yte),
        "train_accuracy": accuracy(net, xtr, ytr),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": "Adam + OneCycleLR",
        "augmentation": "random horizontal flip",
        "architecture": "conv16-pool-conv32-pool-conv64-pool-fc128-fc10 (FMNISTNet)",
        "normalisation": {"mean": MEAN, "std": STD},
        "command": f"nice -n 10 python -m latentflow.metrics.fmnist_classifier --train --out {out} "
        f"--seed {seed} --epochs {epochs}",
        "torch": torch.__version__,
        "train_seconds": round(time.time() - t0, 1),
        "note": "bit-exact rebuild is not promised across torch versions / CPUs; accuracy should agree to ~0.3%",
    }
    atomic_write_json(out.with_suffix(".json"), info)
    return info


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m latentflow.metrics.fmnist_classifier",
        description="Train / evaluate the Fashion-MNIST feature classifier.",
    )
    p.add_argument("--train", action="store_true", help="train and write --out (+ .json)")
    p.add_argument("--eval", action="store_true", help="print the test accuracy of --out")
    p.add_argument("--out", default=str(CHECKPOINT))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if a.train:
        info = train(a.out, seed=a.seed, epochs=a.epochs, threads=a.threads)
        print(json.dumps(info, indent=2))
    if a.eval or not a.train:
        from ..data import load_fashion_mnist

        xte, yte = load_fashion_mnist("test")
        print(f"test accuracy {accuracy(load_classifier(a.out, check=False), xte, yte):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
