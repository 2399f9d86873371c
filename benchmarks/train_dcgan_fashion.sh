#!/usr/bin/env bash
# Rebuilds the bundled `dcgan-fashion` model (latentflow/checkpoints/dcgan-fashion_{G,D}.safetensors).
# Usage: benchmarks/train_dcgan_fashion.sh [OUT_DIR]   (default runs/dcgan-fashion; resumable)
# Needs Fashion-MNIST in /usr/share/datasets/fashion-mnist/ (Debian package) or --set data_root=...
# CPU, one thread (about 15 min on a shared 2-core machine). Then compare hashes:
#   sha256sum OUT_DIR/G.safetensors OUT_DIR/D.safetensors
# against files.{G,D}.sha256 of the dcgan-fashion entry in latentflow/checkpoints/checkpoints_manifest.yaml
# (done below). The tensors are bit-identical on CPU with one thread (checked on a 300-step prefix);
# the file bytes also carry the trainer's metadata (latentflow.train.gan.write_pair), so a hash mismatch
# with equal tensors means that metadata format changed, not the weights.
set -euo pipefail
OUT="${1:-runs/dcgan-fashion}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
latentflow train gan --data fashion-mnist --steps 6000 --batch-size 64 --seed 0 --device cpu \
  --set loss=ns --set n_critic=1 --set latent_dim=64 --set prior=normal \
  --set arch_g=dcgan28_g --set 'arch_g_kwargs={"latent_dim": 64, "ch": 32}' \
  --set arch_d=dcgan28_d --set 'arch_d_kwargs={"ch": 32}' \
  --set lr_g=2e-4 --set lr_d=2e-4 --set 'betas=[0.5, 0.999]' \
  --quiet --out "$OUT"

python - "$OUT" <<'PY'
import hashlib, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
import latentflow
from latentflow.models.resolve import resolve
out = Path(sys.argv[1])
entry = resolve("dcgan-fashion")
root = Path(latentflow.__file__).parent / "checkpoints"
for r in ("G", "D"):
    new = out / f"{r}.safetensors"
    h = hashlib.sha256(new.read_bytes()).hexdigest()
    a, b = load_file(str(new)), load_file(str(root / entry.files[r].path))
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"{r}: sha256 {'matches' if h == entry.files[r].sha256 else 'DIFFERS'} ({h}); tensors {'identical' if same else 'DIFFER'}")
PY
