"""Where checkpoint files come from: files bundled with the package, the Hugging Face Hub (a thin adapter
over ``huggingface_hub.hf_hub_download``, its cache and ``HF_HUB_OFFLINE``), https URLs (streamed into the
cache, renamed into place only when complete) and local folders.

The Hub adapter translates huggingface_hub's own exceptions into latentflow's, each with a one-line hint:
offline without a cached copy, repository not found, revision not found, file not found. A file not in
the Hub cache is downloaded only after one TCP connection to the Hub's host succeeds (a few ms online):
without a network huggingface_hub would retry for about 30 s, logging each try, before its error; here
the error comes at once (skipped behind an HTTP(S) proxy, which may reach the Hub where this machine
cannot resolve it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
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
            LocalEntryNotFoundError,
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
    cached = _hf_cached(repo, filename, revision)
    if cached is not None:
        return cached
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    unreachable = None if offline else _hub_unreachable()
    if unreachable is not None:
        raise LatentflowError(
            f"{where} is not in the local Hugging Face cache and cannot be downloaded now (no network: "
            f"{unreachable}); fetch it once with {_fetch_command(repo, filename, revision)} and load again"
        )
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


def _hf_cached(repo: str, filename: str, revision: str | None) -> Path | None:
    """The Hub cache's copy of a file, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(repo, filename, revision=revision)
    except Exception:  # noqa: BLE001  (a malformed repo id or revision: hf_hub_download says what is wrong)
        return None
    return Path(hit) if isinstance(hit, str) and os.path.isfile(hit) else None


#: seconds the connection to the Hub's host may take before the network counts as absent
HUB_CONNECT_TIMEOUT = 5.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _hub_unreachable(timeout: float = HUB_CONNECT_TIMEOUT) -> str | None:
    """``None`` when a TCP connection to the Hub endpoint's host opens (or a proxy is configured, which this
    check cannot see through); else why not, in one line (no name resolution, connection refused, ...)."""
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    try:
        from huggingface_hub import constants

        endpoint = str(constants.ENDPOINT)
    except (ImportError, AttributeError):
        endpoint = "https://huggingface.co"
    u = urlparse(endpoint)
    host, port = u.hostname or "huggingface.co", u.port or (80 if u.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{host}:{port} cannot be reached: {e.strerror or e}"
    return None


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
    p: Path | None
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
