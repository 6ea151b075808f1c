r"""Inner maximizers of SA-GD: an exact quadratic solver and a generic ascent search.

SA-GD (arXiv 2511.03548, Section 4) needs $v_t \in \arg\max_{\|v\|\le r} F_S(w_t + v)$,
the maximizer behind the SAER $F_S^r(w) = \max_{\|v\|\le r} F_S(w + v)$ (arXiv
2511.03548, Section 2). For a quadratic loss that is the trust-region subproblem, which
``maximize_quadratic_on_ball`` solves exactly; ``QuadraticMaximizer`` wraps it in
the ``AbstractMaximizer`` protocol. For any other differentiable loss,
``AscentMaximizer`` runs a multi-start projected gradient ascent, whose value is a
lower bound on the SAER.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import (
    check_array,
    check_int,
    check_parameters,
    check_prng_key,
    check_real,
    is_concrete,
)
from ._maximizer_base import AbstractMaximizer, MaximizerMethod

#: Steps of the bracketing iteration on the secular equation. Each step takes a
#: Newton step from the left end of the bracket, then halves the bracket's log-ratio
#: by a geometric bisection. Starting ratios are at most ~2^2046 in float64, so
#: ~11 bisections reach a factor 2, and Newton then converges quadratically. Over
#: thousands of random, clustered and near-hard instances (coefficients down to
#: 1e-300) at most 14 steps were needed to satisfy the KKT conditions to 2e-15; 30
#: leaves a margin, at a cost of O(30 n), negligible next to the O(n^3) ``eigh``.
SECULAR_ITERATIONS = 30

# The adaptive ascent step, in units of the radius: doubled after an accepted step,
# halved after a rejected one, and capped so that it never overflows.
_INITIAL_STEP = 1.0
_MAX_STEP = 2.0**20


def _check_quadratic(call: str, hessian, linear, linear_name: str):
    """Return (hessian, linear) as arrays, or raise on bad shapes or asymmetry."""
    if isinstance(hessian, list | tuple):
        hessian = np.asarray(hessian)
    if isinstance(linear, list | tuple):
        linear = np.asarray(linear)
    hessian = check_array(call, "hessian", hessian)
    linear = check_array(call, linear_name, linear)
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(
            f"`{call}(hessian=...)` must be a square matrix, got shape {hessian.shape}"
        )
    n = hessian.shape[0]
    if linear.shape != (n,):
        raise ValueError(
            f"`{call}({linear_name}=...)` must have shape {(n,)} to match the "
            f"hessian, got shape {linear.shape}"
        )
    if is_concrete(hessian) and n > 0:
        matrix = np.asarray(hessian, dtype=np.float64)
        asymmetry = float(np.max(np.abs(matrix - matrix.T)))
        scale = float(np.max(np.abs(matrix)))
        # eigh averages A and A^T, so rounding-level asymmetry (e.g. B @ B.T computed
        # in blocks) is harmless; sqrt(eps) of the hessian's dtype separates it from a
        # genuinely non-symmetric input.
        eps = float(jnp.finfo(jnp.result_type(float, hessian)).eps)
        tolerance = float(np.sqrt(eps)) * scale
        if not asymmetry <= tolerance:
            raise ValueError(
                f"`{call}(hessian=...)` must be symmetric, got max |A - A^T| = "
                f"{asymmetry:.3g} (tolerance {tolerance:.3g})"
            )
    return hessian, linear


def _clip_to_ball(v: Float[Array, " n"], radius: Float[Array, ""]) -> Array:
    """Scale ``v`` into the ball of radius ``radius`` less 4 ulps.

    The margin keeps a norm computed in another summation order within ``radius``.
    """
    target = radius * (1 - 4 * jnp.finfo(v.dtype).eps)
    norm = jnp.linalg.norm(v)
    too_long = norm > target
    return v * jnp.where(too_long, target / jnp.where(too_long, norm, 1.0), 1.0)


def _maximize_in_eigenbasis(
    eigenvalues: Float[Array, " n"],
    coefficients: Float[Array, " n"],
    radius: Float[Array, ""],
    iterations: int,
) -> Float[Array, " n"]:
    r"""Maximize $\sum_i \tfrac12\lambda_i y_i^2 + \beta_i y_i$ over $\|y\|\le r$.

    ``eigenvalues`` are ascending and ``radius`` is positive. Returns the root of
    the secular equation, or the $\mu = \mu_0$ solution when it has no root (see
    ``maximize_quadratic_on_ball``).
    """
    dtype = eigenvalues.dtype
    n = eigenvalues.shape[0]
    eps = jnp.finfo(dtype).eps
    top = eigenvalues[-1]
    # The multiplier mu lives in [max(lambda_max, 0), inf); parametrize it by the
    # shift s = mu - max(lambda_max, 0) and the gaps d_i = max(lambda_max, 0) -
    # lambda_i >= 0, so that a root next to the pole keeps full relative precision.
    gaps = jnp.maximum(top, 0.0) - eigenvalues
    # A coefficient with |beta_i| / r below the smallest normal number (flushed to 0
    # on CPU) counts as 0: it changes q by at most |beta_i| r, and would otherwise
    # put the root below the representable shifts.
    nonzero = jnp.abs(coefficients) / radius > 0

    def perturbation(shift):
        # y_i(s) = beta_i / (s + d_i); a term with beta_i = 0 is exactly 0, even at
        # its pole (the hard case), where 0/0 would give NaN.
        denominator = jnp.where(nonzero, shift + gaps, 1.0)
        return jnp.where(nonzero, coefficients / denominator, 0.0), denominator

    # Bracket of the root of ||y(s)|| = r (Moré & Sorensen 1983): each term alone
    # gives ||y(s)|| >= |beta_i| / (s + d_i), and ||y(s)|| <= ||beta|| / (s + d_n).
    lower = jnp.maximum(jnp.max(jnp.abs(coefficients) / radius - gaps), 0.0)
    upper = jnp.maximum(lower, jnp.linalg.norm(coefficients) / radius - gaps[-1])

    def newton_step(shift):
        # Newton on 1/||y(s)|| - 1/r, whose slope is sum_i y_i^2/(s + d_i)/||y||^3.
        # In unit vectors it cannot overflow next to a pole (s + d_i >= |beta_i|/r);
        # for s > 0 the step is taken relative to s, so that it does not underflow
        # when the root itself is tiny (near-hard case with a tiny |beta_i|).
        y, denominator = perturbation(shift)
        norm = jnp.linalg.norm(y)
        unit = y / jnp.where(norm > 0, norm, 1.0)
        relative = jnp.where(shift > 0, shift / denominator, 1.0 / denominator)
        slope = jnp.sum(jnp.where(nonzero, unit * (unit * relative), 0.0))
        step = (norm - radius) / radius / slope
        return jnp.where(shift > 0, shift * (1 + step), shift + step)

    def narrow(shift, low, high):
        outside = jnp.linalg.norm(perturbation(shift)[0]) > radius
        return jnp.where(outside, shift, low), jnp.where(outside, high, shift)

    def bracket_step(_, bracket):
        low, high = bracket
        # Newton on 1/||y(s)|| - 1/r, concave and increasing in s, from the left end:
        # its step never overshoots the root, and converges quadratically...
        newton = newton_step(low)
        newton = jnp.clip(jnp.where(jnp.isnan(newton), low, newton), low, high)
        low, high = narrow(newton, low, high)
        # ...except next to a pole carrying a tiny |beta_i| (the near-hard case),
        # where it only grows s by a factor ~1.5 a step. A geometric bisection
        # halves log(high / low) and reaches that regime in ~10 steps.
        probe = jnp.where(low > 0, jnp.sqrt(low) * jnp.sqrt(high), 0.5 * high)
        return narrow(probe, low, high)

    low, high = jax.lax.fori_loop(0, iterations, bracket_step, (lower, upper))
    closer = jnp.abs(jnp.linalg.norm(perturbation(low)[0]) - radius) < jnp.abs(
        jnp.linalg.norm(perturbation(high)[0]) - radius
    )
    shift = jnp.where(closer, low, high)
    boundary, _ = perturbation(shift)

    # mu = max(lambda_max, 0) itself: the interior solution -A^{-1} b when A is
    # negative definite, or the hard case, where b has no component along the top
    # eigenspace and a multiple of the top eigenvector fills the step to the sphere.
    # Eigenvalues within a few ulps of the top count as part of its eigenspace.
    cluster = gaps <= 10 * n * eps * jnp.max(jnp.abs(eigenvalues))
    at_pole = jnp.where(cluster, 0.0, coefficients / jnp.where(cluster, 1.0, gaps))
    fill = jnp.sqrt(jnp.maximum(jnp.square(radius) - jnp.sum(jnp.square(at_pole)), 0))
    at_pole = at_pole.at[-1].add(jnp.where(cluster[-1], fill, 0.0))

    def to_ball(y):
        norm = jnp.linalg.norm(y)
        return y * jnp.where(norm > radius, radius / jnp.where(norm > 0, norm, 1), 1)

    def objective(y):
        return jnp.sum(0.5 * eigenvalues * jnp.square(y) + coefficients * y)

    # The pole candidate can only be optimal when the secular equation has no root
    # (the shift stayed at 0); elsewhere it is off by O(mu - mu_0) in v while its
    # value may tie to rounding, so it is not even compared.
    boundary, at_pole = to_ball(boundary), to_ball(at_pole)
    use_pole = (shift == 0) & (objective(at_pole) > objective(boundary))
    return jnp.where(use_pole, at_pole, boundary)


def _maximize_quadratic(hessian, linear, radius, iterations=SECULAR_ITERATIONS):
    """The solver, without argument checks, in the promoted floating dtype."""
    dtype = jnp.result_type(float, hessian, linear)
    # Canonical arrays, so that a Python float, a NumPy scalar and an array radius
    # share one compilation.
    return _maximize_quadratic_compiled(
        jnp.asarray(hessian, dtype),
        jnp.asarray(linear, dtype),
        jnp.asarray(radius, dtype),
        iterations,
    )


@functools.partial(jax.jit, static_argnums=3)
def _maximize_quadratic_compiled(hessian, linear, radius, iterations):
    positive = radius > 0
    eigenvalues, eigenvectors = jnp.linalg.eigh(hessian)
    coefficients = eigenvectors.T @ linear
    y = _maximize_in_eigenbasis(
        eigenvalues, coefficients, jnp.where(positive, radius, 1.0), iterations
    )
    return jnp.where(positive, _clip_to_ball(eigenvectors @ y, radius), 0.0)


def maximize_quadratic_on_ball(
    hessian: Float[Array, "n n"],
    linear: Float[Array, " n"],
    radius: Float[Array, ""] | float,
) -> Float[Array, " n"]:
    r"""Exact maximizer of $q(v) = \tfrac12 v^\top A v + b^\top v$ over $\|v\|\le r$.

    The trust-region subproblem, written as a maximization, for any symmetric $A$
    (indefinite included). It is the inner problem of SA-GD (arXiv 2511.03548, Section
    4) for a quadratic loss, whose SAER (arXiv 2511.03548, Section 2) is
    $F(w) + \max_{\|v\|\le r} q(v)$ with $b = \nabla F(w)$.

    Algorithm. $v$ is a global maximizer iff, for some $\mu \ge 0$,
    $(\mu I - A)v = b$, $\mu I - A \succeq 0$ and $\mu(r - \|v\|) = 0$. With
    $A = Q\Lambda Q^\top$ (``jnp.linalg.eigh``) and $\beta = Q^\top b$, the
    candidate $y(\mu) = (\mu I - \Lambda)^{-1}\beta$ for
    $\mu > \mu_0 = \max(\lambda_{\max}, 0)$ solves the secular equation
    $\|y(\mu)\| = r$ in a bracket (Moré & Sorensen's bounds) for a fixed
    ``SECULAR_ITERATIONS`` = 30 steps. Each step takes a Newton step on
    $1/\|y(\mu)\| - 1/r$ (concave and increasing in $\mu$, so from the left end of
    the bracket it never overshoots and converges quadratically) and then a
    geometric bisection of the bracket (which rescues the near-hard case, a tiny
    component of $b$ along the top eigenvector, where Newton creeps). The unknown
    is the shift $\mu - \mu_0$, so a root next to the pole keeps full relative
    precision. When the equation has no root (the bracket collapses to $\mu_0$),
    $\mu = \mu_0$: the unconstrained maximizer $-A^{-1}b$ when $A$ is negative
    definite, or, in the hard case ($b$ orthogonal to the top eigenspace and
    $\|(\lambda_{\max} I - A)^{+} b\| \le r$), that vector plus the multiple of a
    top eigenvector that brings it to the sphere, whichever has the larger $q$.

    Accuracy. The eigendecomposition is backward stable and the shift is found to
    a few ulps, so the value is optimal up to $O(\epsilon(\|A\| r^2 + \|b\| r))$
    in the working precision $\epsilon$. In float64 the tests find the KKT
    conditions satisfied to ~2e-15 relative (checked to 1e-12), and no point of a
    fine polar grid (2-D) or of 200,000 random points (4-6-D) better than the
    solution beyond rounding (1e-15 relative); in float32 we measured KKT
    residuals and value gaps of ~6e-7 relative. $\|v\| \le r$ holds in floating
    point: a solution on the sphere is scaled in by 4 ulps.

    It is a pure function of arrays with a fixed iteration count, so it runs under
    ``jax.jit`` and ``jax.vmap``. ``radius`` = 0 returns exactly 0. A traced radius
    is checked at run time (negative or non-finite: a runtime error); with
    ``flatjax.runtime_checks(False)``, a traced radius $< 0$ returns 0 and a
    non-finite one gives non-finite output. Gradients through the solver are not
    supported (use Danskin's theorem, as ``QuadraticMaximizer`` does).

    Args:
        hessian: the symmetric matrix $A$, shape ``(n, n)``.
        linear: the linear term $b$, shape ``(n,)``.
        radius: the radius $r \ge 0$.

    Returns:
        A maximizer $v$, shape ``(n,)``, in the promoted floating dtype of the
        inputs. In the hard case the top-eigenvector component has a
        deterministic sign (either sign is optimal).

    Raises:
        ValueError: if ``hessian`` is not square, or (when concrete) not symmetric;
            if ``linear`` does not have shape ``(n,)``; if a concrete ``radius`` is
            negative, non-finite or not a scalar.

    References:
        J. J. Moré and D. C. Sorensen, "Computing a trust region step", SIAM J. Sci.
        Stat. Comput. 4(3), 1983. J. Nocedal and S. J. Wright, "Numerical
        Optimization", 2nd ed., §4.3 (the hard case).

    Examples:
        The hard case: $b$ has no component along the top eigenvector $e_1$, yet
        the maximizer moves along it to reach the sphere.

        >>> import jax.numpy as jnp
        >>> hessian = jnp.diag(jnp.array([2.0, 1.0]))
        >>> v = maximize_quadratic_on_ball(hessian, jnp.array([0.0, 0.1]), 1.0)
        >>> [round(float(x), 6) for x in v]
        [0.994987, 0.1]
        >>> maximize_quadratic_on_ball(-hessian, jnp.array([0.5, 0.0]), 1.0)
        Array([0.25, 0.  ], dtype=float64)
    """
    call = "maximize_quadratic_on_ball"
    hessian, linear = _check_quadratic(call, hessian, linear, "linear")
    radius = check_real(call, "radius", radius, lower=0)
    return _maximize_quadratic(hessian, linear, radius)


class QuadraticMaximizer(AbstractMaximizer):
    r"""Exact ball maximizer for a quadratic loss $F(u)=\tfrac12u^\top Au+g^\top u+c$.

    At $w$ it maximizes $F(w + v) = F(w) + (Aw + g)^\top v + \tfrac12 v^\top A v$
    over $\|v\| \le r$ with ``maximize_quadratic_on_ball`` (linear term
    $b = Aw + g$), so ``method`` is ``"exact"``: the SA-GD perturbation
    $v_t \in \arg\max_{\|v\|\le r} F(w_t + v)$ of SA-GD (Section 4), and
    ``saer`` returns the SAER (arXiv 2511.03548, Section 2). Parameters are flat
    vectors; the perturbation is returned in the dtype of $w$ (computed in the
    promoted dtype of $A$, $g$ and $w$). The constant $c$ does not move the
    maximizer and is not needed.

    The returned perturbation carries no gradient (``lax.stop_gradient``): by
    Danskin's theorem the gradient of $F^r$ at $w$ is $\nabla F(w + v^\star)$ when
    the maximizer is unique, which is what differentiating ``saer(...).value``
    then gives, and no derivative of the eigendecomposition is taken.

    Args:
        hessian: $A$, a symmetric ``(n, n)`` matrix.
        gradient: $g$, the gradient of $F$ at 0, shape ``(n,)``.

    Raises:
        ValueError: on a non-square or (when concrete) non-symmetric ``hessian``, a
            ``gradient`` of the wrong shape, and, at call time, a ``w`` of the
            wrong shape or a concrete negative or non-finite ``radius``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flatjax.optim import saer
        >>> hessian, gradient = jnp.diag(jnp.array([2.0, 1.0])), jnp.zeros(2)
        >>> maximizer = QuadraticMaximizer(hessian, gradient)
        >>> def loss(u):
        ...     return 0.5 * u @ hessian @ u + gradient @ u
        >>> result = saer(loss, jnp.array([0.0, 1.0]), 0.5, maximizer)
        >>> round(float(result.value), 12), result.method
        (1.125, 'exact')
    """

    hessian: Float[Array, "n n"]
    gradient: Float[Array, " n"]
    method: ClassVar[MaximizerMethod] = "exact"

    def __init__(self, hessian: Float[Array, "n n"], gradient: Float[Array, " n"]):
        self.hessian, self.gradient = _check_quadratic(
            "QuadraticMaximizer", hessian, gradient, "gradient"
        )

    def __call__(
        self, w: Float[Array, " n"], radius: Float[Array, ""] | float
    ) -> Float[Array, " n"]:
        r"""Return $v \in \arg\max_{\|v\|\le r} F(w + v)$."""
        call = "QuadraticMaximizer.__call__"
        n = self.hessian.shape[0]
        w = check_array(call, "w", w, shape=(n,), expected="(to match the hessian)")
        radius = check_real(call, "radius", radius, lower=0)
        hessian, gradient, w, radius = jax.lax.stop_gradient(
            (self.hessian, self.gradient, w, radius)
        )
        v = _maximize_quadratic(hessian, hessian @ w + gradient, radius)
        if jnp.issubdtype(w.dtype, jnp.floating) and w.dtype != v.dtype:
            # The parameters' dtype, and within the ball after the rounding.
            v = v.astype(w.dtype)
            radius = jnp.asarray(radius, w.dtype)
            v = jnp.where(radius > 0, _clip_to_ball(v, radius), 0.0)
        return jax.lax.stop_gradient(v)


def _unit(x: Float[Array, " m"]) -> tuple[Float[Array, " m"], Array]:
    """``x / ||x||`` and whether ``x`` is non-zero; the zero vector maps to 0."""
    norm = jnp.linalg.norm(x)
    nonzero = norm > 0
    return jnp.where(nonzero, x / jnp.where(nonzero, norm, 1.0), 0.0), nonzero


class AscentMaximizer(AbstractMaximizer):
    r"""Multi-start projected gradient ascent on $v \mapsto F(w+v)$, $\|v\|\le r$.

    A numerical inner maximizer for SA-GD (arXiv 2511.03548, Section 4) on any
    differentiable loss $F$ of a parameter pytree. Maximizing a function over a ball is
    not a convex program in general (even a convex $F$ has its maximum on the
    sphere, possibly at several local maxima), so the search only ever returns a
    feasible point: $F(w + v)$ is a **lower bound** on the SAER $F^r(w)$
    (arXiv 2511.03548, Section 2) and ``method`` is ``"lower_bound"``. It is exact
    up to the search's accuracy when a start lies in the basin of the global
    maximum (on random convex quadratics in 4-D the tests find relative gaps of
    at most ~1e-15 for $r \le 2$). Near a maximum $F$ is flat to second order, so
    comparisons of values pin $v$ down only to about $\sqrt{\epsilon}\,r$, while
    the value is found to rounding.

    Starts (``num_restarts`` of them, run in parallel): $r\,\nabla F(w)/\|\nabla
    F(w)\|$, which is SAM's perturbation (replaced by a random direction when
    $\nabla F(w) = 0$, where it is undefined), and $r u_k$ for directions $u_k$
    uniform on the unit sphere drawn from ``key``.

    Step rule (``num_steps`` steps per start): a normalized step of length
    $\alpha r$ along the gradient, projected onto the ball,
    $v' = P(v + \alpha r\,\nabla F/\|\nabla F\|)$, accepted only if
    $F(w+v') \ge F(w+v)$; $\alpha$ starts at 1, doubles after an accepted step
    and halves after a rejected one. Why: normalized steps in units of $r$ need no
    smoothness constant and are invariant to the scale of $F$; acceptance makes
    each start's value monotone, so its final point is its best point and the
    overall best is simply the best final point; large accepted steps turn the
    update into $v' = r\,\nabla F/\|\nabla F\|$, the conditional-gradient step that
    increases any convex $F$ and is the power method on quadratics, while halving
    after rejections converges to interior maxima of non-convex losses, where any
    fixed step would oscillate. Points where the loss is not finite are never
    accepted.

    The iteration counts are fixed, so the call runs under ``jax.jit`` and
    ``jax.vmap`` (over ``w``, or over keys by building the maximizer inside the
    mapped function). The returned perturbation carries no gradient
    (``lax.stop_gradient``), so differentiating ``saer(...).value`` gives
    $\nabla F(w + v)$ (Danskin's theorem). A concrete ``radius`` is checked now, a
    traced one at run time (``flatjax.runtime_checks``); with those checks off, a
    traced negative radius is treated as 0.

    Args:
        loss_fn: $F$, a differentiable scalar function of the parameter pytree.
        key: a PRNG key for the random starts.
        num_restarts: number of starts, $\ge 1$ (static).
        num_steps: ascent steps per start, $\ge 1$ (static).

    Raises:
        TypeError: if ``num_restarts`` or ``num_steps`` is not an int,
            ``loss_fn`` is not callable or ``key`` is not a PRNG key; at call time,
            if ``w`` is not a pytree of floating arrays.
        ValueError: if ``num_restarts`` or ``num_steps`` is < 1; at call time, if a
            concrete ``radius`` is negative, non-finite or not a scalar.

    Examples:
        At $w = 0$ the gradient vanishes; the random starts still find the top
        curvature direction, $F^r(0) = r^2$ (all of $v$ in ``"a"``). Compiling the
        call (here with ``eqx.filter_jit``) is much faster than running it eagerly.

        >>> import equinox as eqx
        >>> import jax
        >>> import jax.numpy as jnp
        >>> def loss(params):
        ...     return jnp.sum(params["a"] ** 2) + 0.5 * jnp.sum(params["b"] ** 2)
        >>> maximizer = AscentMaximizer(loss, jax.random.key(0))
        >>> w = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
        >>> v = eqx.filter_jit(maximizer)(w, 0.5)
        >>> round(float(loss(v)), 9), maximizer.method
        (0.25, 'lower_bound')
    """

    loss_fn: Callable[[PyTree], Float[Array, ""]]
    key: PRNGKeyArray
    num_restarts: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    method: ClassVar[MaximizerMethod] = "lower_bound"

    def __init__(
        self,
        loss_fn: Callable[[PyTree], Float[Array, ""]],
        key: PRNGKeyArray,
        num_restarts: int = 8,
        num_steps: int = 100,
    ):
        if not callable(loss_fn):
            raise TypeError(
                f"`AscentMaximizer(loss_fn=...)` must be callable, got {loss_fn!r}"
            )
        self.loss_fn = loss_fn
        self.key = check_prng_key("AscentMaximizer", key)  # pyright: ignore
        self.num_restarts = check_int(
            "AscentMaximizer", "num_restarts", num_restarts, 1
        )
        self.num_steps = check_int("AscentMaximizer", "num_steps", num_steps, 1)

    def __call__(self, w: PyTree, radius: Float[Array, ""] | float) -> PyTree:
        r"""Return the best feasible $v$ found, $\|v\| \le r$, same structure as $w$."""
        call = "AscentMaximizer.__call__"
        check_parameters(call, "w", w)
        radius = check_real(call, "radius", radius, lower=0)
        flat_w, unravel = ravel_pytree(jax.lax.stop_gradient(w))
        dtype = flat_w.dtype
        radius = jnp.maximum(jnp.asarray(jax.lax.stop_gradient(radius), dtype), 0.0)

        def objective(v):
            value = self.loss_fn(unravel(flat_w + v))
            return jnp.where(jnp.isfinite(value), value, -jnp.inf)

        evaluate = jax.value_and_grad(objective)

        def project(v):
            norm = jnp.linalg.norm(v)
            too_long = norm > radius
            return v * jnp.where(too_long, radius / jnp.where(too_long, norm, 1), 1)

        _, gradient_at_w = evaluate(jnp.zeros_like(flat_w))
        gradient_direction, has_gradient = _unit(gradient_at_w)
        directions = jax.random.normal(
            self.key, (self.num_restarts, flat_w.size), dtype
        )
        directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
        # The first random direction stands in for the gradient's when it is 0.
        directions = directions.at[0].set(
            jnp.where(has_gradient, gradient_direction, directions[0])
        )

        def climb(start):
            def step(_, carry):
                v, value, grad, step_size = carry
                direction, _ = _unit(grad)
                proposal = project(v + step_size * radius * direction)
                new_value, new_grad = evaluate(proposal)
                accept = (new_value >= value) & jnp.isfinite(new_value)
                return (
                    jnp.where(accept, proposal, v),
                    jnp.where(accept, new_value, value),
                    jnp.where(accept, new_grad, grad),
                    jnp.where(
                        accept, jnp.minimum(2 * step_size, _MAX_STEP), 0.5 * step_size
                    ),
                )

            value, grad = evaluate(start)
            step_size = jnp.asarray(_INITIAL_STEP, dtype)
            v, value, _, _ = jax.lax.fori_loop(
                0, self.num_steps, step, (start, value, grad, step_size)
            )
            return v, value

        starts = jax.vmap(project)(radius * directions)
        candidates, values = jax.vmap(climb)(starts)
        best = candidates[jnp.argmax(values)]
        best = jnp.where(radius > 0, _clip_to_ball(best, radius), 0.0)
        return jax.lax.stop_gradient(unravel(best))
