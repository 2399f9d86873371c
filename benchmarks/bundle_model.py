"""Copy a trained G/D pair into the package as bundled files and print its manifest entry.

    python benchmarks/bundle_model.py runs/grid25/best --name grid25-wgangp --dataset grid25 \
        --recipe "python benchmarks/train_toy2d.py --data grid25 ..." --sampling '{"ddls": {"steps": 100}}'

The printed YAML goes into latentflow/checkpoints/checkpoints_manifest.yaml (hashes and sizes included).
"""

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import latentflow


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("--name", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--sampling", default="{}")
    p.add_argument("--citation", default="Che et al. 2020 (DDLS), §5.1 setup; trained by latentflow")
    a = p.parse_args(argv)
    src = Path(a.src)
    spec = json.loads((src / "latentflow.json").read_text())
    dest = Path(latentflow.__file__).parent / "checkpoints"
    files = {}
    for role in ("G", "D"):
        target = dest / f"{a.name}_{role}.safetensors"
        shutil.copyfile(src / f"{role}.safetensors", target)
        files[role] = {"path": target.name, "sha256": sha256(target), "bytes": target.stat().st_size}
    arch = spec["arch"]
    entry = {
        "source": {"kind": "bundled"},
        "files": files,
        "arch": arch,
        "latent": spec["latent"],
        "output": {"shape": [2], "range": None},
        "dataset": a.dataset,
        "d_output": spec["d_output"],
        "license": "MIT",
        "citation": a.citation,
        "recipe": a.recipe,
        "verified": True,
        "sampling": json.loads(a.sampling),
    }
    print(f"  {a.name}:")
    for k, v in entry.items():
        print(f"    {k}: {json.dumps(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
