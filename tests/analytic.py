"""Closed-form problems the samplers are tested against (the torchdiffeq ``problems.py`` idea)."""

from __future__ import annotations

import math

import torch


class LinearG(torch.nn.Module):
    """G(z) = A z + c."""

    def __init__(self, A, c):
        super().__init__()
        self.A = torch.nn.Parameter(torch.as_tensor(A, dtype=torch.float64))
        self.c = torch.nn.Parameter(torch.as_tensor(c, dtype=torch.float64))

    def forward(self, z):
        return z @ self.A.T.to(z.dtype) + self.c.to(z.dtype)


class QuadraticD(torch.nn.Module):
    """d(x) = -1/2 (x - m)^T P (x - m), a logit."""

    def __init__(self, m, P):
        super().__init__()
        self.m = torch.nn.Parameter(torch.as_tensor(m, dtype=torch.float64))
        self.P = torch.nn.Parameter(torch.as_tensor(P, dtype=torch.float64))

    def forward(self, x):
        r = x - self.m.to(x.dtype)
        return -0.5 * ((r @ self.P.to(x.dtype)) * r).sum(1)


def gaussian_problem():
    """Linear G and quadratic D: the DDLS target exp(-E), E = |z|^2/2 - d(G(z)), is N(mu, Lambda^-1)."""
    A = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=torch.float64)
    c = torch.tensor([0.2, -0.1], dtype=torch.float64)
    m = torch.tensor([1.0, 0.5], dtype=torch.float64)
    P = torch.tensor([[1.5, 0.3], [0.3, 0.7]], dtype=torch.float64)
    Lam = torch.eye(2, dtype=torch.float64) + A.T @ P @ A
    cov = torch.linalg.inv(Lam)
    mu = cov @ (A.T @ P @ (m - c))
    return LinearG(A, c), QuadraticD(m, P), mu, cov, Lam


def ula_stationary_cov(Lam: torch.Tensor, eps: float) -> torch.Tensor:
    """Exact stationary covariance of ULA  z <- z - (eps/2) Lam z + sqrt(eps) xi  on a Gaussian target:
    Sigma solves Sigma = M Sigma M^T + eps I with M = I - eps Lam / 2, i.e. (Lam (I - eps Lam / 4))^-1."""
    I = torch.eye(Lam.shape[0], dtype=Lam.dtype)
    return torch.linalg.inv(Lam @ (I - eps * Lam / 4))


def log_normal(x, mean, var):
    """log N(x; mean, var I) per row, x [B, k]."""
    k = x.shape[1]
    return -0.5 * ((x - mean) ** 2).sum(1) / var - 0.5 * k * math.log(2 * math.pi * var)


class RatioD(torch.nn.Module):
    """The exact density-ratio logit d(x) = log N(x; mean, s^2 I) - log N(x; 0, I) (G = identity)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.std = float(std)

    def forward(self, x):
        return log_normal(x, self.mean.to(x.dtype), self.std**2) - log_normal(
            x, torch.zeros_like(self.mean).to(x.dtype), 1.0
        )


class Identity(torch.nn.Module):
    def forward(self, z):
        return z
