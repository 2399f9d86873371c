"""Run under ``torchrun`` by tests/test_torchrun.py: a JSON job list on argv[1].

Jobs: ``{"kind": "sample", "out": DIR, "method": M, "num": N, "options": {...}}`` runs
``latentflow.app.sample_model`` (the process group comes from ``dist.init_from_env``);
``{"kind": "disk", "out": DIR, "n": N, "chunk": C, "options": {...}, "die_on_rank": r, "die_after": k}``
runs ``refine_to_disk`` on grid25-wgangp; ``{"kind": "train", "trainer": T, "cfg": {...}, "out": DIR,
"stop_after": k}`` trains (``stop_after``: stop after k steps, as a kill between checkpoints would), and rank ``r`` exits hard (``os._exit``, as a killed process)
when it is about to refine its block number ``k`` (counting its own blocks from 0).
"""

import json
import os
import sys

import torch

torch.set_num_threads(1)

from latentflow import dist  # noqa: E402


def main():
    jobs = json.loads(sys.argv[1])
    w = dist.init_from_env("gloo")
    assert w.size > 1, "run me under torchrun"
    for job in jobs:
        if job["kind"] == "sample":
            from latentflow.app import sample_model

            sample_model(
                "grid25-wgangp",
                job["method"],
                num=job["num"],
                seed=job.get("seed", 0),
                device="cpu",
                out=job["out"],
                options=job.get("options", {}),
                progress=False,
            )
        elif job["kind"] == "split":
            import latentflow as lf
            from latentflow.app.sample.sample_dist import refine_split

            pair = lf.load("grid25-wgangp")
            z = lf.sample_latents(job["n"], 2, generator=0)
            res = refine_split(pair.G, pair.D, z, job["method"], 0, progress=False, **job.get("options", {}))
            if w.main:
                from safetensors.torch import save_file

                out = {
                    "x": res.x.contiguous(),
                    **{
                        "info." + k: v.contiguous()
                        for k, v in res.info.items()
                        if isinstance(v, torch.Tensor) and v.dim() >= 1
                    },
                }
                save_file(
                    out,
                    job["out"],
                    metadata={k: str(res.info[k]) for k in ("n_G_forward", "n_D_backward") if k in res.info},
                )
        elif job["kind"] == "train":
            from latentflow.train import get_trainer, make_config

            Config, train = get_trainer(job["trainer"])
            train(
                make_config(Config, job["cfg"]),
                job["out"],
                progress=False,
                ckpt_every=job.get("ckpt_every", 1000),
                stop_after=job.get("stop_after"),
            )
        else:
            import latentflow as lf
            import latentflow.api as api
            from latentflow import stream

            if job.get("die_on_rank") == w.rank:
                real, seen = api.refine, [0]

                def refine(*a, **k):
                    if seen[0] == job["die_after"]:
                        os._exit(3)
                    seen[0] += 1
                    return real(*a, **k)

                api.refine = refine
            pair = lf.load("grid25-wgangp")
            stream.refine_to_disk(
                pair.G,
                pair.D,
                job["n"],
                "ddls",
                job["out"],
                chunk=job["chunk"],
                seed=0,
                progress=False,
                **job.get("options", {}),
            )
    # leaving the group: latentflow.dist's exit handler (gc, barrier, destroy)


if __name__ == "__main__":
    main()
