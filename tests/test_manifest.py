"""The shipped manifest is well formed, its bundled files exist with the pinned SHA-256, and malformed
entries are refused with a ManifestError that names the entry and the field."""

from __future__ import annotations

import copy
import hashlib
from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml

from latentflow.errors import ManifestError
from latentflow.models import get_entry, list_models
from latentflow.models.manifest import ROLES, load_manifest, parse_manifest

REPO = Path(__file__).resolve().parents[1]
PACKAGED = Path(str(resources.files("latentflow").joinpath("checkpoints", "checkpoints_manifest.yaml")))


@pytest.fixture(autouse=True)
def _keep_global_rng():
    with torch.random.fork_rng(devices=[]):
        yield


def _raw():
    return yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))


def test_packaged_manifest_parses_and_has_schema_1():
    raw = _raw()
    assert raw["schema"] == 1
    entries = load_manifest(PACKAGED)
    assert sorted(entries) == list_models()
    assert "sngan-cifar" in entries


def test_root_symlink_points_to_packaged_manifest():
    link = REPO / "checkpoints_manifest.yaml"
    assert link.is_symlink()
    assert link.resolve() == PACKAGED.resolve()


def test_every_bundled_file_exists_with_matching_sha256_and_size():
    checked = 0
    for name in list_models():
        e = get_entry(name)
        if e.source["kind"] != "bundled":
            continue
        for role in ROLES:
            f = e.files[role]
            p = Path(str(resources.files("latentflow").joinpath("checkpoints", *f.path.split("/"))))
            assert p.is_file(), f"{name}.{role}: {p} missing"
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256, f"{name}.{role}: sha256 mismatch"
            if f.bytes is not None:
                assert p.stat().st_size == f.bytes, f"{name}.{role}: size mismatch"
            checked += 1
    n_bundled = sum(get_entry(n).source["kind"] == "bundled" for n in list_models())
    assert checked == 2 * n_bundled


def test_every_entry_builds_and_matches_its_latent_and_output():
    from latentflow.models.loading import build

    for name in list_models():
        e = get_entry(name)
        G, D = build(e.arch["G"]).eval(), build(e.arch["D"]).eval()
        y = (torch.tensor([0, 1]),) if getattr(G, "num_classes", 0) else ()  # class-conditional: G(z, y), D(x, y)
        with torch.no_grad():
            x = G(torch.zeros(2, e.latent_dim), *y)
            d = D(x, *y)
        if e.output["shape"] is not None:
            assert list(x.shape[1:]) == e.output["shape"], name
        assert d.shape in ((2,), (2, 1)), name


def test_hub_entries_pin_a_commit_and_unhashed_entries_are_unverified():
    for name in list_models():
        e = get_entry(name)
        if e.source["kind"] == "hub":
            assert len(e.source["revision"]) == 40
        if any(e.files[r].sha256 is None for r in ROLES):
            assert e.verified is False


def test_studiogan_cifar_entry_names_studiogan_files():
    # sngan-cifar is now the unconditional xyfJASON model of Che et al. 2020 (tests/test_cifar_hub.py);
    # StudioGAN's conditional SN-GAN has its own entry
    e = get_entry("studiogan-sngan-cifar10")
    assert e.source["repo_id"] == "Mingguksky/PyTorch-StudioGAN"
    assert e.files["G"].path.endswith(".pth") and "model=G-" in e.files["G"].path
    assert e.files["D"].path.endswith(".pth") and "model=D-" in e.files["D"].path
    assert e.arch["G"].name == "studiogan_resnet32_g" and e.latent_dim == 128
    assert e.sampling["ddls"]["step_size"] > 0


def test_unknown_model_lists_available_names():
    with pytest.raises(ManifestError, match=r'Unknown model "nope"\. Available: .*sngan-cifar'):
        get_entry("nope")


# -------------------------------------------------------------------------------------------------
# malformed entries
# -------------------------------------------------------------------------------------------------

GOOD = {
    "source": {"kind": "bundled"},
    "files": {
        "G": {"path": "toy_G.safetensors", "sha256": "a" * 64, "bytes": 10},
        "D": {"path": "toy_D.safetensors", "sha256": "b" * 64, "bytes": 10},
    },
    "arch": {"G": {"name": "mlp_g", "kwargs": {"latent_dim": 2}}, "D": {"name": "mlp_d"}},
    "latent": {"dim": 2, "prior": "normal"},
    "output": {"shape": [2], "range": None},
    "d_output": "critic",
    "license": "MIT",
    "sampling": {"ddls": {"steps": 10, "step_size": 0.01}},
}


def _doc(mutate):
    e = copy.deepcopy(GOOD)
    mutate(e)
    return {"schema": 1, "models": {"toy": e}}


def test_good_entry_parses():
    entries = parse_manifest({"schema": 1, "models": {"toy": copy.deepcopy(GOOD)}})
    e = entries["toy"]
    assert e.verified is True and e.files["G"].sha256 == "a" * 64 and e.arch["D"].kwargs == {}
    assert e.spec()["d_output"] == "critic" and "files" not in e.spec()


def test_channels_and_size_become_a_shape():
    e = parse_manifest(_doc(lambda e: e.update(output={"channels": 3, "size": 32, "range": [-1, 1]})))["toy"]
    assert e.output == {"shape": [3, 32, 32], "range": [-1.0, 1.0]}


def _set(path, value):
    def mutate(e):
        cur = e
        for k in path[:-1]:
            cur = cur[k]
        if value is _DELETE:
            del cur[path[-1]]
        else:
            cur[path[-1]] = value

    return mutate


_DELETE = object()

BAD = [
    (_set(["d_output"], "sigmoid"), r'entry "toy"\.d_output: expected one of logit, prob, critic; got \'sigmoid\''),
    (_set(["files", "G", "sha256"], "xyz"), r"files\.G\.sha256: expected 64 lowercase hex"),
    (_set(["files", "G", "sha256"], None), r"verified: .*is true but files G have sha256: null|bundled files need"),
    (_set(["files", "D", "path"], "../evil.safetensors"), r"files\.D\.path: expected a relative path"),
    (_set(["files", "D"], _DELETE), r"files: missing field\(s\) D"),
    (_set(["arch", "G", "name"], "no_such_arch"), r'arch\.G\.name: unknown architecture "no_such_arch"'),
    (_set(["latent", "prior"], "laplace"), r"latent\.prior: expected one of normal, uniform"),
    (_set(["latent", "dim"], 0), r"latent\.dim: expected an integer >= 1; got 0"),
    (_set(["output", "range"], [1, -1]), r"output\.range: expected \[low, high\]"),
    (_set(["colour"], "blue"), r"unknown field\(s\) colour"),
    (_set(["source"], {"kind": "ftp"}), r"source\.kind: expected one of bundled, hub, url; got 'ftp'"),
    (_set(["source"], {"kind": "local", "root": "/"}), r"source\.kind: expected one of bundled, hub, url"),
    (
        _set(["source"], {"kind": "hub", "repo_id": "a/b", "revision": "main"}),
        r"revision: expected a full 40-hex commit",
    ),
    (_set(["source"], {"kind": "hub", "repo_id": "nobody", "revision": "0" * 40}), r"repo_id: expected owner/repo"),
    (_set(["source"], {"kind": "url", "base_url": "http://x"}), r"base_url: expected an https:// URL"),
    (_set(["sampling"], {"dddls": {}}), r"sampling\.dddls: unknown method"),
    (_set(["sampling"], {"ddls": {"stepz": 1}}), r"sampling\.ddls: unknown option\(s\) stepz"),
    (_set(["verified"], "yes"), r"verified: expected true or false"),
]


@pytest.mark.parametrize("mutate,msg", BAD)
def test_bad_entries_raise_manifest_error(mutate, msg):
    with pytest.raises(ManifestError, match=msg):
        parse_manifest(_doc(mutate))


def test_unhashed_hub_entry_must_not_claim_verified():
    def mutate(e):
        e["source"] = {"kind": "hub", "repo_id": "a/b", "revision": "0" * 40}
        e["files"]["G"]["sha256"] = None
        e["verified"] = True

    with pytest.raises(ManifestError, match=r"verified: is true but files G have sha256: null"):
        parse_manifest(_doc(mutate))
    ok = parse_manifest(_doc(lambda e: (mutate(e), e.update(verified=False))))
    assert ok["toy"].verified is False


def test_bad_documents(tmp_path):
    with pytest.raises(ManifestError, match=r"manifest\.schema: expected 1; got 2"):
        parse_manifest({"schema": 2, "models": {}})
    with pytest.raises(ManifestError, match=r"manifest: missing field\(s\) schema"):
        parse_manifest({"models": {}})
    with pytest.raises(ManifestError, match=r"model names are lowercase"):
        parse_manifest({"schema": 1, "models": {"Bad Name": copy.deepcopy(GOOD)}})
    assert parse_manifest({"schema": 1, "models": None}) == {}
    p = tmp_path / "m.yaml"
    p.write_text("schema: 1\nmodels: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(p)
