import torch, sys
import latentflow
from latentflow.nets import build
from latentflow.data import load_fashion_mnist
from latentflow.metrics.fidelity import to_uint8
from latentflow.app.images_metrics import fmnist_row_metrics
torch.set_num_threads(1)
name = sys.argv[1]
ck = torch.load(f"{name}.pt", weights_only=True); a = ck["args"]
D = build("tconv_d", channels=1, size=28, ch=a["ch"], freq_scale=1.0); D.load_state_dict(ck["D"]); D.eval()
for p in D.parameters(): p.requires_grad_(False)
imgs = load_fashion_mnist("train")[0].float().div(127.5).sub(1)
P = build("gaussian_prior", shape=[1, 28, 28]).fit(imgs)
x0 = P(torch.randn(1000, 784, generator=torch.Generator().manual_seed(1234)))
for solver, steps in [("euler", s) for s in (8, 12, 16, 24, 32)] + [("heun", s) for s in (5, 7, 9, 10, 13, 17)]:
    r = latentflow.refine(None, D, x0, method="dflow", eta=a["eta"], steps=steps, loss="ipm", solver=solver, progress=False)
    fid = fmnist_row_metrics(to_uint8(r.x.clamp(-1, 1)), fid_only=True)[0]["fid_fmnist"]
    nfe = 2 * steps - 1 if solver == "heun" else steps
    print(f"{name} {solver} steps {steps} NFE {nfe} FID {fid:.1f}", flush=True)
