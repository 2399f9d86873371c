"""Metrics: the 2-D metrics of Che et al. 2020 (``toy2d``) and image metrics through torch-fidelity
(``fidelity``: FID/KID/IS/precision-recall, offline Inception weights; ``fmnist_classifier``: FID-FMNIST
and a classifier score; ``real``: Inception FID/KID/IS against CIFAR-10 or a folder / ``.npz`` of real
images, with cached reference statistics; ``prdc``: precision, recall, density and coverage on any feature
rows, ``features``: the feature rows of images and PRDC on them). Importing this package does not import
torch-fidelity."""

from .features import FeatureNet, feature_dict, feature_rows, fidelity_from_features, image_prdc
from .fidelity import (
    KEY_FID,
    KEY_IS_MEAN,
    KEY_IS_STD,
    KEY_KID_MEAN,
    KEY_KID_STD,
    KEY_PRECISION,
    KEY_RECALL,
    compute_metrics,
    fid,
    inception_score,
    kid,
    precision_recall,
)
from .fmnist_classifier import classifier_score, fid_fmnist, fmnist_metrics, kid_fmnist
from .image_inputs import make_sampler_model, to_uint8
from .manifold import PRDC_KEYS, keeps_recall, prdc, recall_margin
from .real import real_metrics
from .real_sets import DEFAULT_REAL, REGISTERED, RealSet, resolve_real
from .toy2d import emd, mode_metrics, toy_metrics

__all__ = [
    "compute_metrics",
    "fid",
    "kid",
    "inception_score",
    "precision_recall",
    "prdc",
    "recall_margin",
    "keeps_recall",
    "PRDC_KEYS",
    "FeatureNet",
    "feature_rows",
    "feature_dict",
    "fidelity_from_features",
    "image_prdc",
    "to_uint8",
    "make_sampler_model",
    "KEY_FID",
    "KEY_IS_MEAN",
    "KEY_IS_STD",
    "KEY_KID_MEAN",
    "KEY_KID_STD",
    "KEY_PRECISION",
    "KEY_RECALL",
    "classifier_score",
    "fid_fmnist",
    "kid_fmnist",
    "fmnist_metrics",
    "emd",
    "mode_metrics",
    "toy_metrics",
    "real_metrics",
    "resolve_real",
    "RealSet",
    "REGISTERED",
    "DEFAULT_REAL",
]
