"""The type every load returns: a generator, a discriminator, what is known about them, and any further
networks of a trained model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import rng
from ..errors import ManifestError, OptionError

__all__ = ["ModelPair"]


@dataclass(frozen=True, eq=False)
class ModelPair:
    """A loaded generator and discriminator (eval mode, no gradients) and what is known about them.

    ``meta`` holds ``name``, ``latent_dim``, ``prior``, ``d_output``, ``output_shape``, ``output_range``,
    ``sampling`` (recommended per-method options), ``verified``, ``source``, ``files`` (with the SHA-256
    actually read) and ``spec`` (what :func:`export` writes), and for every model ``roles`` (the networks
    loaded, e.g. ``["G", "D"]``), ``trainer`` (the ``latentflow train`` kind that wrote it, if known),
    ``d_conditioning`` (``"time"`` for ``D(x, t)``, ``"sigma"`` for ``D(x, σ)``, ``None`` for ``D(x)``) and
    ``x0`` (``{prior, std, shape}``: where a generator-free model's particles start; ``None`` with a generator).
    ``G, D, meta = pair`` unpacks it.

    Models from ``latentflow train`` that are not G/D pairs load into the same type: ``G`` is ``None`` for
    the generator-free Discriminator Flow (``dflow``) and noise-conditioned D (``dgd``), ``D`` is ``None``
    for Score GAN and FloWGAN. ``extra`` holds any further networks by role: Score GAN's ``"S"``, the
    denoiser ``S(x̃, σ)`` of the *generated* distribution (its score is ``(S(x̃, σ) - x̃)/σ²``), and a
    Discriminator Flow's fitted starting distribution ``"P"`` (``x0: {prior: gaussian}``).
    :meth:`initial_state` draws what ``refine(pair.G, pair.D, ·)`` starts from; :meth:`refine` runs a method
    with the model's recommended settings, as ``latentflow sample`` does.
    """

    G: Any
    D: Any
    meta: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.G, self.D, self.meta))

    @property
    def latent_dim(self) -> int:
        dim = self.meta.get("latent_dim")
        if dim is None:
            raise ManifestError(
                f'model "{self.meta.get("name")}" has no generator, so no latent; its samplers '
                f"start from x0 = {self.meta.get('x0')} (draw it with pair.initial_state(n))"
            )
        return int(dim)

    def initial_state(self, n: int, generator=None, device=None, dtype=None):
        """``n`` starting points for ``refine(pair.G, pair.D, ·)``: latents ``[n, latent_dim]`` from the prior
        when there is a generator, else particles ``x0 [n, *shape]`` as ``meta["x0"]`` says: ``std · N(0, I)``
        (prior ``normal``) or ``P(std · z)``, ``z ~ N(0, I)``, with the model's fitted prior network
        ``extra["P"]`` (prior ``gaussian``).
        ``device`` and ``dtype`` default to the models'; ``generator`` is a ``torch.Generator`` or an int seed."""
        import torch

        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise OptionError(f"n must be an int >= 1; got {n!r}")
        p = next(
            (
                q
                for m in (self.G, self.D, *self.extra.values())
                if isinstance(m, torch.nn.Module)
                for q in m.parameters()
            ),
            None,
        )
        device = device if device is not None else (p.device if p is not None else "cpu")
        dtype = dtype if dtype is not None else (p.dtype if p is not None else torch.float32)
        if self.G is not None:
            return rng.sample_latents(
                n, self.latent_dim, self.meta.get("prior") or "normal", generator=generator, device=device, dtype=dtype
            )
        x0 = self.meta.get("x0") or {}
        if not x0.get("shape"):
            raise ManifestError(f'model "{self.meta.get("name")}" has neither a generator nor an x0 shape')
        gen = rng.resolve(generator, device)
        z = float(x0.get("std", 1.0)) * rng.randn((n, *x0["shape"]), gen, device, dtype)
        if x0.get("prior") == "gaussian":
            P = self.extra.get("P")
            if P is None:
                raise ManifestError(
                    f'model "{self.meta.get("name")}" starts from a fitted Gaussian but has no P network'
                )
            where = P.mean.device  # the net stays where it was loaded; only its output moves
            with torch.no_grad():
                return P(z.reshape(n, -1).to(where)).to(device=device, dtype=dtype)
        return z

    @property
    def num_classes(self) -> int:
        """Classes of a class-conditional pair (``G(z, y)``, ``D(x, y)``), 0 when unconditional."""
        return int(self.meta.get("num_classes") or 0)

    def labels(self, n: int, class_label: int | None = None, generator=None, device=None):
        """Labels ``[n]`` (long) for ``refine(pair.G, pair.D, z, y=...)``: ``class_label`` for every sample, or
        uniform classes per sample (``None``) drawn as the samplers draw them (per-chain streams of ``generator``)."""
        import torch

        k = self.num_classes
        if k <= 0:
            raise ManifestError(f'model "{self.meta.get("name")}" is not class-conditional; it takes no labels')
        p = next((q for m in (self.G, self.D) if isinstance(m, torch.nn.Module) for q in m.parameters()), None)
        device = device if device is not None else (p.device if p is not None else "cpu")
        if class_label is None:
            return rng.sample_labels(n, k, generator=generator, device=device)
        if isinstance(class_label, bool) or not isinstance(class_label, int) or not 0 <= class_label < k:
            raise OptionError(f"class_label must be an int in [0, {k - 1}] or None; got {class_label!r}")
        return torch.full((n,), class_label, dtype=torch.long, device=device)

    def set_class(self, label) -> ModelPair:
        """Set the label that direct calls ``G(z)`` / ``D(x)`` WITHOUT labels use, on the networks that read a
        ``class_label`` attribute (the ``sngan_resnet32_*`` zoo classes); a thin way of fixing a constant ``y``
        for such calls. The samplers always pass labels: use ``refine(..., y=label)`` (or
        :meth:`labels`) there."""
        n = self.meta.get("num_classes") or 0
        if n <= 0:
            raise ManifestError(f'model "{self.meta.get("name")}" is not class-conditional; set_class does not apply')
        for m in (self.G, self.D):
            if getattr(m, "num_classes", 0):
                m.class_label = label
        return self

    def refine(
        self,
        z=None,
        method: str = "ddls",
        *,
        n: int | None = None,
        seed: int | None = None,
        generator=None,
        y=None,
        class_label: int | None = None,
        **overrides,
    ):
        """Run ``latentflow.refine(pair.G, pair.D, z, method, ...)`` with this model's recommended settings:
        ``meta["sampling"][method]`` (manifest entry or the folder's ``latentflow.json``), the model's
        ``d_output`` and prior where the method takes them, then ``overrides`` on top (a ``None`` override is a
        value, e.g. ``noise_scale=None``); the same merge as ``latentflow sample``
        (:func:`~latentflow.models.sampling_options`).

        ``z=None``: ``n`` starting points from the model's prior (:meth:`initial_state`: latents, or the
        particles ``x0`` of a generator-free model). ``seed`` (or a ``torch.Generator`` ``generator``) draws
        ``z``, the labels and the sampler's streams in that order, as ``latentflow sample --seed`` does, so
        ``pair.refine(n=64, method="ddls", seed=0)`` gives ``latentflow sample --num 64 --seed 0``'s samples.
        A class-conditional model gets ``y`` (labels ``[n]`` or one int), else ``class_label`` for every
        sample, else uniform labels per sample (:meth:`labels`). Returns the ``Result``."""
        import torch

        from .sampling import sampler, sampling_options
        from .validate import _method_table

        if seed is not None and generator is not None:
            raise OptionError("pass either seed or generator, not both")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise OptionError(f"seed must be an int or None; got {seed!r}")
            generator = torch.Generator("cpu").manual_seed(seed)
        elif generator is None or isinstance(generator, int):
            generator = torch.Generator("cpu").manual_seed(0 if generator is None else int(generator))
        table = _method_table() if _method_table is not None else {}
        if method not in table:
            raise OptionError(f'Unknown method "{method}". Available: {", ".join(sorted(table))}')
        if z is None:
            if n is None:
                raise OptionError("pass z (the starting points) or n (how many to draw from the prior)")
            z = self.initial_state(n, generator=generator)
        elif n is not None and n != z.shape[0]:
            raise OptionError(f"n must be None or z.shape[0] = {z.shape[0]} when z is given; got {n!r}")
        if y is None and self.num_classes > 0 and self.G is not None:
            y = self.labels(z.shape[0], class_label, generator=generator, device=z.device)
        elif class_label is not None and y is None:
            raise ManifestError(f'model "{self.meta.get("name")}" is not class-conditional; it takes no class_label')
        opts = sampling_options(method, self.meta, overrides, table[method], none_is_unset=False)
        return sampler()(self.G, self.D, z, method=method, generator=generator, y=y, **opts)
