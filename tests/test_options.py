"""Typed option records (latentflow.options): one validation, clear errors, CLI parsing, listings."""

import json

import pytest
import torch
from analytic import gaussian_problem

import latentflow as lf
from latentflow import options, samplers
from latentflow.errors import OptionError
from latentflow.samplers.ddls import DDLSOptions


def _refine(**kw):
    G, D, *_ = gaussian_problem()
    z = torch.zeros(4, 2, dtype=torch.float64)
    kw.setdefault("progress", False)
    return lf.refine(G, D, z, method="ddls", seed=0, **kw)


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("mala", "False", "bool"),
        ("mala", "no", "bool"),
        ("mala", 0.5, "bool"),
        ("mala", 0, "bool"),
        ("steps", "10", "int"),
        ("steps", 10.0, "int"),
        ("steps", True, "int"),
        ("step_size", "0.1", "float"),
        ("progress", "yes", "bool"),
        ("compile", 1, "bool"),
    ],
)
def test_wrong_types_are_option_errors_naming_option_and_type(name, value, expected):
    with pytest.raises(OptionError, match=rf"^{name} must be {expected}; got {value!r}"):
        _refine(**{name: value})


def test_numbers_as_strings_say_so():
    with pytest.raises(OptionError, match="numbers are not given as strings"):
        _refine(steps="10")


def test_int_for_float_literals_and_ranges():
    assert DDLSOptions(step_size=1).step_size == 1  # int accepted for a float field
    with pytest.raises(OptionError, match="d_output must be one of logit, prob, critic; got .score."):
        DDLSOptions(d_output="score")
    with pytest.raises(OptionError, match='prior must be "normal" or "uniform"; got .laplace.'):
        DDLSOptions(prior="laplace")
    with pytest.raises(OptionError, match="step_size must be > 0; got 0"):
        DDLSOptions(step_size=0)
    with pytest.raises(OptionError, match="target_accept must be < 1; got 1.5"):
        DDLSOptions(target_accept=1.5)
    with pytest.raises(OptionError, match="adapt_steps needs mala=True"):
        DDLSOptions(adapt_steps=3)
    with pytest.raises(OptionError, match="on_divergence must be one of raise, warn, keep"):
        options.EngineOptions(on_divergence="ignore")
    with pytest.raises(OptionError, match="max_diverged_fraction must be <= 1"):
        options.EngineOptions(max_diverged_fraction=2.0)
    with pytest.raises(dataclass_frozen_error()):
        DDLSOptions().steps = 3


def dataclass_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_parse_cli_options_by_declared_types():
    assert samplers.parse_cli_options("ddls", ["mala=false"]) == {"mala": False}
    got = samplers.parse_cli_options(
        "ddls",
        [
            "mala=yes",
            "steps=10",
            "step_size=0.5",
            "noise_scale=none",
            "d_output=critic",
            "batch_size=auto",
            "progress=0",
        ],
    )
    assert got == dict(
        mala=True, steps=10, step_size=0.5, noise_scale=None, d_output="critic", batch_size="auto", progress=False
    )
    assert type(got["step_size"]) is float and type(got["steps"]) is int
    assert samplers.parse_cli_options("dot", ["k_eff=2"]) == {"k_eff": 2}
    assert samplers.parse_cli_options("ddls", ["batch_size=64"]) == {"batch_size": 64}


@pytest.mark.parametrize(
    "pair,match",
    [
        ("mala=maybe", r"option mala must be bool; got 'maybe'"),
        ("steps=ten", r"option steps must be int; got 'ten'"),
        ("steps=none", r"option steps must be int; got 'none'"),
        ("d_output=score", r"option d_output must be one of logit, prob, critic; got .score."),
        ("step_size=-1", r"step_size must be > 0; got -1"),
        ("stepsize=0.1", r'method "ddls" got unknown option\(s\) stepsize. Did you mean "step_size"\?'),
        ("steps", r"expects KEY=VALUE"),
    ],
)
def test_parse_cli_options_errors(pair, match):
    with pytest.raises(OptionError, match=match):
        samplers.parse_cli_options("ddls", [pair])


def test_unknown_method_and_option_suggestions():
    assert options.suggest("ddsl", ["ddls", "dot", "mh"]) == ' Did you mean "ddls"?'
    assert options.suggest("zzz", ["ddls"]) == ""
    with pytest.raises(OptionError, match='Unknown method "ddsl".*Did you mean "ddls"'):
        samplers.parse_cli_options("ddsl", [])
    with pytest.raises(OptionError, match='Did you mean "ddls"'):
        lf.refine(None, None, torch.zeros(2, 2), method="ddsl")
    with pytest.raises(OptionError, match=r'unknown option\(s\) stepsize.*Did you mean "step_size"'):
        _refine(stepsize=0.1)


def test_methods_list_fields_types_help_and_needs():
    ms = lf.methods()
    f = {x["name"]: x for x in ms["ddls"].fields}
    assert f["mala"] == dict(name="mala", type="bool", default=False, help=f["mala"]["help"]) and f["mala"]["help"]
    assert f["noise_scale"]["type"] == "float or None"
    assert f["batch_size"]["type"] == 'int or "auto" or None'
    assert "on_divergence" in f and "chain_offset" in f
    assert "compile" not in {x["name"] for x in ms["mh"].fields}  # no speed options without gradients
    assert ms["dflow"].needs.discriminator == ("D(x, t)",)
    assert ms["ddls"].needs.generator == "required"
    for m in ms.values():
        d = json.loads(json.dumps(m.to_dict()))
        assert d["fields"] and d["needs"] and all(x["help"] for x in d["fields"])
    assert samplers.describe("ddls") == [dict(x) for x in ms["ddls"].fields]


def test_generated_signature_and_docstring():
    import inspect

    from latentflow.samplers.ddls import ddls

    sig = inspect.signature(ddls)
    assert list(sig.parameters)[:3] == ["G", "D", "z"]
    assert sig.parameters["step_size"].default == 0.003
    assert sig.parameters["step_size"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "step_size (float, default 0.003)" in ddls.__doc__


def test_cli_sequences_generator_type_and_listing():
    assert samplers.parse_cli_options("dg_langevin", ["sigmas=2,1,0.5"]) == {"sigmas": [2.0, 1.0, 0.5]}
    with pytest.raises(OptionError, match="generator must be Generator or int or None; got 'seed'"):
        options.EngineOptions(generator="seed")
    with pytest.raises(OptionError, match=r"got unknown option\(s\) generator"):
        samplers.parse_cli_options("ddls", ["generator=3"])
    with pytest.raises(OptionError, match="callback must be Callable or None"):
        options.EngineOptions(callback=3)


def test_one_key_value_parser_types_by_declaration_else_json():
    assert options.parse_pairs(["a=1", "b-c=x", "d=[1, 2]", "e=true"]) == {"a": 1, "b_c": "x", "d": [1, 2], "e": True}
    assert options.parse_pairs(["lr=1e-3", "name=123"], {"lr": float, "name": str}) == {"lr": 0.001, "name": "123"}
    assert options.parse_pairs(["fid=12.5"], float) == {"fid": 12.5}
    with pytest.raises(OptionError, match="--metric fid must be float; got 'x'"):
        options.parse_pairs(["fid=x"], float, name="--metric")
    with pytest.raises(OptionError, match="--set expects KEY=VALUE; got 'lr'"):
        options.parse_pairs(["lr"], name="--set")
    from latentflow.app.options import parse_config_options
    from latentflow.train import get_trainer

    Config, _ = get_trainer("gan")
    got = parse_config_options(Config, ["steps=10", "data=grid25", "betas=[0.4, 0.9]", "data_root=none"])
    assert got == {"steps": 10, "data": "grid25", "betas": [0.4, 0.9], "data_root": None}


def test_one_suggest_for_every_unknown_name():
    from latentflow import errors

    assert options.suggest is errors.suggest
    with pytest.raises(lf.ManifestError, match='Did you mean "mlp_g"'):
        lf.nets.build("mlp_gg")
