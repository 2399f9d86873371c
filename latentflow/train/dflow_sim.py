"""The Discriminator Flow as the trainer simulates it: Euler steps of ``v(x, t) = -η ∇_x c(f(x, t))`` on the
grid ``t_i = i/N`` with no graph kept, to one step per particle (``simulate_at``) or the whole trajectory
(``simulate_all``, cached for ``reuse`` D updates)."""

from __future__ import annotations

import torch

from ..samplers.dflow import generator_loss, time_grid


def flow_velocity(D, x: torch.Tensor, t: torch.Tensor, eta: float, loss: str) -> torch.Tensor:
    """``v(x, t) = -η ∇_x c(f(x, t))`` (detached), as the ``dflow`` sampler computes it."""
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(generator_loss(D(xx, t), loss).sum(), xx)
    return -eta * g


def simulate_at(D, x0: torch.Tensor, i_b: torch.Tensor, eta: float, loss: str, N: int) -> torch.Tensor:
    """``x_{i_b}`` per sample of the Euler flow from ``x0`` on the grid ``t_i = i/N`` (no graph kept)."""
    ts = time_grid(N, device=x0.device, dtype=x0.dtype).tolist()
    out = x0.detach().clone()
    idx = torch.arange(x0.shape[0], device=x0.device)
    x = out
    top = int(i_b.max()) if i_b.numel() else 0
    for i in range(top):
        keep = i_b[idx] > i
        idx, x = idx[keep], x[keep]
        t = torch.full((x.shape[0],), ts[i], device=x.device, dtype=x.dtype)
        x = (x + (ts[i + 1] - ts[i]) * flow_velocity(D, x, t, eta, loss)).detach()
        done = i_b[idx] == i + 1
        out[idx[done]] = x[done]
    return out


def simulate_all(D, x0: torch.Tensor, eta: float, loss: str, N: int) -> torch.Tensor:
    """The Euler trajectory ``[x_0, ..., x_{N-1}]`` of every particle as an ``[N, B, *X]`` tensor."""
    ts = time_grid(N, device=x0.device, dtype=x0.dtype).tolist()
    traj = [x0.detach()]
    x = traj[0]
    for i in range(N - 1):
        t = torch.full((x.shape[0],), ts[i], device=x.device, dtype=x.dtype)
        x = (x + (ts[i + 1] - ts[i]) * flow_velocity(D, x, t, eta, loss)).detach()
        traj.append(x)
    return torch.stack(traj)


class _TrajectoryCache(torch.nn.Module):
    """Holds the trajectories shared by ``reuse`` D updates as a buffer, so checkpoints carry them and a
    resumed run continues bit-for-bit inside a block."""

    def __init__(self, N: int, B: int, shape):
        super().__init__()
        self.register_buffer("traj", torch.zeros((N, B) + tuple(shape)))
