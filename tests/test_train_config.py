"""latentflow.train.config: ``--set`` values of the wrong type or shape are one-line OptionErrors naming
the field and the type."""

from __future__ import annotations

import dataclasses

import pytest

from latentflow.errors import OptionError
from latentflow.train import TRAINERS, check_config, get_trainer, make_config
from latentflow.train.config import TrainConfig


@pytest.mark.parametrize(
    "kind,kw,msg",
    [
        ("gan", {"betas": [0.5]}, r"betas \(GANConfig\) must be 2 numbers like \[0\.5, 0\.9\]; got \[0\.5\]"),
        ("gan", {"betas": ["a", "b"]}, r"betas \(GANConfig\) must be 2 numbers"),
        ("gan", {"steps": "ten"}, r"steps \(GANConfig\) must be int; got 'ten' \(str\)"),
        ("gan", {"steps": 2.5}, r"steps \(GANConfig\) must be int; got 2\.5 \(float\)"),
        ("gan", {"lr_g": True}, r"lr_g \(GANConfig\) must be float; got True \(bool\)"),
        ("gan", {"arch_g_kwargs": [1]}, r"arch_g_kwargs \(GANConfig\) must be dict"),
        ("gan", {"data": None}, r"data \(GANConfig\) must be str; got None"),
        ("dflow", {"gp_weight": "big"}, r"gp_weight \(DFlowConfig\) must be float or None; got 'big' \(str\)"),
        ("scoregan", {"betas": 0.5}, r"betas \(ScoreGANConfig\) must be tuple; got 0\.5 \(float\)"),
    ],
)
def test_wrong_types_name_the_field(kind, kw, msg):
    Config, _ = get_trainer(kind)
    with pytest.raises(OptionError, match=msg) as ei:
        make_config(Config, kw)
    assert "\n" not in str(ei.value)
    with pytest.raises(OptionError, match=msg):
        Config(**kw).validate()  # the trainers' own validate() checks types first


def test_values_are_normalised_and_unknown_fields_refused():
    Config, _ = get_trainer("gan")
    cfg = make_config(Config, {"betas": [0.4, 0.99], "lr_g": 1, "data_root": None})
    assert cfg.betas == (0.4, 0.99) and isinstance(cfg.lr_g, float) and cfg.data_root is None
    assert check_config(cfg) is cfg
    with pytest.raises(OptionError, match=r"unknown config field\(s\) colour for GANConfig"):
        make_config(Config, {"colour": "red"})


@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_every_trainer_config_checks_types_before_its_own_rules(kind):
    Config, _ = get_trainer(kind)
    assert issubclass(Config, TrainConfig)
    assert [f.name for f in dataclasses.fields(Config)][:2] == ["seed", "device"]
    # the device's type rule runs before the trainer's own rules (which a default config may not pass)
    with pytest.raises(OptionError, match=rf'device \({Config.__name__}\) must be a torch device such as "cpu"'):
        Config(device="tpu").validate()


@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_every_trainer_config_shares_steps_batch_size_and_betas_checked_once(kind):
    Config, _ = get_trainer(kind)
    names = [f.name for f in dataclasses.fields(Config)]
    assert names[:5] == ["seed", "device", "steps", "batch_size", "betas"] and len(set(names)) == len(names)
    need = {"model": "m", "real": "grid25"} if kind == "corrector" else {}  # the corrector's required fields
    Config(**need).validate()
    for name in ("steps", "batch_size"):
        for bad in (0, -3):
            with pytest.raises(OptionError, match=rf"^{name} must be a positive int; got {bad}$"):
                Config(**need, **{name: bad}).validate()
