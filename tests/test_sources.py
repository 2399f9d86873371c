"""latentflow.models.sources: huggingface_hub's own exceptions come back as one-line latentflow errors
with a hint (offline without a cache, repo, revision or file not found)."""

from __future__ import annotations

import pytest

hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import errors as hf_errors  # noqa: E402

from latentflow.errors import LatentflowError, ManifestError  # noqa: E402
from latentflow.models import sources  # noqa: E402


def _raise(cls):
    err = cls.__new__(cls)  # HF's HTTP errors want a response object; the type is what counts
    Exception.__init__(err, "from huggingface_hub")

    def fake(**kwargs):
        raise err

    return fake


@pytest.mark.parametrize(
    "cls,kind,msg",
    [
        (
            hf_errors.LocalEntryNotFoundError,
            LatentflowError,
            r'not in the local Hugging Face cache .*fetch it once with `hf download o/r "G\.safetensors" --revision abc`',
        ),
        (hf_errors.RepositoryNotFoundError, ManifestError, r'repo "o/r" does not exist or is private'),
        (hf_errors.RevisionNotFoundError, ManifestError, r'revision "abc" does not exist in the repo'),
        (hf_errors.EntryNotFoundError, ManifestError, r"the repo has no such file at that revision"),
    ],
)
def test_hf_errors_become_one_line_latentflow_errors(monkeypatch, cls, kind, msg):
    monkeypatch.setattr(hub, "hf_hub_download", _raise(cls))
    monkeypatch.setattr(sources, "_hub_unreachable", lambda: None)  # as if online: hf_hub_download answers
    with pytest.raises(kind, match=msg) as ei:
        sources.hf_download("o/r", "G.safetensors", "abc")
    assert "\n" not in str(ei.value) and isinstance(ei.value.__cause__, cls)


def test_parse_hf_ref():
    assert sources.parse_hf_ref("hf:o/r@v1") == ("o/r", "v1")
    assert sources.parse_hf_ref("hf:o/r") == ("o/r", None)
    with pytest.raises(ManifestError, match="hf:owner/repo"):
        sources.parse_hf_ref("hf:o")
