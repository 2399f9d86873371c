"""latentflow.models.table: the ``checkpoints`` column hashes the files on disk against the manifest or
the pins (verified / pinned / unpinned / mismatch / not downloaded)."""

from __future__ import annotations

import hashlib

import pytest

from latentflow.models import model_rows, models_table
from latentflow.models.manifest import validate_entry
from latentflow.models.pins import pin, pin_key
from latentflow.models.sources import _url_cache_path
from latentflow.models.table import CHECKPOINT_STATES, checkpoint_state

BASE = "https://example.org/models"
G_BYTES, D_BYTES = b"generator bytes", b"discriminator bytes"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "cache"))


def _entry(g_sha=None, d_sha=None):
    raw = {
        "source": {"kind": "url", "base_url": BASE},
        "files": {"G": {"path": "g.bin", "sha256": g_sha}, "D": {"path": "d.bin", "sha256": d_sha}},
        "arch": {"G": {"name": "mlp_g"}, "D": {"name": "mlp_d"}},
        "latent": {"dim": 2},
        "output": {"shape": [2]},
        "d_output": "critic",
        "verified": bool(g_sha and d_sha),
    }
    return validate_entry("toy", raw)


def _put(name: str, data: bytes):
    p = _url_cache_path(f"{BASE}/{name}")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_states_from_the_files_themselves():
    hashed = _entry(_sha(G_BYTES), _sha(D_BYTES))
    assert checkpoint_state(hashed) == "not downloaded"
    _put("g.bin", G_BYTES)
    assert checkpoint_state(hashed) == "not downloaded"  # D is still missing
    _put("d.bin", D_BYTES)
    assert checkpoint_state(hashed) == "verified"
    _put("d.bin", D_BYTES + b"!")  # the manifest has a hash; the file differs
    assert checkpoint_state(hashed) == "mismatch"

    unhashed = _entry()
    _put("d.bin", D_BYTES)
    assert checkpoint_state(unhashed) == "unpinned"
    pin(pin_key(unhashed, "G"), _sha(G_BYTES))
    pin(pin_key(unhashed, "D"), _sha(D_BYTES))
    assert checkpoint_state(unhashed) == "pinned"
    _put("g.bin", G_BYTES + b"!")  # changed after it was pinned
    assert checkpoint_state(unhashed) == "mismatch"


def test_model_rows_extend_models_table():
    rows, base = model_rows(), models_table()
    assert [r["name"] for r in rows] == [r["name"] for r in base]
    for r, b in zip(rows, base):
        assert {k: r[k] for k in b} == b and r["checkpoints"] in CHECKPOINT_STATES
    bundled = next(r for r in rows if r["name"] == "grid25-wgangp")
    assert bundled["checkpoints"] == "verified" and bundled["dataset"] == "grid25"
