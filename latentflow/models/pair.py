"""The type every load returns: a generator, a discriminator, what is known about them, and any further
networks of a trained model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import rng
from ..errors import ManifestError, OptionError
from ..samplers import DEFAULT_METHOD

__all__ = ["ModelPair", "Start"]


class Start(NamedTuple):
    """Where the chains of a model start (:meth:`ModelPair.start`): ``kind`` is ``"generator"`` (``state``:
    latents ``z`` from the prior) or ``"x0"`` (``state``: a generator-free model's particles); ``y``: the
    labels of a class-conditional model, else None."""

    kind: str
    state: Any
    y: Any


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
        """Classes of a class-conditional pair (``G(z, y)``, ``D(x, y)``), 0 when unconditional: ``meta``'s
        ``num_classes``, else G's attribute of that name."""
        k = self.meta.get("num_classes") or getattr(self.G, "num_classes", 0)
        return k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else 0

    def labels(self, n: int, class_label: int | str | None = None, generator=None, device=None):
        """Labels ``[n]`` (long) for ``refine(pair.G, pair.D, z, y=...)``: ``class_label`` for every sample, or
        uniform classes per sample (``None`` or ``"random"``) drawn as the samplers draw them (per-chain streams
        of ``generator``). An unconditional model takes no class label (``OptionError``)."""
        import torch

        k = self.num_classes
        if k <= 0:
            raise OptionError(
                f'model "{self.meta.get("name")}" is not class-conditional (its G has no num_classes); it takes '
                f"no class label; got {class_label!r}"
            )
        device = device if device is not None else self._device()
        if class_label is None or class_label == "random":
            return rng.sample_labels(n, k, generator=generator, device=device)
        if isinstance(class_label, bool) or not isinstance(class_label, int) or not 0 <= class_label < k:
            raise OptionError(f'class_label must be an int in [0, {k - 1}] or "random"; got {class_label!r}')
        return torch.full((n,), class_label, dtype=torch.long, device=device)

    def _device(self):
        import torch

        p = next((q for m in (self.G, self.D) if isinstance(m, torch.nn.Module) for q in m.parameters()), None)
        return p.device if p is not None else "cpu"

    def start(self, n: int, *, generator=None, device=None, dtype=None, class_label: int | str | None = None) -> Start:
        """Where ``n`` chains of this model start, drawn from ``generator`` in this order: latents from the prior
        (:meth:`initial_state`), then labels for a class-conditional model (:meth:`labels`: ``class_label``,
        or uniform per sample); a generator-free model's chains start from ``x0`` (``meta["x0"]``) and take
        no label."""
        x = self.initial_state(n, generator=generator, device=device, dtype=dtype)
        if self.G is None:
            if class_label is not None and class_label != "random":
                raise OptionError(f"class {class_label!r} was given, but the model has no generator to condition")
            return Start("x0", x, None)
        if self.num_classes > 0:
            return Start("generator", x, self.labels(n, class_label, generator=generator, device=x.device))
        if class_label is not None and class_label != "random":
            self.labels(n, class_label)  # raises: not class-conditional
        return Start("generator", x, None)

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
        method: str = DEFAULT_METHOD,
        *,
        n: int | None = None,
        seed: int | None = None,
        generator=None,
        y=None,
        class_label: int | str | None = None,
        none_is_unset: bool = False,
        **overrides,
    ):
        """Run ``latentflow.refine(pair.G, pair.D, z, method, ...)`` with this model's recommended settings:
        ``meta["sampling"][method]`` (manifest entry or the folder's ``latentflow.json``), the model's
        ``d_output`` and prior where the method takes them, then ``overrides`` on top (a ``None`` override is a
        value, e.g. ``noise_scale=None``, unless ``none_is_unset``); the one path of ``latentflow sample``
        (:func:`~latentflow.models.sampling_options`).

        ``z=None``: ``n`` chains drawn by :meth:`start` (latents and labels, or the particles ``x0`` of a
        generator-free model). ``seed`` (or a ``torch.Generator`` ``generator``) draws ``z``, the labels and the
        sampler's streams in that order, as ``latentflow sample --seed`` does, so
        ``pair.refine(n=64, method="ddls", seed=0)`` gives ``latentflow sample --num 64 --seed 0``'s samples.
        A class-conditional model gets ``y`` (labels ``[n]`` or one int), else ``class_label`` for every
        sample, else uniform labels per sample (:meth:`labels`). ``calibration_a`` and ``calibration_b`` (in
        the block or the overrides) run the method on the calibrated D ``a · logit D(x) + b``
        (:func:`~latentflow.models.split_calibration`). Returns the ``Result``."""
        import torch

        from ..samplers import check_options, get, kernel
        from .sampling import sampling_options

        if seed is not None and generator is not None:
            raise OptionError("pass either seed or generator, not both")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise OptionError(f"seed must be an int or None; got {seed!r}")
            generator = torch.Generator("cpu").manual_seed(seed)
        elif generator is None or isinstance(generator, int):
            generator = torch.Generator("cpu").manual_seed(0 if generator is None else int(generator))
        kernel(method)  # an unknown method is refused before anything is drawn
        if z is None:
            if n is None:
                raise OptionError("pass z (the starting points) or n (how many to draw from the prior)")
            if y is None:
                _, z, y = self.start(n, generator=generator, class_label=class_label)
            else:
                z = self.initial_state(n, generator=generator)
        elif n is not None and n != z.shape[0]:
            raise OptionError(f"n must be None or z.shape[0] = {z.shape[0]} when z is given; got {n!r}")
        elif y is None and self.G is not None and (self.num_classes > 0 or class_label not in (None, "random")):
            y = self.labels(z.shape[0], class_label, generator=generator, device=z.device)
        D, opts = self.run_d(sampling_options(method, self.meta, overrides, none_is_unset=none_is_unset))
        check_options(method, opts)
        return get(method)(self.G, D, z, generator=generator, y=y, **opts)

    def run_d(self, opts: Mapping[str, Any]) -> tuple[Any, dict]:
        """``(D, options)`` a run with ``opts`` calls the sampler with: the model's D and ``opts``, or, where
        ``opts`` hold ``calibration_a`` and ``calibration_b``, the calibrated D ``a · logit D(x) + b`` (a logit,
        so ``d_output`` becomes ``"logit"``) and ``opts`` without those keys
        (:func:`~latentflow.models.split_calibration`)."""
        from .sampling import meta_get, split_calibration

        rest, cal = split_calibration(opts, "sampling options")
        if cal is None:
            return self.D, rest
        from ..calibration import CalibratedD

        if self.D is None:
            raise OptionError("calibration_a/calibration_b calibrate a discriminator, and the model has none")
        kind = rest.get("d_output") or meta_get(self.meta, "d_output") or "logit"
        if "d_output" in rest:
            rest["d_output"] = "logit"
        return CalibratedD(self.D, *cal, d_output=kind), rest
