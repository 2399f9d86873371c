"""The model card of an exported pair: ``README.md`` with Hugging Face Hub front matter.

The front matter (YAML between ``---`` lines) holds ``library_name: latentflow``, ``tags``, ``license``
(lower-cased, as the Hub's license ids are; ``other`` when unknown), ``datasets`` where the model names
one, the recommended sampler settings under ``sampling:`` (``latentflow sample`` reads the same block from
``latentflow.json``) and, when measured metrics are given, ``model-index`` entries (the Hub's place for
results: one ``{type, value, name}`` per metric) plus the same numbers under ``latentflow_metrics``.
The body says how to load and sample the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from pathlib import Path

from .._io import atomic_write_text
from ..errors import OptionError

__all__ = ["CARD_FILE", "card_text", "write_card", "read_front_matter"]

CARD_FILE = "README.md"
BASE_TAGS = ("latentflow", "gan", "discriminator-driven-sampling")


def _metrics(metrics: Mapping | None) -> dict:
    out = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
            raise OptionError(f"metrics: expected finite numbers by name (e.g. {{'fid': 12.3}}); got {k}={v!r}")
        out[str(k)] = float(v)
    return out


def _images(spec: Mapping) -> bool:
    shape = (spec.get("output") or {}).get("shape")
    return isinstance(shape, (list, tuple)) and len(shape) == 3


def card_text(spec: Mapping, *, metrics: Mapping | None = None, tags=None, repo_id: str | None = None) -> str:
    """The ``README.md`` text of a pair with ``spec`` (its ``latentflow.json`` content)."""
    import yaml

    name = str(spec.get("name") or "latentflow-model")
    dataset = spec.get("dataset")
    measured = _metrics(metrics)
    all_tags = list(dict.fromkeys([*BASE_TAGS, *([str(dataset)] if dataset else []), *(tags or [])]))
    front: dict = {
        "library_name": "latentflow",
        "tags": all_tags,
        "license": str(spec.get("license") or "other").lower(),
    }
    if dataset:
        front["datasets"] = [str(dataset)]
    front["sampling"] = dict(spec.get("sampling") or {})
    if measured:
        front["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": (
                            {"type": "unconditional-image-generation", "name": "Image generation"}
                            if _images(spec)
                            else {"type": "other", "name": "Sampling"}
                        ),
                        "dataset": {"name": str(dataset or "unknown"), "type": str(dataset or "unknown")},
                        "metrics": [{"type": k, "value": v, "name": k} for k, v in measured.items()],
                    }
                ],
            }
        ]
        front["latentflow_metrics"] = measured
    ref = f"hf:{repo_id}" if repo_id else "hf:OWNER/REPO"
    body = [
        f"# {name}",
        "",
        "A generator / discriminator pair in the [latentflow](https://pypi.org/project/latentflow/) layout "
        "(`G.safetensors`, `D.safetensors`, `latentflow.json`).",
        "",
        "```bash",
        f"latentflow sample --model {ref} --method ddls",
        "```",
        "",
        "```python",
        "import latentflow",
        f'pair = latentflow.load("{ref}")',
        "```",
        "",
    ]
    if spec.get("citation"):
        body += [f"Citation: {spec['citation']}", ""]
    if spec.get("recipe"):
        body += [f"Recipe: {spec['recipe']}", ""]
    if measured:
        body += ["| metric | value |", "|---|---|", *[f"| {k} | {v:.6g} |" for k, v in measured.items()], ""]
    fm = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    return f"---\n{fm}---\n\n" + "\n".join(body)


def write_card(folder: str | Path, spec: Mapping, **kw) -> Path:
    """Write ``folder/README.md`` (atomically); returns its path."""
    path = Path(folder) / CARD_FILE
    atomic_write_text(path, card_text(spec, **kw))
    return path


def read_front_matter(text: str) -> dict:
    """The YAML front matter of a card's text (``{}`` when it has none)."""
    import yaml

    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    if end < 0:
        raise OptionError("card: expected front matter closed by a '---' line; found none")
    return yaml.safe_load(text[4 : end + 1]) or {}
