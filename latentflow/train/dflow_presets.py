"""Named Discriminator Flow recipes: ``latentflow.train.dflow.preset(name, **overrides)`` or
``latentflow train dflow --preset NAME``. Data only: the fields of ``DFlowConfig`` (the Fashion-MNIST CPU recipes
share most of theirs)."""


def _fmnist_cpu(**fields) -> dict:
    """The fields the Fashion-MNIST CPU recipes share (a 28x28 ``tconv_d`` critic of width 32 and frequency
    scale 1, IPM, 32 flow steps whose trajectories train D 8 times, uniform times, batch 64, linearly
    decaying lr), then ``fields``: a fresh dict (and ``arch_kwargs``) on each call."""
    return dict(
        data="fashion-mnist",
        arch="tconv_d",
        arch_kwargs={"channels": 1, "size": 28, "ch": 32, "freq_scale": 1.0},
        loss="ipm",
        flow_steps=32,
        reuse=8,
        time_sampling="uniform",
        batch_size=64,
        lr_schedule="linear",
        **fields,
    )


# Named recipes: ``DFlowConfig(**PRESETS[name])`` (``preset(name, **overrides)``).
# * "fmnist-cpu": Fashion-MNIST 28x28 on one CPU thread, about 25 CPU-minutes: x_0 from a Gaussian fitted
#   to the training images, IPM + GP 0.33, η = 4, lr 4e-4 with linear decay: FID-FMNIST 57.8 (2,000
#   samples; the bundled DCGAN: 85.0). results/trainers_fmnist/experiments.md has the runs behind it.
# * "fmnist-cpu-normal": the previous recipe from x_0 ~ N(0, I) (seed 000's prior), about 9.5 CPU-minutes:
#   FID-FMNIST 190.
# * "mnist32-seed000": Franceschi et al. 2023, Table 4, MNIST padded to 32x32 (IPM, GP 0.04 centred at 0, η = 2, N = 64,
#   DCGAN critic of width 64 with orthogonal init gain 1.41, Fourier time embedding of size 128 and
#   frequency scale 16, batch 128, 200k Adam steps at 2e-4, betas (0.5, 0.999)); a GPU config, never run
#   here. ``data="mnist32"`` is MNIST zero-padded to 32x32, read from the IDX files in ``data_root`` or
#   ``$LATENTFLOW_MNIST`` (latentflow does not download it).
PRESETS: dict[str, dict] = {
    "fmnist-cpu": _fmnist_cpu(prior="gaussian", gp_weight=0.33, eta=4.0, steps=14_000, lr=4e-4),
    "fmnist-cpu-normal": _fmnist_cpu(eta=2.0, steps=5000, lr=2e-4),
    "mnist32-seed000": dict(
        data="mnist32",
        arch="tconv_d",
        arch_kwargs={
            "channels": 1,
            "size": 32,
            "ch": 64,
            "embed": "fourier",
            "n_freq": 64,
            "freq_scale": 16.0,
            "init": "orthogonal",
            "gain": 1.41,
        },
        loss="ipm",
        gp_weight=0.04,
        eta=2.0,
        flow_steps=64,
        reuse=1,
        time_sampling="grid",
        batch_size=128,
        steps=200_000,
        lr=2e-4,
        betas=(0.5, 0.999),
        ema=0.0,
        device="cuda",
    ),
}
