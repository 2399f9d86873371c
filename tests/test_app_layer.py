"""The app layer's place in the import structure (measured from source by tools/import_layers.py):
only the CLI and the facade import ``latentflow.app``; the CLI imports nothing else of the library;
the app's modules stay under 300 lines; ``import latentflow.cli`` stays light."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layers():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import import_layers
    finally:
        sys.path.pop(0)
    mods = import_layers.modules()
    return import_layers, mods, {m: import_layers.imports_of(m, p, mods) for m, p in mods.items()}


def test_only_the_cli_and_the_facade_import_the_app_layer(layers):
    L, mods, deps = layers
    importers = {
        m
        for m, d in deps.items()
        if not m.startswith("latentflow.app")
        and any(x == "latentflow.app" or x.startswith("latentflow.app.") for x in d)
    }
    assert {L.unit(m) for m in importers} <= {"cli", "latentflow"}, importers
    assert "latentflow.cli" in importers
    cli_deps = {L.unit(x) for m, d in deps.items() if L.unit(m) == "cli" for x in d}
    assert cli_deps == {"app", "cli"}, cli_deps  # the command line imports nothing of the library but app
    assert not any(L.unit(x) == "app" for x in deps["latentflow.stream"])


def test_app_modules_are_small(layers):
    _, mods, _ = layers
    sizes = {m: len(p.read_text().splitlines()) for m, p in mods.items() if m.startswith("latentflow.app")}
    # the package-wide rule: no module within 10 % of the 400-line cap (tools/import_layers.py)
    assert len(sizes) >= 8 and max(sizes.values()) <= 360, sizes


def test_cli_import_is_light():
    code = (
        "import sys, latentflow.cli; heavy = [m for m in ('torch_fidelity', 'torchvision', 'matplotlib', "
        "'scipy', 'huggingface_hub') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
