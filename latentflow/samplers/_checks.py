"""Checks at the samplers' boundary: the initial state, the speed options against the device, and a
two-row probe of G and D that says what shapes they take and return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..energy import DOutput, LatentEnergy, Prior, d_values
from ..errors import OptionError, ShapeError
from ..options import Options, field

#: ``autocast=`` values and the dtypes G and D are evaluated in.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_state(z, name: str = "z", *, ndim: int | None = 2) -> Tensor:
    """Check that ``z`` is a floating tensor with a batch dimension (and ``ndim`` dims if given)."""
    if not isinstance(z, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape [B, d]; got {type(z).__name__}")
    if not z.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor; got dtype {z.dtype}")
    if ndim is not None and z.dim() != ndim:
        want = "[B, d]" if ndim == 2 else f"{ndim} dimensions"
        raise ShapeError(f"{name} must have shape {want}; got shape {tuple(z.shape)}")
    if z.dim() < 1 or z.shape[0] < 1:
        raise ShapeError(f"{name} must have at least one row (chain); got shape {tuple(z.shape)}")
    if z.device.type == "meta":
        raise ShapeError(f"{name} is on the meta device (a shape without values); pass a tensor on cpu or cuda")
    if not torch.isfinite(z).all():
        bad = torch.nonzero(~torch.isfinite(z.reshape(z.shape[0], -1)).all(1)).flatten()[:10].tolist()
        raise ShapeError(f"{name} contains non-finite values (rows {bad}); pass finite initial states")
    return z


#: ``batch_size=None`` evaluates up to this many chains in one chunk; more are chunked as ``"auto"`` does
#: (so ``latentflow sample -n 2000000`` does not build the autograd graph of two million rows at once)
ONE_CHUNK_MAX_ROWS = 16384


def check_batch_size(batch_size, n: int) -> int | str:
    """``None`` -> ``n`` (one chunk) up to :data:`ONE_CHUNK_MAX_ROWS` chains, else ``"auto"``; an int ->
    ``min(batch_size, n)``; ``"auto"`` -> ``"auto"`` (resolved by the engine on its first evaluation, from a
    probe of the memory one row needs: the largest chunk that fits in the free memory)."""
    if batch_size is None:
        return n if n <= ONE_CHUNK_MAX_ROWS else "auto"
    if batch_size == "auto":
        return "auto"
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f'batch_size must be a positive int, "auto" or None; got {batch_size!r}')
    return min(batch_size, n)


def check_grad_path(method: str, v: Tensor) -> None:
    """A gradient step's value ``v`` must depend on the chain state: say what, not autograd's "element 0 of
    tensors does not require grad"."""
    if not v.requires_grad:
        raise ShapeError(
            f"{method}: D's output does not depend on its input x (no gradient path: a constant D, one that "
            "detaches x or runs under torch.no_grad()); this method follows ∇x D and needs a D differentiable in x"
        )


def check_speed_options(device: torch.device, cuda_graph: bool) -> None:
    """``cuda_graph=True`` needs CUDA tensors (the types are checked by the options record)."""
    if cuda_graph and torch.device(device).type != "cuda":
        raise OptionError(
            f"cuda_graph=True captures the step as a CUDA graph and needs CUDA tensors; z is on "
            f"{torch.device(device)}. Move z (and G, D) to a CUDA device or leave cuda_graph=False"
        )


def resolve_num_classes(num_classes, G, D) -> int:
    """``num_classes`` if given, else G's (then D's) ``num_classes`` attribute (an int), else 0."""
    if num_classes is not None:
        return int(num_classes)
    for m in (G, D):
        k = getattr(m, "num_classes", None)
        if isinstance(k, int) and not isinstance(k, bool) and k > 0:
            return k
    return 0


def resolve_labels(y, n: int, num_classes: int, device, stream) -> Tensor | None:
    """The labels ``[n]`` (long, on ``device``) the chains carry: ``y`` checked (an int is one label for all
    chains), or, when ``y`` is None and ``num_classes > 0``, uniform labels from each chain's stream
    (:data:`latentflow.rng.LABEL_SLOT`, so chunking and ``chain_offset`` splits keep them); None for an
    unconditional model. Labels are checked against ``num_classes`` when it is known (> 0)."""
    from ..rng import LABEL_SLOT, LABEL_STEP

    if y is None:
        return stream.labels(LABEL_STEP, LABEL_SLOT, num_classes) if num_classes > 0 else None
    if isinstance(y, int) and not isinstance(y, bool):
        y = torch.full((n,), y, dtype=torch.long, device=device)
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        got = f"dtype {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise OptionError(f"y must be integer class labels (a [B] long tensor or an int); got {got}")
    if tuple(y.shape) != (n,):
        raise ShapeError(f"y must have one label per chain, shape ({n},); got shape {tuple(y.shape)}")
    y = y.to(device=device, dtype=torch.long)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (num_classes > 0 and hi >= num_classes):
        bound = f"[0, {num_classes - 1}]" if num_classes > 0 else ">= 0"
        raise OptionError(f"y must hold class labels in {bound}; got values {lo}..{hi}")
    return y


def _expected(G, z: Tensor) -> str:
    """What ``G`` expects where it can be read off the module: its parameters' dtype, ``latent_dim``."""
    want = []
    if isinstance(G, torch.nn.Module):
        dtypes = {p.dtype for p in G.parameters() if p.is_floating_point()}
        if len(dtypes) == 1 and z.dtype not in dtypes:
            d = dtypes.pop()
            want.append(f"G's parameters are {d} (pass z.to({d}))")
    dim = getattr(G, "latent_dim", None)
    if isinstance(dim, int) and z.dim() >= 2:
        want.append(f"G.latent_dim is {dim}")
    return " (" + "; ".join(want) + ")" if want else ""


#: what a conditioning argument of D says about it, for messages
_COND = {"t": "time-conditioned", "sigma": "noise-conditioned"}


def _takes(f, n: int) -> bool:
    """Whether ``f`` (a function or module) can be called with ``n`` positional arguments, as far as its
    signature tells (``True`` when there is none to read)."""
    import inspect

    fn = f.forward if isinstance(f, torch.nn.Module) else f
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(*range(n))
    except TypeError:
        return False
    return True


def probe(
    engine,
    G,
    D,
    z: Tensor,
    *,
    cond: Sequence[Tensor] = (),
    name_z: str = "z",
    ys: Sequence[Tensor] = (),
    cond_name: str = "t",
) -> tuple:
    """Run G and D once on (at most) two rows of ``z`` to check their shapes at the boundary.

    ``ys`` (``()`` or ``(y,)``): class labels, passed last to G and D. ``cond``: D's conditioning arguments
    (``cond_name`` says what they are: ``"t"`` or ``"sigma"``). Returns the per-sample shape of ``G(z)`` (or
    of ``z`` when ``G`` is None). Raises ``ShapeError`` with the shapes involved; labels given to a G or D
    that takes none, or a D(x) where D(x, t) is called, are ``OptionError``s saying so. Consumes no
    randomness."""
    m = min(2, z.shape[0])
    with torch.no_grad():
        zz = z[:m]
        yy = tuple(t[:m] for t in ys)
        lab = " and y" if ys else ""
        if G is not None:
            if not callable(G):
                raise OptionError(f"G must be callable (an nn.Module or a function); got {type(G).__name__}")
            dim = getattr(G, "latent_dim", None)
            if isinstance(dim, int) and not isinstance(dim, bool) and zz.dim() == 2 and zz.shape[1] != dim:
                raise ShapeError(
                    f"{name_z} has latent size {zz.shape[1]} but G expects {dim} (G.latent_dim); "
                    f"pass {name_z} of shape [B, {dim}]"
                )
            try:
                x = G(zz, *yy)
            except Exception as e:  # a user's G that cannot take z: say so with shapes (and what G expects)
                if ys and isinstance(e, TypeError) and not _takes(G, 2):
                    raise OptionError(
                        f"y (class labels) was given, but G is not class-conditional: it takes no labels "
                        f"({type(G).__name__} takes z only); drop y"
                    ) from None
                raise ShapeError(
                    f"G(z{', y' if ys else ''}) failed on {name_z} of shape {tuple(zz.shape)} and dtype "
                    f"{zz.dtype}{lab}{_expected(G, zz)}: {type(e).__name__}: {e}"
                ) from e
            if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] != m:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ShapeError(
                    f"G(z) returned {got} for z of shape {tuple(zz.shape)}; expected a tensor with {m} rows"
                )
            if engine is not None:
                engine.count.n_G_forward += m
        else:
            x = zz
        if D is not None:
            if not callable(D):
                raise OptionError(f"D must be callable (an nn.Module or a function); got {type(D).__name__}")
            c = tuple(t[:m] for t in cond)
            try:
                out = D(x, *c, *yy)
            except Exception as e:
                if isinstance(e, TypeError) and not _takes(D, 1 + len(c) + len(yy)):
                    if c and _takes(D, 1 + len(yy)):
                        method = getattr(engine, "method", "this method")
                        raise OptionError(
                            f"{method} calls D(x, {cond_name}{', y' if yy else ''}), a {_COND[cond_name]} "
                            f"discriminator; this D ({type(D).__name__}) takes x{' and y' if yy else ''} only"
                        ) from None
                    if yy and _takes(D, 1 + len(c)):
                        raise OptionError(
                            f"y (class labels) was given, but D is not class-conditional: it takes no labels "
                            f"({type(D).__name__}); drop y"
                        ) from None
                raise ShapeError(f"D failed on x of shape {tuple(x.shape)}{lab}: {type(e).__name__}: {e}") from e
            d_values(out, m, "D(x, t)" if cond else "D(x)")
            if engine is not None:
                engine.count.n_D_forward += m
    return tuple(x.shape[1:])


@dataclass(frozen=True)
class LatentTargetOptions(Options):
    """The fields of the DDLS energy ``E(z) = -log p0(z) - d(G(z)) / T`` that the latent MCMC samplers
    (DDLS, Ex2MCMC) share; declared once, read by :func:`latent_energy`."""

    d_output: DOutput = field("logit", 'what D returns: "logit", "prob" (converted back stably) or "critic" (WGAN)')
    prior: Prior = field("normal", "latent prior: N(0, I) or U[-1, 1]^k (sampled through the normal CDF)")
    temperature: float = field(1.0, "T dividing the discriminator term of the energy", gt=0)


def latent_energy(engine, G, D, z: Tensor, o: LatentTargetOptions, **extra) -> tuple[LatentEnergy, tuple]:
    """Probe G and D on ``z`` (with the chains' labels) and build the DDLS energy of the options record
    ``o`` (its ``prior``, ``d_output`` and ``temperature``): ``(energy, per-sample shape of G(z))``."""
    x_shape = probe(engine, G, D, z, ys=engine.ys)
    energy = LatentEnergy(
        G,
        D,
        engine,
        latent_dim=z.shape[1],
        x_shape=x_shape,
        prior=o.prior,
        d_output=o.d_output,
        temperature=o.temperature,
        **extra,
    )
    return energy, x_shape


def mala_log_alpha(u: Tensor, E: Tensor, g: Tensor, prop: Tensor, E_p: Tensor, g_p: Tensor, a, b2, t_l=1.0) -> Tensor:
    """Metropolis–Hastings log acceptance ratio of the Langevin proposal ``q(s' | s) = N(s - a ∇E(s), b² I)``
    on the target ``exp(-E / T_L)``: ``-(E' - E)/T_L + (||s' - s + a g||² - ||s - s' + a g'||²) / (2 b²)``.
    ``a`` and ``b2`` are scalars or per-chain ``[B]``/``[B, 1]`` tensors."""
    fwd = (prop - u + a * g).pow(2).sum(1)
    bwd = (u - prop + a * g_p).pow(2).sum(1)
    return -(E_p - E) / t_l + (fwd - bwd) / (2 * b2)
