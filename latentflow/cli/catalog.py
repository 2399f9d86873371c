"""``latentflow methods`` and ``latentflow models``: what the registry and the manifest hold."""

from __future__ import annotations

import json

import click

from .. import app


@click.command("methods")
@click.option("--json", "as_json", is_flag=True)
def methods_cmd(as_json):
    """List the samplers (plug-ins included) with what they need from the model, their options and defaults."""
    ms = app.list_methods()
    if as_json:
        click.echo(json.dumps({n: m.to_dict() for n, m in ms.items()}, indent=2))
        return
    for name, m in ms.items():
        click.echo(f"{name}: {m.summary}")
        click.echo(f"    needs: {m.needs.describe()}")
        for k, v in m.options.items():
            if k in ("generator", "callback", "progress", "batch_size"):
                continue
            click.echo(f"    {k} = {v!r}")


@click.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(as_json):
    """List the models of the manifest: source, offline availability, size, verification."""
    rows = app.models_table()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    click.echo("| name | source | offline | size | checkpoints |")
    click.echo("|---|---|---|---|---|")
    # checkpoints: the files on disk, hashed now: verified (manifest hash), pinned (hash pinned on this
    # machine's first download), not downloaded, unpinned, or mismatch
    for r in rows:
        size = r.get("size") or r.get("bytes")
        size_s = f"{size / 1e6:.2f} MB" if isinstance(size, (int, float)) and size else "?"
        state = r.get("checkpoints") or "?"
        click.echo(
            f"| {r['name']} | {r.get('source')} | {'yes' if r.get('offline') else 'no'} | {size_s} | "
            f"{state.upper() if state == 'mismatch' else state} |"
        )
    for r in rows:
        if r.get("advice"):
            click.echo(f"{r['name']}: a checkpoint does not match its SHA-256; {r['advice']}")
