"""latentflow.models.checkpoints: a pickled checkpoint is unpickled once (weights_only=True), its state dict
cached as safetensors keyed by the pickle's SHA-256, and read from the cache afterwards."""

from __future__ import annotations

import pytest
import torch

from latentflow._io import sha256_file
from latentflow.models import checkpoints as ck


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "cache"))


def test_pickle_is_read_once_then_from_the_safetensors_cache(tmp_path, monkeypatch):
    sd = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    p = tmp_path / "model=G.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, p)
    sha = sha256_file(p)
    first = ck.read_state_dict(p, sha)
    assert set(first) == {"w", "b"} and torch.equal(first["w"], sd["w"])
    cached = ck.converted_path(sha)
    assert cached.is_file() and cached.parent == tmp_path / "cache" / "converted"

    def no_unpickling(*a, **k):
        raise AssertionError("the pickle was read a second time")

    monkeypatch.setattr(ck, "read_pickle_weights_only", no_unpickling)
    second = ck.read_state_dict(p, sha)
    assert all(torch.equal(second[k], first[k]) for k in first)


def test_a_damaged_cache_entry_is_rebuilt(tmp_path):
    p = tmp_path / "m.pt"
    torch.save({"w": torch.ones(2)}, p)
    sha = sha256_file(p)
    ck.converted_path(sha).parent.mkdir(parents=True)
    ck.converted_path(sha).write_bytes(b"not safetensors")
    assert torch.equal(ck.read_state_dict(p, sha)["w"], torch.ones(2))
    assert torch.equal(ck.read_safetensors(ck.converted_path(sha))["w"], torch.ones(2))


def test_tied_weights_are_cached_too(tmp_path):
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    p = tmp_path / "tied.pt"
    torch.save({"a": w, "b": w}, p)  # two names, one storage: safetensors refuses shared tensors
    sd = ck.read_state_dict(p, sha256_file(p))
    assert torch.equal(sd["a"], sd["b"])
