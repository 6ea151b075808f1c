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
    n: int, T: int, learning_rate: float, radius: float, delta: float | None = None
) -> SAMTrapConstants:
    r"""$\lambda = r/(4d(d-1))$, $\delta_1 = \eta\lambda/(2\sqrt d\max(1,\eta))$,
    $\gamma = \lambda/(\max(1,\eta)(r+\delta_1))$, $\kappa = 1/(2(d-1))$.

    ``delta`` is the constant chain schedule $\delta_j$; ``None`` is flatjax's default
    schedule fixed before sampling: $\delta_j = 0.03$ except
    $\delta_3 = \frac12 \cdot 0.03\, s$, $s = \kappa/\sqrt{2^n+\kappa^2} - 1/(4d(d-1))$.
    """  # noqa: D205
    d = 2**n * T + 1
    lam = radius / (4.0 * d * (d - 1))
    scale = max(1.0, learning_rate)
    delta1 = learning_rate * lam / (2.0 * math.sqrt(d) * scale)
    gamma = lam / (scale * (radius + delta1))
    kappa = 1.0 / (2.0 * (d - 1))
    chain = np.full(T - 1, 0.03 if delta is None else delta)
    if delta is None and T >= 3:
        chain[1] = (
            0.5 * 0.03 * (kappa / math.sqrt(2**n + kappa**2) - 1 / (4 * d * (d - 1)))
        )
    return SAMTrapConstants(n, T, d, lam, delta1, gamma, kappa, chain)


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
    delta: float | None = None,
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
    delta: float | None = None,
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


# ----------------------------------------------------------------------------------
# Tuned loops: the strongest NumPy a user would write (run with one BLAS thread).


def _samtrap_parts(S: np.ndarray, c: SAMTrapConstants):
    """The fixed vectors of Theorem 7's loss for one training set, built once."""
    counts = S.mean(axis=-2)
    trigger_vectors = np.where(S == 1.0, 1.0, -c.kappa)
    return counts, trigger_vectors


def _samtrap_grad_tuned(blocks, last, counts, V, c: SAMTrapConstants, out):
    r"""$\nabla F_S$ into ``out`` (same shape as ``blocks``); returns
    ($\partial_{w(d)}F_S$, links, triggers) for the value. Works on a leading batch
    axis too (``blocks`` of shape (B, m, T), ``V`` of shape (B, n, m)).
    """  # noqa: D205
    tails = blocks[..., 1:]
    links = tails - c.delta * blocks[..., :-1]
    links[..., 0] -= c.delta[0] * c.lam
    np.maximum(links, 0.0, out=links)
    first = blocks[..., 0]
    dots = np.einsum("...km,...m->...k", V, first) + (last + c.delta1)[..., None]
    triggers = np.maximum(dots, 0.0)
    slopes = (c.gamma / c.n) * triggers
    np.multiply(counts[..., None], tails, out=out[..., 1:])
    out[..., 1:] += links
    out[..., 0] = np.einsum("...k,...km->...m", slopes, V)
    out[..., :-1] -= c.delta * links
    return slopes.sum(axis=-1), links, triggers


def _samtrap_value(blocks, counts, links, triggers, c: SAMTrapConstants):
    tails = blocks[..., 1:]
    return (
        0.5
        * np.einsum("...m,...m->...", counts, np.einsum("...j,...j->...", tails, tails))
        + 0.5 * np.einsum("...ij,...ij->...", links, links)
        + 0.5 * c.gamma * np.mean(triggers * triggers, axis=-1)
    )


def sam_samtrap_tuned(
    S: np.ndarray,
    n: int,
    T: int,
    learning_rate: float,
    radius: float,
    steps: int,
    delta: float | None = None,
) -> LoopResult:
    r"""SAM on Theorem 7's instance, tuned: fixed vectors built once, buffers reused,
    no loss evaluation at the perturbed point, the iterate kept as blocks + $w(d)$.
    With a leading batch axis on ``S`` (shape (B, n, 2^n)) it runs every set at once
    (NumPy batched across seeds); ``final`` and ``average`` then have that axis.
    """  # noqa: D205
    c = samtrap_constants(n, T, learning_rate, radius, delta)
    counts, V = _samtrap_parts(S, c)
    batch = S.shape[:-2]
    m = 2**n
    blocks = np.zeros((*batch, m, T))
    last = np.zeros(batch)
    grad = np.empty_like(blocks)
    probe = np.empty_like(blocks)
    total_blocks, total_last = np.zeros_like(blocks), np.zeros(batch)
    risks, norms = np.empty((steps, *batch)), np.empty((steps, *batch))
    flat_axes = (-2, -1)
    for t in range(steps):
        last_grad, links, triggers = _samtrap_grad_tuned(
            blocks, last, counts, V, c, grad
        )
        risks[t] = _samtrap_value(blocks, counts, links, triggers, c)
        norms[t] = np.sqrt(np.sum(blocks * blocks, axis=flat_axes) + last * last)
        total_blocks += blocks
        total_last += last
        if t == steps - 1:
            break
        grad_norm = np.sqrt(np.sum(grad * grad, axis=flat_axes) + last_grad**2)
        factor = np.divide(
            radius, grad_norm, out=np.zeros_like(grad_norm), where=grad_norm > 0
        )
        np.multiply(factor[..., None, None], grad, out=probe)
        probe += blocks
        last_grad, _, _ = _samtrap_grad_tuned(
            probe, last + factor * last_grad, counts, V, c, grad
        )
        blocks -= learning_rate * grad
        last = last - learning_rate * last_grad
        norm = np.sqrt(np.sum(blocks * blocks, axis=flat_axes) + last * last)
        scale = np.where(norm > 1.0, 1.0 / np.where(norm > 1.0, norm, 1.0), 1.0)
        blocks *= scale[..., None, None]
        last = last * scale
    flat = np.concatenate([blocks.reshape(*batch, -1), last[..., None]], axis=-1)
    average = (
        np.concatenate(
            [total_blocks.reshape(*batch, -1), total_last[..., None]], axis=-1
        )
        / steps
    )
    return LoopResult(flat, average, risks, norms)


def sa_gd_sagdtrap_blockstats(
    S: np.ndarray, T: int, rho: float, learning_rate: float, radius: float, steps: int
) -> LoopResult:
    r"""SA-GD with the paper's oracle from the per-block statistics $P_i$, $N_i$.

    The same sufficient statistics as flatjax's gradient: per step one pass for
    $P_i = \|[w^{(i)}]_+\|^2$ and $N_i = \|[w^{(i)}]_-\|^2$, the $n\times 2^n$
    product for $s_k$, the one perturbed coordinate corrected in $P_I$, $N_I$, and
    one elementwise pass for the update: $O(d + n2^n)$, not the printed loss's
    $O(nd)$.
    """
    n, m = S.shape
    d = m * T + 1
    index = sagdtrap_unseen_block(S)
    plus = 0.5 * (S + 1.0)
    blocks = np.zeros((m, T))
    last = 0.0
    risks, norms = np.empty(steps), np.empty(steps)
    total = np.zeros((m, T))
    total_last = 0.0
    positive_part, negative_part = np.empty_like(blocks), np.empty_like(blocks)

    def slopes(P, N, last):
        s = N.sum() + last * last + plus @ (P - N)
        root = np.sqrt(s)
        excess = np.maximum(root - rho, 0.0)
        value = 0.5 * np.mean(excess**2)
        slope = np.divide(excess, root, out=np.zeros_like(s), where=s > 0) / n
        return value, slope @ plus, slope.sum()

    for t in range(steps):
        np.maximum(blocks, 0.0, out=positive_part)
        np.minimum(blocks, 0.0, out=negative_part)
        P = np.einsum("ij,ij->i", positive_part, positive_part)
        N = np.einsum("ij,ij->i", negative_part, negative_part)
        value, _, _ = slopes(P, N, last)
        risks[t] = value
        norms[t] = math.sqrt(P.sum() + N.sum() + last * last)
        total += blocks
        total_last += last
        if t == steps - 1:
            break
        # The oracle: position t (0-based) of block I; once the block is used up, e_d.
        ascended_last = last
        if t < T:
            x = blocks[index, t]
            up = x + radius
            P[index] += max(up, 0.0) ** 2 - max(x, 0.0) ** 2
            N[index] += min(up, 0.0) ** 2 - min(x, 0.0) ** 2
        else:
            ascended_last = last + radius
        _, seen, total_slope = slopes(P, N, ascended_last)
        positive_part *= seen[:, None]
        negative_part *= (total_slope - seen)[:, None]
        if t < T:
            positive_part[index, t] = seen[index] * max(up, 0.0)
            negative_part[index, t] = (total_slope - seen[index]) * min(up, 0.0)
        blocks -= learning_rate * (positive_part + negative_part)
        last = last - learning_rate * total_slope * ascended_last
        norm = math.sqrt(float(np.einsum("ij,ij->", blocks, blocks)) + last * last)
        if norm > 1.0:
            blocks /= norm
            last /= norm
    final = np.concatenate([blocks.reshape(-1), [last]])
    average = np.concatenate([total.reshape(-1), [total_last]]) / steps
    assert final.shape == (d,)
    return LoopResult(final, average, risks, norms)
