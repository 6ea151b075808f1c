r"""Curvature from Hessian-vector products: top eigenvalues, trace, Frobenius norm.

Nothing here forms the Hessian: every measure is a function of the map
$u\mapsto\nabla^2L(w)\,u$ (forward-over-reverse autodiff), so it applies to a
network's parameters as well as to a flat vector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._checks import check_int, check_key, check_real, check_scalar_loss
from ._base import (
    Estimate,
    hessian_vector_product,
    map_probes,
    mean_and_stderr,
    resolve_probe_batch,
)


class HessianEigenvalues(NamedTuple):
    r"""The top (or bottom) eigenpairs of $\nabla^2 L(w)$ from Lanczos.

    Attributes:
        values: Ritz values, shape ``(k,)``: $\theta_1 \ge \dots \ge \theta_k$ the
            largest (``which="largest"``), or $\theta_1 \le \dots \le \theta_k$
            the smallest, most negative first (``which="smallest"``).
        vectors: the Ritz vectors, structured like $w$ with a leading axis of size
            $k$ (unit global norm each).
        residuals: $\|Hy_j - \theta_j y_j\|$ as estimated by Lanczos, shape
            ``(k,)``; $|\theta_j - \lambda| \le$ residual for some eigenvalue
            $\lambda$ of $H$ (plus at most $\sqrt{\epsilon}\,\|H\|$ after a
            restart on breakdown, see ``_lanczos``).
        converged: ``residuals <= tol * max_j |theta_j|``, shape ``(k,)``.
    """

    values: Float[Array, " k"]
    vectors: PyTree
    residuals: Float[Array, " k"]
    converged: Bool[Array, " k"]


def _orthogonalize(basis: Array, vector: Array) -> Array:
    """Remove the span of the rows of ``basis``; twice, for stability (CGS2)."""
    vector = vector - basis.T @ (basis @ vector)
    return vector - basis.T @ (basis @ vector)


def _lanczos(
    matvec: Callable[[Array], Array], start: Array, num_iterations: int, key
) -> tuple[Array, Array, Array, Array]:
    r"""Lanczos with full reorthogonalization.

    Returns the basis $Q$ (``(m, d)``), the diagonal and off-diagonal of the
    tridiagonal $T = Q^\top H Q$, and the final residual norm $\beta_m$. When the
    Krylov space becomes invariant ($\beta_j$ at roundoff level) the next basis vector
    is a fresh random one orthogonal to $Q$ and the coupling is set to 0: $T$ becomes
    block diagonal and Lanczos continues on an orthogonal complement, which keeps the
    iteration count fixed (a ``fori_loop``) and finds repeated eigenvalues.
    """
    d = start.shape[0]
    dtype = start.dtype
    threshold = jnp.sqrt(jnp.finfo(dtype).eps)
    tiny = jnp.finfo(dtype).tiny
    basis = jnp.zeros((num_iterations + 1, d), dtype)
    basis = basis.at[0].set(start / jnp.linalg.norm(start))

    def body(j, carry):
        basis, diagonal, off_diagonal, _, scale = carry
        q = basis[j]
        r = matvec(q)
        alpha = jnp.dot(q, r)
        r = _orthogonalize(basis, r)
        beta = jnp.linalg.norm(r)
        scale = jnp.maximum(scale, jnp.abs(alpha) + beta)
        breakdown = beta <= threshold * scale
        fresh = jax.random.normal(jax.random.fold_in(key, j), (d,), dtype)
        fresh = _orthogonalize(basis, fresh)
        fresh = fresh / jnp.maximum(jnp.linalg.norm(fresh), tiny)
        following = jnp.where(breakdown, fresh, r / jnp.where(breakdown, 1.0, beta))
        basis = basis.at[j + 1].set(following)
        diagonal = diagonal.at[j].set(alpha)
        off_diagonal = off_diagonal.at[j].set(jnp.where(breakdown, 0.0, beta))
        return basis, diagonal, off_diagonal, beta, scale

    zeros = jnp.zeros((num_iterations,), dtype)
    zero = jnp.zeros((), dtype)
    basis, diagonal, off_diagonal, beta, _ = jax.lax.fori_loop(
        0, num_iterations, body, (basis, zeros, zeros, zero, zero)
    )
    return basis[:num_iterations], diagonal, off_diagonal[:-1], beta


def hessian_eigenvalues(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    k: int = 1,
    *,
    key: PRNGKeyArray,
    num_iterations: int | None = None,
    tol: float = 1e-6,
    which: Literal["largest", "smallest"] = "largest",
) -> HessianEigenvalues:
    r"""The $k$ largest (or smallest) eigenvalues of $H = \nabla^2 L(w)$ by Lanczos.

    ``num_iterations`` $= m$ steps of the Lanczos process on Hessian-vector products
    from a Gaussian start vector, with full reorthogonalization against every
    previous basis vector (so no spurious copies of converged eigenvalues), then the
    eigendecomposition of the $m\times m$ tridiagonal matrix. Cost: $m$
    Hessian-vector products and $O(m^2 d)$ for the reorthogonalization; memory
    $O(md)$. With $m = d$ the Krylov space is the whole space and the result is
    exact up to roundoff. The eigenvalues are those of the Hessian itself, signed
    (the top ones are the most positive). Lanczos converges at both ends of the
    spectrum, so ``which="smallest"`` reads the bottom Ritz values of the same
    process: the most negative eigenvalues, the directions of negative curvature
    (a saddle) that PyHessian finds by running Lanczos on $-H$.

    Every residual is an a-posteriori bound (``HessianEigenvalues.residuals``), and
    ``converged`` says which Ritz values reached ``tol``. Outside ``jit`` the
    computation is compiled once per loss function object and shapes
    (``eqx.filter_jit``): call it again with the same ``loss_fn`` and new parameters
    without recompiling.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        k: number of eigenvalues, $1 \le k \le m$.
        key: PRNG key for the start vector (and for restarts after breakdown).
        num_iterations: Lanczos steps $m$, $k \le m \le d$ (static). Default
            $\min(d, \max(2k + 10, 30))$.
        tol: relative residual below which an eigenvalue counts as converged.
        which: ``"largest"`` (descending order) or ``"smallest"`` (ascending, the
            most negative first); static.

    Returns:
        A ``HessianEigenvalues``.

    Raises:
        ValueError: on a non-scalar loss, $k < 1$, $m$ outside $[k, d]$, or an
            unknown ``which``.

    References:
        Lanczos (1950); Golub & Van Loan, "Matrix Computations", §10.1 (full
        reorthogonalization). Keskar et al. (2017), ICLR; Ghorbani, Krishnan, Xiao
        (2019), ICML; Yao, Gholami, Keutzer, Mahoney (2020), "PyHessian", IEEE
        BigData.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([5.0, 3.0, 1.0]) * w**2)
        >>> key = jax.random.key(0)
        >>> result = hessian_eigenvalues(loss_fn, jnp.zeros(3), 2, key=key)
        >>> [round(float(x), 10) for x in result.values]
        [5.0, 3.0]
        >>> saddle = lambda w: 0.5 * jnp.sum(jnp.array([5.0, -2.0, 1.0]) * w**2)
        >>> bottom = hessian_eigenvalues(
        ...     saddle, jnp.zeros(3), key=key, which="smallest"
        ... )
        >>> round(float(bottom.values[0]), 10)
        -2.0
    """
    call = "hessian_eigenvalues"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    x0 = ravel_pytree(w)[0]
    d = x0.shape[0]
    k = check_int(call, "k", k, 1)
    if k > d:
        raise ValueError(f"`{call}(k=...)` must be <= d = {d}, got {k}")
    if num_iterations is None:
        num_iterations = min(d, max(2 * k + 10, 30))
    num_iterations = check_int(call, "num_iterations", num_iterations, k)
    if num_iterations > d:
        raise ValueError(
            f"`{call}(num_iterations=...)` must be <= d = {d}, got {num_iterations}"
        )
    check_real(call, "tol", tol, lower=0.0)
    if which not in ("largest", "smallest"):
        raise ValueError(
            f"`{call}(which=...)` must be 'largest' or 'smallest', got {which!r}"
        )
    return _eigenvalues(
        loss_fn, w, key, k, num_iterations, jnp.asarray(tol, x0.dtype), which
    )


def lanczos_tridiagonal(
    hvp: Callable[[Array], Array], start: Array, num_iterations: int, key
) -> tuple[Array, Array, Array]:
    """Lanczos from ``start``: the basis, the tridiagonal matrix, the last beta."""
    basis, diagonal, off_diagonal, beta = _lanczos(hvp, start, num_iterations, key)
    tridiagonal = (
        jnp.diag(diagonal) + jnp.diag(off_diagonal, 1) + jnp.diag(off_diagonal, -1)
    )
    return basis, tridiagonal, beta


@eqx.filter_jit
def _eigenvalues(loss_fn, w, key, k, num_iterations, tol, which):
    x0, unravel, hvp = hessian_vector_product(loss_fn, w)
    start_key, restart_key = jax.random.split(key)
    start = jax.random.normal(start_key, x0.shape, x0.dtype)
    basis, tridiagonal, beta = lanczos_tridiagonal(
        hvp, start, num_iterations, restart_key
    )
    ritz_values, ritz_coordinates = jnp.linalg.eigh(tridiagonal)
    if which == "largest":
        ritz_values_ordered = ritz_values[::-1]
        ritz_coordinates = ritz_coordinates[:, ::-1]
    else:
        ritz_values_ordered = ritz_values
    values = ritz_values_ordered[:k]
    coordinates = ritz_coordinates[:, :k]
    residuals = jnp.abs(beta * coordinates[-1])
    vectors = jax.vmap(unravel)(coordinates.T @ basis)
    scale = jnp.max(jnp.abs(ritz_values))
    return HessianEigenvalues(values, vectors, residuals, residuals <= tol * scale)


def hessian_trace(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    *,
    key: PRNGKeyArray,
    num_probes: int = 30,
    estimator: Literal["hutchinson", "hutch++"] = "hutchinson",
    probe_batch: int | None = None,
) -> Estimate:
    r"""Stochastic trace of $H = \nabla^2 L(w)$: Hutchinson or Hutch++.

    ``"hutchinson"``: $\widehat{\mathrm{tr}} = \frac1m\sum_{i=1}^m u_i^\top H u_i$ with
    Rademacher $u_i$, unbiased with variance
    $\frac2m(\|H\|_F^2 - \sum_j H_{jj}^2)$; the standard error is from the $m$ samples.

    ``"hutch++"``: the same budget of $m$ Hessian-vector products split in three
    (Meyer et al. 2021, Algorithm 1): a sketch $Q = \mathrm{orth}(HS)$ from
    $s = \lfloor m/3\rfloor$ Rademacher columns $S$, the exact part
    $\mathrm{tr}(Q^\top H Q)$ ($s$ products), and Hutchinson on the deflated
    $(I - QQ^\top)H(I-QQ^\top)$ with the remaining $m - 2s$ probes. Unbiased; its
    variance is small when $H$ has a few dominant eigenvalues (error
    $O(1/m)$ instead of $O(1/\sqrt m)$ for positive semidefinite $H$). The standard
    error is that of the deflated Hutchinson part, i.e. conditional on the sketch.

    Memory: the probes are drawn and multiplied ``probe_batch`` at a time (a
    ``vmap`` inside ``jax.lax.map``), so the working memory is that of
    ``probe_batch`` Hessian-vector products whatever ``num_probes`` is (Hutch++
    also keeps its $d\times s$ sketch). Probe $i$ has its own key, so the result
    does not depend on ``probe_batch``. Outside ``jit`` the estimator is compiled
    once per loss function object and shapes.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        key: PRNG key for the probes.
        num_probes: the budget $m$ of Hessian-vector products, $\ge 1$ (Hutch++:
            $\ge 3$).
        estimator: ``"hutchinson"`` or ``"hutch++"`` (static).
        probe_batch: probes per chunk, $\ge 1$ (static); default: as many as
            keep 8 parameter-sized vectors each within ``DEFAULT_PROBE_MEMORY``
            (256 MiB), between 1 and 64, capped at ``num_probes``.

    Returns:
        An ``Estimate`` of $\mathrm{tr}\,H$.

    Raises:
        ValueError: on a non-scalar loss, an unknown ``estimator``, or too few probes.

    References:
        Hutchinson (1989), "A stochastic estimator of the trace of the influence
        matrix for Laplacian smoothing splines", Comm. Stat. Simul. Comput. 18(3).
        Meyer, Musco, Musco, Woodruff (2021), "Hutch++: Optimal Stochastic Trace
        Estimation", SOSA. Yao et al. (2020), "PyHessian".

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([5.0, 3.0, 1.0]) * w**2)
        >>> trace = hessian_trace(loss_fn, jnp.zeros(3), key=jax.random.key(0))
        >>> round(float(trace.value), 10), float(trace.stderr)  # diagonal: exact
        (9.0, 0.0)
    """
    call = "hessian_trace"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    if estimator not in ("hutchinson", "hutch++"):
        raise ValueError(
            f"`{call}(estimator=...)` must be 'hutchinson' or 'hutch++', got "
            f"{estimator!r}"
        )
    minimum = 1 if estimator == "hutchinson" else 3
    num_probes = check_int(call, "num_probes", num_probes, minimum)
    probe_batch = resolve_probe_batch(call, probe_batch, num_probes, w)
    return _trace(loss_fn, w, key, num_probes, estimator, probe_batch)


def _quadratic_form(hvp, probe):
    return jnp.dot(probe, hvp(probe))


@eqx.filter_jit
def _trace(loss_fn, w, key, num_probes, estimator, probe_batch):
    x0, _, hvp = hessian_vector_product(loss_fn, w)
    d, dtype = x0.shape[0], x0.dtype
    if estimator == "hutchinson":

        def sample(probe_key):
            return _quadratic_form(hvp, jax.random.rademacher(probe_key, (d,), dtype))

        samples = map_probes(sample, key, num_probes, probe_batch)
        return Estimate(*mean_and_stderr(samples))
    sketch_size = num_probes // 3
    sketch_key, probe_key = jax.random.split(key)
    batch = min(probe_batch, sketch_size)
    products = map_probes(
        lambda k: hvp(jax.random.rademacher(k, (d,), dtype)),
        sketch_key,
        sketch_size,
        batch,
    )
    # Reduced QR of the (d, s) sketch gives an orthonormal basis of its range.
    basis, _ = jnp.linalg.qr(products.T)
    columns = basis.T
    exact_part = jnp.sum(
        jax.lax.map(lambda q: _quadratic_form(hvp, q), columns, batch_size=batch)
    )

    def deflated(k):
        probe = jax.random.rademacher(k, (d,), dtype)
        return _quadratic_form(hvp, probe - basis @ (basis.T @ probe))

    remaining = num_probes - 2 * sketch_size
    samples = map_probes(deflated, probe_key, remaining, min(probe_batch, remaining))
    mean, stderr = mean_and_stderr(samples)
    return Estimate(exact_part + mean, stderr)


class FrobeniusNorm(NamedTuple):
    r"""The Frobenius norm $\|H\|_F$ and the unbiased estimate of its square.

    Attributes:
        value: $\sqrt{\widehat{\|H\|_F^2}}$ (biased low by Jensen, consistent).
        stderr: the delta-method standard error of ``value``.
        squared: the unbiased estimate of $\|H\|_F^2 = \mathbb{E}\|Hu\|^2$.
        squared_stderr: its standard error.
    """

    value: Float[Array, ""]
    stderr: Float[Array, ""]
    squared: Float[Array, ""]
    squared_stderr: Float[Array, ""]


def hessian_frobenius_norm(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    *,
    key: PRNGKeyArray,
    num_probes: int = 30,
    probe_batch: int | None = None,
) -> FrobeniusNorm:
    r"""Frobenius norm of $H = \nabla^2L(w)$: $\|H\|_F^2 = \mathbb{E}_u\|Hu\|^2$.

    Gaussian probes $u\sim N(0, I)$: $\mathbb{E}\|Hu\|^2 = \mathrm{tr}(H^2) =
    \|H\|_F^2$, averaged over ``num_probes`` Hessian-vector products, evaluated
    ``probe_batch`` at a time (memory as in ``hessian_trace``). Linear
    stability of SGD at a minimum bounds this quantity (Wu, Wang, Su 2022; Wu & Su
    2023), which is why it is used as a sharpness measure.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        key: PRNG key for the probes.
        num_probes: number of Hessian-vector products, $\ge 1$.
        probe_batch: probes per chunk, $\ge 1$ (static; default from
            ``DEFAULT_PROBE_MEMORY``).

    Returns:
        A ``FrobeniusNorm``.

    Raises:
        ValueError: on a non-scalar loss or ``num_probes < 1``.

    References:
        Wu & Su (2023), "The Implicit Regularization of Dynamical Stability in
        Stochastic Gradient Descent", ICML (arXiv 2305.17490). Wu, Wang, Su (2022),
        "The alignment property of SGD noise and how it helps select flat minima: A
        stability analysis", NeurIPS. Hutchinson (1989).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([4.0, 3.0]) * w**2)
        >>> norm = hessian_frobenius_norm(
        ...     loss_fn, jnp.zeros(2), key=jax.random.key(0), num_probes=2000
        ... )
        >>> bool(abs(norm.squared - 25.0) < 4 * norm.squared_stderr)
        True
    """
    call = "hessian_frobenius_norm"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    num_probes = check_int(call, "num_probes", num_probes, 1)
    probe_batch = resolve_probe_batch(call, probe_batch, num_probes, w)
    return _frobenius(loss_fn, w, key, num_probes, probe_batch)


@eqx.filter_jit
def _frobenius(loss_fn, w, key, num_probes, probe_batch):
    x0, _, hvp = hessian_vector_product(loss_fn, w)

    def sample(probe_key):
        probe = jax.random.normal(probe_key, x0.shape, x0.dtype)
        return jnp.sum(jnp.square(hvp(probe)))

    samples = map_probes(sample, key, num_probes, probe_batch)
    squared, squared_stderr = mean_and_stderr(samples)
    value = jnp.sqrt(jnp.maximum(squared, 0.0))
    stderr = squared_stderr / (2.0 * value)
    return FrobeniusNorm(value, stderr, squared, squared_stderr)
