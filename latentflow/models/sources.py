"""Where checkpoint files come from: files bundled with the package, the Hugging Face Hub (a thin adapter
over ``huggingface_hub.hf_hub_download``, its cache and ``HF_HUB_OFFLINE``), https URLs (streamed into the
cache, renamed into place only when complete) and local folders.

The Hub adapter translates huggingface_hub's own exceptions into latentflow's, each with a one-line hint:
offline without a cached copy, repository not found, revision not found, file not found.
"""

from __future__ import annotations

import hashlib
import logging
import os
from importlib import resources
from pathlib import Path

from .._io import atomic_path, cache_dir
from ..errors import LatentflowError, ManifestError
from .spec import ROLES

log = logging.getLogger("latentflow")

_CHUNK = 1 << 20

__all__ = ["parse_hf_ref", "hf_download", "fetch", "local_path", "is_available_offline"]


def parse_hf_ref(ref: str) -> tuple[str, str | None]:
    """``"hf:owner/repo@rev"`` -> ``("owner/repo", "rev")``; the revision is optional."""
    body = ref[3:]
    repo, _, rev = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ManifestError(f'a Hub ref must look like hf:owner/repo[@revision]; got "{ref}"')
    return repo, (rev or None)


def _fetch_command(repo: str, filename: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f'`hf download {repo} "{filename}"{rev}` (older huggingface_hub: `huggingface-cli download`)'


def _hf_errors():
    try:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub.utils import (
            EntryNotFoundError,
            LocalEntryNotFoundError,  # type: ignore
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    return EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError


def hf_download(repo: str, filename: str, revision: str | None) -> Path:
    """``hf_hub_download(repo, filename, revision)``; HF's exceptions come back as latentflow errors with a hint."""
    try:
        from huggingface_hub import hf_hub_download

        EntryNotFound, LocalEntryNotFound, RepoNotFound, RevisionNotFound = _hf_errors()
    except ImportError as e:
        raise LatentflowError(
            "loading from the Hugging Face Hub needs huggingface_hub (pip install huggingface-hub)"
        ) from e
    where = f'file "{filename}" of Hugging Face repo "{repo}" at revision "{revision or "main"}"'
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    except LocalEntryNotFound as e:
        raise LatentflowError(
            f"{where} is not in the local Hugging Face cache and cannot be downloaded now (offline: "
            f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}, or no network); fetch it once with "
            f"{_fetch_command(repo, filename, revision)} and load again"
        ) from e
    except RevisionNotFound as e:
        raise ManifestError(f'{where}: revision "{revision}" does not exist in the repo') from e
    except EntryNotFound as e:
        raise ManifestError(f"{where}: the repo has no such file at that revision") from e
    except RepoNotFound as e:
        raise ManifestError(f'{where}: repo "{repo}" does not exist or is private (log in with `hf auth login`)') from e
    except OSError as e:  # network failures (requests/httpx errors subclass OSError or are wrapped in it)
        raise LatentflowError(
            f"{where} could not be downloaded ({e}); fetch it with {_fetch_command(repo, filename, revision)}"
        ) from e


def _hf_cached(repo: str, filename: str, revision: str) -> Path | None:
    """The Hub cache's copy of a file, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo, filename, revision=revision)
    return Path(hit) if isinstance(hit, str) else None


def _download_url(url: str, dest: Path) -> Path:
    """Stream ``url`` into a temporary file beside ``dest`` and rename it there when complete."""
    import urllib.request

    try:
        with atomic_path(dest, suffix=".part") as tmp:
            with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 (https only)
                for chunk in iter(lambda: r.read(_CHUNK), b""):
                    f.write(chunk)
    except OSError as e:
        raise LatentflowError(f"downloading {url} failed: {e}") from e
    return dest


def _bundled(path: str) -> Path:
    return Path(str(resources.files("latentflow").joinpath("checkpoints", *path.split("/"))))


def _url(entry, role: str) -> str:
    return f"{entry.source['base_url'].rstrip('/')}/{entry.files[role].path}"


def _url_cache_path(url: str) -> Path:
    return cache_dir() / "url" / hashlib.sha256(url.encode()).hexdigest()[:16] / url.rsplit("/", 1)[-1]


def local_path(entry, role: str) -> Path | None:
    """Where ``entry``'s ``role`` file is on disk now (package, Hub cache, URL cache, folder), or None."""
    src, f = entry.source, entry.files[role]
    kind = src["kind"]
    if kind == "bundled":
        p = _bundled(f.path)
    elif kind == "hub":
        p = _hf_cached(src["repo_id"], f.path, src["revision"])
    elif kind == "url":
        p = _url_cache_path(_url(entry, role))
    else:
        p = Path(src.get("root") or "") / f.path
    return p if p is not None and p.is_file() else None


def fetch(entry, role: str) -> Path:
    """A local path to ``entry``'s ``role`` file ("G", "D", or a trained model's "S"), downloading it if needed."""
    src, f = entry.source, entry.files[role]
    kind = src["kind"]
    if kind == "bundled":
        p = _bundled(f.path)
        if not p.is_file():
            raise ManifestError(f"bundled checkpoint {f.path} is missing from the installed package ({p})")
        return p
    if kind == "hub":
        return hf_download(src["repo_id"], f.path, src["revision"])
    if kind == "url":
        url = _url(entry, role)
        dest = _url_cache_path(url)
        if dest.is_file():
            return dest
        if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("LATENTFLOW_OFFLINE"):
            raise LatentflowError(
                f"{url} is not cached at {dest} and offline mode is on; download it there "
                f"(e.g. curl -L -o '{dest}' '{url}') or unset the offline variable"
            )
        log.info("downloading %s", url)
        return _download_url(url, dest)
    if kind == "local":
        p = Path(src.get("root") or "") / f.path
        if not p.is_file():
            raise ManifestError(f'{role} file {p} of model "{entry.name}" does not exist')
        return p
    raise ManifestError(f'unknown source kind "{kind}" for model "{entry.name}"')


def is_available_offline(entry) -> bool:
    """True when every file of ``entry`` is on disk already (bundled, in the Hub cache, or downloaded)."""
    roles = getattr(entry, "roles", ROLES)
    return all(local_path(entry, r) is not None for r in roles)
