"""Plain NumPy per-seed loops, written from the paper as a user would.

Independent of flatjax's code: the losses, gradients, constants and the adversarial
oracle are re-derived here from the paper digest (arXiv 2511.03548, digest §3, §4.3,
§4.7) with NumPy only. Training sets are plain arrays (the benchmarks draw them with
flatjax's samplers so that every method sees the same data).

Each loop runs ``steps`` iterates (``steps - 1`` updates, the digest's convention),
records per iterate the empirical risk $F_S(w_t)$ and $\|w_t\|$ (and $\|\nabla
F_S(w_t)\|$ where the algorithm computes it), projects onto the unit ball when an
iterate leaves it, and returns the last iterate, the uniform average and the records:
the same work as ``flatjax.runner.run(..., record_population=False,
suffix_starts=(1,))``.

Gradients are the natural vectorized translations of the formulas:

- Theorem 7 (SAM trap): the $2^n\times T$ block view, $f_1$ through the per-coordinate
  frequencies $c_i=\frac1n\sum_k z_k(i)$ (its gradient is linear in $z$), the chain
  $f_2$ with shifted slices, and the trigger $f_3$ with one $n\times 2^n$ product.
- Theorem 3 (SA-GD trap): the loss as printed, per example: $s_k=\sum_{i,j}
  [z_k(i)w^{(i)}(j)]_+^2 + w(d)^2$ through an $(n, 2^n, T)$ temporary, i.e. the
  $O(nd)$ per-example evaluation a reader of the loss writes first.
- Least squares: $\nabla F_S = X^\top(Xw - y)/n$.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoopResult:
    """What a NumPy loop returns (mirrors ``flatjax.runner.RunResult``'s core)."""

    final: np.ndarray
    average: np.ndarray
    empirical_risk: np.ndarray
    iterate_norm: np.ndarray


def _project(w: np.ndarray) -> np.ndarray:
    norm = math.sqrt(float(w @ w))
    return w / norm if norm > 1.0 else w


# ----------------------------------------------------------------------------------
# Theorem 7: SAMTrap.


@dataclass(frozen=True)
class SAMTrapConstants:
    """The constants of Theorem 7's construction (digest §4.7, closed form)."""

    n: int
    T: int
    d: int
    lam: float
    delta1: float
    gamma: float
    kappa: float
    delta: np.ndarray  # delta_2 .. delta_T, length T - 1


def samtrap_constants(
    n: int, T: int, learning_rate: float, radius: float, delta: float = 0.03
) -> SAMTrapConstants:
    r"""$\lambda = r/(4d(d-1))$, $\delta_1 = \eta\lambda/(2\sqrt d\max(1,\eta))$,
    $\gamma = \lambda/(\max(1,\eta)(r+\delta_1))$, $\kappa = 1/(2(d-1))$.
    """  # noqa: D205
    d = 2**n * T + 1
    lam = radius / (4.0 * d * (d - 1))
    scale = max(1.0, learning_rate)
    delta1 = learning_rate * lam / (2.0 * math.sqrt(d) * scale)
    gamma = lam / (scale * (radius + delta1))
    return SAMTrapConstants(
        n, T, d, lam, delta1, gamma, 1.0 / (2.0 * (d - 1)), np.full(T - 1, delta)
    )


def samtrap_value_and_grad(w: np.ndarray, S: np.ndarray, c: SAMTrapConstants):
    r"""$F_S(w)$ and $\nabla F_S(w)$ for Theorem 7's loss $f_1 + f_2 + f_3$."""
    m = 2**c.n
    blocks = w[:-1].reshape(m, c.T)
    counts = S.mean(axis=0)
    tails = blocks[:, 1:]
    previous = blocks[:, :-1].copy()
    previous[:, 0] += c.lam
    links = np.maximum(tails - c.delta * previous, 0.0)
    trigger_vectors = np.where(S == 1.0, 1.0, -c.kappa)  # v_z without the last entry
    triggers = np.maximum(trigger_vectors @ blocks[:, 0] + w[-1] + c.delta1, 0.0)
    value = (
        0.5 * counts @ np.einsum("ij,ij->i", tails, tails)
        + 0.5 * np.sum(links * links)
        + 0.5 * c.gamma * np.mean(triggers * triggers)
    )
    grad = np.empty_like(w)
    grad_blocks = grad[:-1].reshape(m, c.T)
    grad_blocks[:, 0] = 0.0
    grad_blocks[:, 1:] = counts[:, None] * tails + links
    grad_blocks[:, :-1] -= c.delta * links
    slopes = c.gamma * triggers / c.n
    grad_blocks[:, 0] += slopes @ trigger_vectors
    grad[-1] = slopes.sum()
    return value, grad


def sam_samtrap(
    S: np.ndarray,
    n: int,
    T: int,
    learning_rate: float,
    radius: float,
    steps: int,
    delta: float = 0.03,
) -> LoopResult:
    r"""SAM on Theorem 7's instance from $w_1 = 0$ (zero gradient: no perturbation)."""
    c = samtrap_constants(n, T, learning_rate, radius, delta)
    return _sam_loop(
        lambda w: samtrap_value_and_grad(w, S, c),
        np.zeros(c.d),
        learning_rate,
        radius,
        steps,
    )


def gd_samtrap(
    S: np.ndarray,
    n: int,
    T: int,
    learning_rate: float,
    radius: float,
    steps: int,
    delta: float = 0.03,
) -> LoopResult:
    """GD on Theorem 7's instance (its constants depend on SAM's eta and r)."""
    c = samtrap_constants(n, T, learning_rate, radius, delta)
    return _sam_loop(
        lambda w: samtrap_value_and_grad(w, S, c),
        np.zeros(c.d),
        learning_rate,
        0.0,
        steps,
    )


def _sam_loop(value_and_grad, w, learning_rate, radius, steps) -> LoopResult:
    risks, norms = np.empty(steps), np.empty(steps)
    total = np.zeros_like(w)
    for t in range(steps):
        value, grad = value_and_grad(w)
        risks[t], norms[t] = value, math.sqrt(float(w @ w))
        total += w
        if t == steps - 1:
            break
        if radius > 0:
            grad_norm = math.sqrt(float(grad @ grad))
            if grad_norm > 0:
                _, grad = value_and_grad(w + (radius / grad_norm) * grad)
        w = _project(w - learning_rate * grad)
    return LoopResult(w, total / steps, risks, norms)


# ----------------------------------------------------------------------------------
# Theorem 3: SAGDTrap with the adversarial oracle.


def sagdtrap_value_and_grad(w: np.ndarray, S: np.ndarray, T: int, rho: float):
    r"""$F_S(w)$ and $\nabla F_S(w)$ for $f = \frac12[\sqrt{s}-\rho]_+^2$, per example.

    $s_k = \sum_{i,j}[z_k(i)w^{(i)}(j)]_+^2 + w(d)^2$; at $s_k = 0$ the gradient is 0.
    """
    n, m = S.shape
    blocks = w[:-1].reshape(m, T)
    active = np.maximum(S[:, :, None] * blocks[None, :, :], 0.0)  # (n, m, T)
    s = np.einsum("kij,kij->k", active, active) + w[-1] ** 2
    root = np.sqrt(s)
    excess = np.maximum(root - rho, 0.0)
    value = 0.5 * np.mean(excess**2)
    scale = np.divide(excess, root, out=np.zeros_like(s), where=s > 0) / n
    grad = np.empty_like(w)
    # d/dw [z w]_+^2 / 2 = z [z w]_+
    grad[:-1] = np.einsum("k,ki,kij->ij", scale, S, active).reshape(-1)
    grad[-1] = scale.sum() * w[-1]
    return value, grad


def sagdtrap_unseen_block(S: np.ndarray) -> int:
    """The first block I with z(I) = +1 in every example (the good event)."""
    always = np.all(S == 1.0, axis=0)
    if not always.any():
        raise ValueError("the training set misses Theorem 3's good event")
    return int(np.argmax(always))


def sa_gd_sagdtrap(
    S: np.ndarray, T: int, rho: float, learning_rate: float, radius: float, steps: int
) -> LoopResult:
    r"""SA-GD with the paper's oracle $v_t = r\,e_{(I,t)}$ (Appendix B.2)."""
    m = S.shape[1]
    d = m * T + 1
    index = sagdtrap_unseen_block(S)
    w = np.zeros(d)
    risks, norms = np.empty(steps), np.empty(steps)
    total = np.zeros(d)
    for t in range(steps):
        value, _ = sagdtrap_value_and_grad(w, S, T, rho)
        risks[t], norms[t] = value, math.sqrt(float(w @ w))
        total += w
        if t == steps - 1:
            break
        # Position t (0-based) of block I; once the block is used up, e_d.
        position = index * T + t if t < T else d - 1
        perturbed = w.copy()
        perturbed[position] += radius
        _, grad = sagdtrap_value_and_grad(perturbed, S, T, rho)
        w = _project(w - learning_rate * grad)
    return LoopResult(w, total / steps, risks, norms)


def gd_sagdtrap(
    S: np.ndarray, T: int, rho: float, learning_rate: float, steps: int
) -> LoopResult:
    """GD on Theorem 3's instance."""
    m = S.shape[1]
    return _sam_loop(
        lambda w: sagdtrap_value_and_grad(w, S, T, rho),
        np.zeros(m * T + 1),
        learning_rate,
        0.0,
        steps,
    )


# ----------------------------------------------------------------------------------
# Least squares (a benign problem).


def least_squares_value_and_grad(w: np.ndarray, S: np.ndarray):
    r"""$F_S = \frac1{2n}\|Xw - y\|^2$, $\nabla F_S = X^\top(Xw-y)/n$; rows of S are
    $(x, y)$.
    """  # noqa: D205
    X, y = S[:, :-1], S[:, -1]
    residual = X @ w - y
    return 0.5 * np.mean(residual**2), X.T @ residual / S.shape[0]


def sam_least_squares(
    S: np.ndarray, learning_rate: float, radius: float, steps: int
) -> LoopResult:
    """SAM (GD when radius = 0) on least squares from w_1 = 0."""
    return _sam_loop(
        lambda w: least_squares_value_and_grad(w, S),
        np.zeros(S.shape[1] - 1),
        learning_rate,
        radius,
        steps,
    )
