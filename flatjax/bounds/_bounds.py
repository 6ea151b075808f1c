"""The bounds of arXiv 2511.03548 as pure JAX functions, with the proofs' constants.

Every function takes scalars (Python numbers or 0-d arrays) as keyword arguments and
returns a 0-d ``jnp`` array, so measured and predicted values can sit side by side.
Hyperparameters may be traced: a batch of them comes from ``jax.vmap`` and everything
runs under ``jax.jit``. Concrete arguments are validated (finite, in range, the
theorem's step-size limit); traced ones are not, since a Python ``if`` cannot look at
them.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from flatjax._checks import check_real, is_concrete

#: The constant of Theorem 3 in the corrected reading (proof of Theorem 3, Appendix
#: B.2, whose printed display lost a square):
#: $\frac14(\frac{1}{2\sqrt2}-\frac13)^2 \approx 1.0221\times10^{-4}$.
_THEOREM3_CONSTANT = 0.25 * (1.0 / (2.0 * math.sqrt(2.0)) - 1.0 / 3.0) ** 2

#: Relative slack on the non-strict boundary conditions ($\le$) of the hypotheses, so
#: that a value set exactly on the boundary, such as §7.3's $r=\rho+1/(\eta\sqrt T)$,
#: is not rejected by a rounding error of one ulp.
_BOUNDARY_SLACK = 1e-12


# ----------------------------------------------------------------------------------
# Validation. Each message names the call, the argument and the value received.


def _check_count(call: str, name: str, value, minimum: int):
    """Check a concrete count (``steps``, ``n``) is an integer >= ``minimum``."""
    check_real(call, name, value, lower=minimum)
    if is_concrete(value) and not float(np.asarray(value)).is_integer():
        raise ValueError(
            f"`{call}({name}=...)` must be an integer, got {float(np.asarray(value))}"
        )
    return value


def _check_step_size(call: str, learning_rate, beta, factor: int):
    r"""Check $\eta \le 1/(\text{factor}\cdot\beta)$ when both are concrete."""
    if not (is_concrete(learning_rate) and is_concrete(beta)):
        return
    eta = float(np.asarray(learning_rate))
    limit = 1.0 / (factor * float(np.asarray(beta)))
    if eta > limit * (1.0 + _BOUNDARY_SLACK):
        raise ValueError(
            f"`{call}(learning_rate=...)` must be <= 1/({factor}*beta) = {limit}, "
            f"got {eta}"
        )


def _check_optimization(call: str, learning_rate, radius, rho, beta, steps, factor):
    check_real(call, "learning_rate", learning_rate, lower=0.0, lower_open=True)
    check_real(call, "radius", radius, lower=0.0)
    check_real(call, "rho", rho, lower=0.0)
    check_real(call, "beta", beta, lower=0.0, lower_open=True)
    _check_count(call, "steps", steps, 1)
    _check_step_size(call, learning_rate, beta, factor)


def _positive_part(x):
    return jnp.maximum(x, 0.0)


def _real(x):
    """``x`` as a floating array; counts such as ``n**2`` must not overflow int32."""
    return jnp.asarray(x) * 1.0


# ----------------------------------------------------------------------------------
# Theorem 1 (SA-ERM).


def theorem1_flat_erm_excess_risk(
    *, rho: ArrayLike, check_theorem: bool = True
) -> Float[Array, ""]:
    r"""Theorem 1 of arXiv 2511.03548: the excess risk of the flat, bad ERM $e_I$.

    On the construction of Theorem 1 (Appendix A; ``flatjax.problems.FlatERM``) the
    flat empirical minimizer $w^{(1)} = e_I$ minimizes the SAER for every radius, yet

    $$F(e_I) - F(w^\star) = \tfrac14(1-\rho)^2 \ \ge\ \tfrac1{16}
    \quad\text{for } 0\le\rho\le\tfrac12 ,$$

    the $\Omega(1)$ of part (iii). This is the exact value, not only a bound: a fresh
    $z$ has $z(I)=1$ with probability $\frac12$ and then $f(e_I,z)=\frac12(1-\rho)^2$,
    and $F(w^\star)=0$ (proof of Theorem 1, Appendix A). The sharp ERM $\rho e_d$ has
    excess risk 0 (the proof's last line prints $F(\rho e_I)$, a typo for
    $F(\rho e_d)$).

    Args:
        rho: the flatness radius $\rho$; the theorem needs $0\le\rho\le\frac12$.
        check_theorem: when false, accept any $\rho\ge0$ and return the exact value
            $\frac14[1-\rho]_+^2$ on the same construction (e.g. the control
            $\rho=1$, where the gap vanishes).

    Returns:
        $\frac14[1-\rho]_+^2$ as a 0-d array.

    Raises:
        ValueError: if a concrete ``rho`` is not finite, negative, or (with
            ``check_theorem``) above $\frac12$. A traced ``rho`` is not checked.

    Examples:
        >>> print(f"{float(theorem1_flat_erm_excess_risk(rho=0.0)):.4f}")
        0.2500
        >>> print(f"{float(theorem1_flat_erm_excess_risk(rho=0.5)):.4f}")
        0.0625
    """
    call = "theorem1_flat_erm_excess_risk"
    check_real(call, "rho", rho, lower=0.0, upper=0.5 if check_theorem else None)
    return 0.25 * jnp.square(_positive_part(1.0 - jnp.asarray(rho)))


# ----------------------------------------------------------------------------------
# Optimization: Lemma 1, Theorems 2 and 5.


def _optimization_bound(learning_rate, radius, rho, beta, steps, initial_distance):
    excess_radius = _positive_part(jnp.asarray(radius) - rho)
    return jnp.square(_real(initial_distance)) / (
        learning_rate * _real(steps)
    ) + 4.0 * beta * jnp.square(excess_radius)


def _checked_optimization_bound(
    call, learning_rate, radius, rho, beta, steps, initial_distance
):
    _check_optimization(call, learning_rate, radius, rho, beta, steps, factor=4)
    check_real(call, "initial_distance", initial_distance, lower=0.0)
    return _optimization_bound(
        learning_rate, radius, rho, beta, steps, initial_distance
    )


def lemma1_regret_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    beta: ArrayLike,
    steps: ArrayLike,
    initial_distance: ArrayLike,
) -> Float[Array, ""]:
    r"""Lemma 1 of arXiv 2511.03548: the average regret of any perturbed gradient run.

    For any sequence $w_{t+1}=w_t-\eta\nabla F_S(w_t+v_t)$ with $\|v_t\|\le r$, on
    losses that are $\beta$-smooth, convex, non-negative and $\rho$-flat, with
    $\eta\le 1/(4\beta)$:

    $$\frac1T\sum_{t=1}^T F_S(w_t+v_t)-F_S(w^\star)\le
    \frac{\|w_1-w^\star\|^2}{\eta T}+4\beta\max\{r-\rho,0\}^2 .$$

    (The paper's sum index is written $i$; it is $t$. Digest §4.2, §8.)

    Args:
        learning_rate: the step size $\eta$, $0<\eta\le 1/(4\beta)$.
        radius: the perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        beta: the smoothness constant $\beta>0$.
        steps: the number of iterations $T\ge1$.
        initial_distance: $\|w_1-w^\star\|\ge0$.

    Returns:
        The right-hand side, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range, or if
            concrete ``learning_rate`` and ``beta`` have $\eta>1/(4\beta)$. Traced
            values are not checked.

    Examples:
        >>> bound = lemma1_regret_bound(
        ...     learning_rate=0.25, radius=0.6, rho=0.1, beta=1.0, steps=64,
        ...     initial_distance=1.0)
        >>> print(f"{float(bound):.6f}")
        1.062500
    """
    return _checked_optimization_bound(
        "lemma1_regret_bound",
        learning_rate,
        radius,
        rho,
        beta,
        steps,
        initial_distance,
    )


def theorem2_sagd_saer_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    beta: ArrayLike,
    steps: ArrayLike,
    initial_distance: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 2 of arXiv 2511.03548: SA-GD's average iterate almost minimizes $F_S^r$.

    SA-GD for $T$ steps with $\eta\le 1/(4\beta)$ on $\beta$-smooth, convex,
    non-negative, $\rho$-flat losses; $\widehat w=\frac1T\sum_{t=1}^T w_t$:

    $$F_S(\widehat w)\le F_S^r(\widehat w)\le
    \frac{\|w_1-w^\star\|^2}{\eta T}+4\beta\max\{r-\rho,0\}^2$$

    (Lemma 1 and Jensen's inequality; proof of Theorem 2, Appendix B.1). With
    $\eta=1/(4\beta)$ and $r-\rho=O(1/\sqrt T)$ this is $O(\beta/T)$.

    Args:
        learning_rate: the step size $\eta$, $0<\eta\le 1/(4\beta)$.
        radius: the SA-GD perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        beta: the smoothness constant $\beta>0$.
        steps: the number of iterations $T\ge1$.
        initial_distance: $\|w_1-w^\star\|\ge0$.

    Returns:
        The bound on $F_S^r(\widehat w)$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range, or if
            concrete ``learning_rate`` and ``beta`` have $\eta>1/(4\beta)$. Traced
            values are not checked.

    Examples:
        >>> bound = theorem2_sagd_saer_bound(
        ...     learning_rate=0.25, radius=0.6, rho=0.1, beta=1.0, steps=64,
        ...     initial_distance=1.0)
        >>> print(f"{float(bound):.6f}")
        1.062500
    """
    return _checked_optimization_bound(
        "theorem2_sagd_saer_bound",
        learning_rate,
        radius,
        rho,
        beta,
        steps,
        initial_distance,
    )


def theorem5_sam_empirical_risk_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    beta: ArrayLike,
    steps: ArrayLike,
    initial_distance: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 5 of arXiv 2511.03548: SAM's average iterate nearly minimizes $F_S$.

    SAM (normalized ascent) for $T$ steps with $\eta\le 1/(4\beta)$ on
    $\beta$-smooth, convex, non-negative, $\rho$-flat losses;
    $\widehat w=\frac1T\sum_{t=1}^T w_t$:

    $$F_S(\widehat w)\le\frac{\|w_1-w^\star\|^2}{\eta T}+4\beta\max\{r-\rho,0\}^2 .$$

    The same right-hand side as Theorem 2, but it bounds $F_S$ only, not the SAER.
    The statement cites the SA-GD update equation; the result is for SAM's
    (Theorem 5, Appendix C.1).

    Args:
        learning_rate: the step size $\eta$, $0<\eta\le 1/(4\beta)$.
        radius: the SAM perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        beta: the smoothness constant $\beta>0$.
        steps: the number of iterations $T\ge1$.
        initial_distance: $\|w_1-w^\star\|\ge0$.

    Returns:
        The bound on $F_S(\widehat w)$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range, or if
            concrete ``learning_rate`` and ``beta`` have $\eta>1/(4\beta)$. Traced
            values are not checked.

    Examples:
        >>> bound = theorem5_sam_empirical_risk_bound(
        ...     learning_rate=0.25, radius=0.0, rho=0.0, beta=1.0, steps=100,
        ...     initial_distance=1.0)
        >>> print(f"{float(bound):.6f}")
        0.040000
    """
    return _checked_optimization_bound(
        "theorem5_sam_empirical_risk_bound",
        learning_rate,
        radius,
        rho,
        beta,
        steps,
        initial_distance,
    )


# ----------------------------------------------------------------------------------
# Theorem 3 (SA-GD lower bound).


def _check_lower_bound(call, learning_rate, radius, rho, steps):
    check_real(call, "learning_rate", learning_rate, lower=0.0, lower_open=True)
    check_real(call, "radius", radius, lower=0.0)
    check_real(call, "rho", rho, lower=0.0)
    _check_count(call, "steps", steps, 1)


def theorem3_sagd_lower_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    steps: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 3 of arXiv 2511.03548: SA-GD's excess risk, the proof's explicit value.

    On the construction of Appendix B.2 (``flatjax.problems.SAGDTrap``), with
    probability at least $\frac12$ every suffix average $\widehat w_\tau$ of SA-GD
    with the adversarial maximizer has coordinates $\widehat w_\tau(I_s)\le
    -\eta(r-\rho)/2$ for $s\le T/2$, hence

    $$F(\widehat w_\tau)-F(w^\star)\ \ge\ \tfrac14\max\Big\{\tfrac{\eta(r-\rho)}{2}
    \sqrt{T/2}-\rho,\ 0\Big\}^2$$

    (the last display of the proof of Theorem 3, Appendix B.2, with its
    constant corrected). The theorem's hypotheses are checked by
    ``theorem3_hypotheses_hold``, not here; under them this value is at least
    ``theorem3_sagd_lower_bound_rate``. With the convention that $T$ steps give the
    iterates $w_1,\dots,w_T$ ($T-1$ updates), the value is a true lower bound for
    $T\ge2$ only: at $T=1$ no update happens and the risk is 0.

    Args:
        learning_rate: the step size $\eta>0$.
        radius: the SA-GD perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        steps: the number of iterations $T\ge1$.

    Returns:
        $\frac14[\frac{\eta[r-\rho]_+}{2}\sqrt{T/2}-\rho]_+^2$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range. Traced
            values are not checked.

    Examples:
        The reference setting of Theorem 3's numeric check at $T=64$
        ($\eta(r-\rho)\sqrt T=1$), where the exact risk of the best suffix
        average is 0.0553614:

        >>> bound = theorem3_sagd_lower_bound(
        ...     learning_rate=0.25, radius=0.6, rho=0.1, steps=64)
        >>> print(f"{float(bound):.6f}")
        0.016072
    """
    _check_lower_bound("theorem3_sagd_lower_bound", learning_rate, radius, rho, steps)
    step = learning_rate * _positive_part(jnp.asarray(radius) - rho)
    return 0.25 * jnp.square(
        _positive_part(0.5 * step * jnp.sqrt(_real(steps) / 2.0) - rho)
    )


def theorem3_sagd_lower_bound_rate(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    steps: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 3 of arXiv 2511.03548: the rate $c\,\eta^2(r-\rho)^2T$, $c$ explicit.

    Under the hypothesis $\rho<\eta(r-\rho)\sqrt T/3$ (equivalent to the theorem's
    $\rho<r(1-\frac{3}{3+\eta\sqrt T})$), ``theorem3_sagd_lower_bound`` is at least

    $$c\,\eta^2(r-\rho)^2T,\qquad c=\tfrac14\Big(\tfrac1{2\sqrt2}-\tfrac13\Big)^2
    \approx1.0221\times10^{-4} .$$

    Corrected reading: the paper's final display prints
    "$\ge\frac{1}{4\cdot100^2}\eta(r-\rho)\sqrt T$", which lost a square; the
    argument gives the squared form with the constant $c$ above, which is at least
    the paper's $\frac1{4\cdot100^2}=2.5\times10^{-5}$ (proof of Theorem 3,
    Appendix B.2).

    Args:
        learning_rate: the step size $\eta>0$.
        radius: the SA-GD perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        steps: the number of iterations $T\ge1$.

    Returns:
        $c\,\eta^2[r-\rho]_+^2T$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range. Traced
            values are not checked.

    Examples:
        >>> bound = theorem3_sagd_lower_bound_rate(
        ...     learning_rate=0.25, radius=0.6, rho=0.1, steps=64)
        >>> print(f"{float(bound):.4e}")
        1.0221e-04
    """
    _check_lower_bound(
        "theorem3_sagd_lower_bound_rate", learning_rate, radius, rho, steps
    )
    step = learning_rate * _positive_part(jnp.asarray(radius) - rho)
    return _THEOREM3_CONSTANT * jnp.square(step) * _real(steps)


def theorem3_hypotheses_hold(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    steps: ArrayLike,
) -> Bool[Array, ""]:
    r"""Whether Theorem 3 of arXiv 2511.03548 applies to $(\eta, r, \rho, T)$.

    The hypotheses are

    $$\rho<r\Big(1-\frac{3}{3+\eta\sqrt T}\Big)\qquad\text{and}\qquad
    \eta(r-\rho)\le\frac1{\sqrt T},$$

    the first equivalent to $\rho<\eta(r-\rho)\sqrt T/3$ (Theorem 3). This
    predicate also asks $T\ge2$: with $T$ steps giving the iterates
    $w_1,\dots,w_T$, $T=1$ makes no update and the risk is 0, below
    any positive bound. The non-strict inequality accepts a relative rounding slack
    of $10^{-12}$, so that $r=\rho+1/(\eta\sqrt T)$ counts as on the boundary.

    Args:
        learning_rate: the step size $\eta>0$.
        radius: the SA-GD perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        steps: the number of iterations $T\ge1$.

    Returns:
        A boolean 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range. Traced
            values are not checked.

    Examples:
        >>> bool(theorem3_hypotheses_hold(
        ...     learning_rate=0.25, radius=0.6, rho=0.1, steps=64))
        True
        >>> bool(theorem3_hypotheses_hold(
        ...     learning_rate=0.25, radius=0.5, rho=0.4, steps=64))
        False
    """
    _check_lower_bound("theorem3_hypotheses_hold", learning_rate, radius, rho, steps)
    steps = _real(steps)
    root = jnp.sqrt(steps)
    radius = jnp.asarray(radius)
    flatness_below = rho < radius * (1.0 - 3.0 / (3.0 + learning_rate * root))
    step_small = learning_rate * (radius - rho) * root <= 1.0 + _BOUNDARY_SLACK
    return jnp.asarray(flatness_below & step_small & (steps >= 2))


# ----------------------------------------------------------------------------------
# Theorem 6 (SAM stuck at a sharp point).


def theorem6_sam_saer_gap(*, radius: ArrayLike) -> Float[Array, ""]:
    r"""Theorem 6 of arXiv 2511.03548: SAM's output misses the SAER minimum by $r^2/2$.

    On $f(w)=\frac12\max(0,w)^2$ over $W=[-1,1]$ from $w_1=0$
    (``flatjax.problems.SAMSharp``), SAM never moves, the SAER is
    $F_S^r(w)=\frac12\max(0,w+r)^2$, and for every suffix average

    $$F_S^r(\widehat w_\tau)-F_S^r(w^\star)=F_S^r(0)-F_S^r(-\tfrac12)=\tfrac12r^2
    \qquad(0\le r\le\tfrac12),$$

    the $\Omega(r^2)$ of the theorem, exactly (proof of Theorem 6, Appendix C.2).
    The proof's "$f'(w)=w$ for $w\ne0$" should read $w>0$.

    Args:
        radius: the SAM perturbation radius $r$, $0\le r\le\frac12$.

    Returns:
        $\frac12r^2$, a 0-d array.

    Raises:
        ValueError: if a concrete ``radius`` is not finite or outside
            $[0,\frac12]$. A traced ``radius`` is not checked.

    Examples:
        >>> print(f"{float(theorem6_sam_saer_gap(radius=0.5)):.4f}")
        0.1250
    """
    check_real("theorem6_sam_saer_gap", "radius", radius, lower=0.0, upper=0.5)
    return 0.5 * jnp.square(jnp.asarray(radius))


# ----------------------------------------------------------------------------------
# Theorem 7 (SAM lower bound, realizable).


def _check_theorem7(call, learning_rate, radius, steps):
    check_real(call, "learning_rate", learning_rate, lower=0.0, lower_open=True)
    check_real(call, "radius", radius, lower=0.0)
    _check_count(call, "steps", steps, 1)


def theorem7_sam_lower_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    steps: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 7 of arXiv 2511.03548: SAM's risk is $\Omega(\eta^2r^2T)$ when $\rho=0$.

    On the construction of Appendix C.3 (``flatjax.problems.SAMTrap``), with
    probability at least $\frac13$ every suffix average has
    $\widehat w_\tau^{(I)}(s)\le-\eta r/4$ for $3\le s\le T/2$, and a fresh $z$ with
    $z(I)=1$ (probability $\frac12$) makes $f_1$ charge them, so

    $$F(\widehat w_\tau)-F(w^\star)\ \ge\ \tfrac14\sum_{s=3}^{\lfloor T/2\rfloor}
    \Big(\frac{\eta r}{4}\Big)^2=\frac{(\lfloor T/2\rfloor-2)\,\eta^2r^2}{64}.$$

    This is a safe constant for the last step of the proof of Theorem 7
    (Appendix C.3), "roughly
    $(T/2-2)\eta^2r^2/64$"; the floor makes it exact for odd $T$. The paper's last
    display, $\|\widehat w_\tau\|^2\ge\frac14\eta^2r^2\cdot\frac T2$, is loose with
    constants, and its "for $s\ge T/2$" should read $s\le T/2$. The
    hypotheses ($\eta r\le 1/(2\sqrt T)$, $n\ge6$, $T\ge6$) are checked by
    ``theorem7_hypotheses_hold``, not here; below $T=6$ the value is clipped at 0.

    Args:
        learning_rate: the step size $\eta>0$.
        radius: the SAM perturbation radius $r\ge0$.
        steps: the number of iterations $T\ge1$.

    Returns:
        $\max(\lfloor T/2\rfloor-2,0)\,\eta^2r^2/64$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range. Traced
            values are not checked.

    Examples:
        The saturated regime ($\eta r\sqrt T=\frac12$) at $T=16$:

        >>> bound = theorem7_sam_lower_bound(
        ...     learning_rate=1 / 24, radius=3.0, steps=16)
        >>> print(f"{float(bound):.6f}")
        0.001465
    """
    _check_theorem7("theorem7_sam_lower_bound", learning_rate, radius, steps)
    positions = _positive_part(jnp.floor(_real(steps) / 2.0) - 2.0)
    return positions * jnp.square(learning_rate * jnp.asarray(radius)) / 64.0


def theorem7_hypotheses_hold(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    steps: ArrayLike,
    n: ArrayLike,
) -> Bool[Array, ""]:
    r"""Whether Theorem 7 of arXiv 2511.03548 applies to $(\eta, r, T, n)$.

    The hypotheses are $\eta r\le\frac1{2\sqrt T}$, $n\ge6$ and $T\ge6$, with
    $\rho=0$ (Theorem 7; Lemma 7 inside the proof states the weaker
    $\eta r\le 1/\sqrt T$, the theorem's condition is used here). The
    non-strict inequality accepts a relative rounding slack of $10^{-12}$.

    Args:
        learning_rate: the step size $\eta>0$.
        radius: the SAM perturbation radius $r\ge0$.
        steps: the number of iterations $T\ge1$.
        n: the sample size $n\ge1$.

    Returns:
        A boolean 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range. Traced
            values are not checked.

    Examples:
        >>> bool(theorem7_hypotheses_hold(
        ...     learning_rate=1 / 24, radius=3.0, steps=16, n=6))
        True
        >>> bool(theorem7_hypotheses_hold(
        ...     learning_rate=1 / 24, radius=3.0, steps=16, n=5))
        False
    """
    call = "theorem7_hypotheses_hold"
    _check_theorem7(call, learning_rate, radius, steps)
    _check_count(call, "n", n, 1)
    steps = _real(steps)
    step_small = 2.0 * learning_rate * jnp.asarray(radius) * jnp.sqrt(steps) <= (
        1.0 + _BOUNDARY_SLACK
    )
    return jnp.asarray(step_small & (_real(n) >= 6) & (steps >= 6))


# ----------------------------------------------------------------------------------
# Stability and population upper bounds: Lemmas 4 and 5, Theorems 4 and 8.


def _stability(learning_rate, radius, rho, beta, steps, n, initial_distance):
    excess_radius = _positive_part(jnp.asarray(radius) - rho)
    eta_beta_steps = learning_rate * beta * _real(steps)
    n_squared = jnp.square(_real(n))
    # Lemma 1 bounds the proof's sum by ||w_1 - w*||^2 / eta, which the proof writes
    # as 1 / eta: max(1, D^2) keeps the printed constant valid for every D.
    distance_factor = jnp.maximum(1.0, jnp.square(_real(initial_distance)))
    return (
        24.0 * eta_beta_steps * jnp.square(radius)
        + 96.0 * distance_factor * eta_beta_steps / n_squared
        + 768.0 * jnp.square(eta_beta_steps) * jnp.square(excess_radius) / n_squared
    )


def lemma4_population_risk_bound(
    *,
    empirical_risk: ArrayLike,
    stability: ArrayLike,
    beta: ArrayLike,
) -> Float[Array, ""]:
    r"""Lemma 4 of arXiv 2511.03548: population risk from empirical risk and stability.

    If $A$ is $\ell_2$-on-average leave-one-out $\epsilon$-stable (Definition 2) and
    every $f(\cdot,z)$ is convex and $\beta$-smooth, then

    $$\mathbb E\,F(A(S))\le 4\,\mathbb E\,F_S(A(S))+3\beta\epsilon$$

    (Lemma 7 of Schliserman & Koren, COLT 2022; Lemma 4 of the paper).

    Args:
        empirical_risk: $\mathbb E\,F_S(A(S))\ge0$ (or an upper bound on it).
        stability: the stability $\epsilon\ge0$ (e.g. ``lemma5_stability_bound``).
        beta: the smoothness constant $\beta>0$.

    Returns:
        $4\,\mathbb E F_S+3\beta\epsilon$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range. Traced
            values are not checked.

    Examples:
        >>> bound = lemma4_population_risk_bound(
        ...     empirical_risk=0.01, stability=0.02, beta=2.0)
        >>> print(f"{float(bound):.4f}")
        0.1600
    """
    call = "lemma4_population_risk_bound"
    check_real(call, "empirical_risk", empirical_risk, lower=0.0)
    check_real(call, "stability", stability, lower=0.0)
    check_real(call, "beta", beta, lower=0.0, lower_open=True)
    return 4.0 * jnp.asarray(empirical_risk) + 3.0 * beta * jnp.asarray(stability)


def lemma5_stability_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    beta: ArrayLike,
    steps: ArrayLike,
    n: ArrayLike,
    initial_distance: ArrayLike,
) -> Float[Array, ""]:
    r"""Lemma 5 of arXiv 2511.03548: stability of any perturbed gradient method.

    For $w_{t+1}=w_t-\eta\nabla F_S(w_t+v_t)$ with $\|v_t\|\le r$ and
    $\eta\le1/(2\beta)$, on $\beta$-smooth, convex, non-negative, $\rho$-flat
    losses, the average iterate is $\ell_2$-on-average leave-one-out
    $\epsilon$-stable with the constants printed in the proof:

    $$\epsilon\le 24\eta\beta r^2T+\frac{96\max(1,D^2)\,\beta\eta T}{n^2}
    +\frac{768\beta^2\eta^2T^2\max(r-\rho,0)^2}{n^2},\qquad
    D=\|w_1-w^\star\| .$$

    The first term comes from $\|v_t-v_t^{(i)}\|^2\le4r^2$: the two coupled runs
    may perturb in unrelated directions. The initial distance: the proof bounds
    $\sum_tF_S(w_t+v_t)$ by Lemma 1, whose first term is $D^2/\eta$, and writes it
    as $1/\eta$, i.e. it assumes $D\le1$ (true in the paper's setting: unit ball,
    $w_1=0$). For a general $D$ the same proof gives the printed bound with $96$
    replaced by $96\max(1,D^2)$, which is what is returned; at $D\le1$ it is the
    paper's bound. The lemma's $\eta\le1/(2\beta)$ is weaker than the
    $1/(4\beta)$ of the theorems that use it.

    Args:
        learning_rate: the step size $\eta$, $0<\eta\le 1/(2\beta)$.
        radius: the perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        beta: the smoothness constant $\beta>0$.
        steps: the number of iterations $T\ge1$.
        n: the sample size $n\ge1$.
        initial_distance: $D=\|w_1-w^\star\|\ge0$ (enters as $\max(1,D^2)$).

    Returns:
        The bound on $\epsilon_{\mathrm{stab}}$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range, or if
            concrete ``learning_rate`` and ``beta`` have $\eta>1/(2\beta)$. Traced
            values are not checked.

    Examples:
        >>> bound = lemma5_stability_bound(
        ...     learning_rate=0.5, radius=0.0, rho=0.0, beta=1.0, steps=10, n=10,
        ...     initial_distance=1.0)
        >>> print(f"{float(bound):.4f}")
        4.8000
        >>> bound = lemma5_stability_bound(
        ...     learning_rate=0.5, radius=0.0, rho=0.0, beta=1.0, steps=10, n=10,
        ...     initial_distance=2.0)
        >>> print(f"{float(bound):.4f}")
        19.2000
    """
    call = "lemma5_stability_bound"
    _check_optimization(call, learning_rate, radius, rho, beta, steps, factor=2)
    _check_count(call, "n", n, 1)
    check_real(call, "initial_distance", initial_distance, lower=0.0)
    return _stability(learning_rate, radius, rho, beta, steps, n, initial_distance)


def _population_bound(call, learning_rate, radius, rho, beta, steps, n, distance):
    _check_optimization(call, learning_rate, radius, rho, beta, steps, factor=4)
    _check_count(call, "n", n, 1)
    check_real(call, "initial_distance", distance, lower=0.0)
    empirical = _optimization_bound(learning_rate, radius, rho, beta, steps, distance)
    stability = _stability(learning_rate, radius, rho, beta, steps, n, distance)
    return 4.0 * empirical + 3.0 * beta * stability


def theorem4_sagd_population_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    beta: ArrayLike,
    steps: ArrayLike,
    n: ArrayLike,
    initial_distance: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 4 of arXiv 2511.03548: SA-GD's population risk, constants explicit.

    Lemma 4 applied to Theorem 2 and Lemma 5 (proof of Theorem 4; the explicit
    form of the theorem's $O(\cdot)$), for $\eta\le1/(4\beta)$ and
    $\widehat w=\frac1T\sum_t w_t$:

    $$\mathbb E F(\widehat w)\le\frac{4D^2}{\eta T}+16\beta(r-\rho)_+^2
    +72\eta\beta^2r^2T+\frac{288\max(1,D^2)\,\beta^2\eta T}{n^2}
    +\frac{2304\beta^3\eta^2T^2(r-\rho)_+^2}{n^2},\qquad D=\|w_1-w^\star\|.$$

    The optimization term (Theorem 2) carries $D^2$ exactly; the stability term
    (Lemma 5) carries $\max(1,D^2)$, because Lemma 5's proof replaces $D^2/\eta$ by
    $1/\eta$ (it assumes $D\le1$); see ``lemma5_stability_bound``. The
    corollary $O(\beta/n+\beta r^2n)$ is this bound at $T=n$, $\eta=1/(4\beta)$:
    $(16D^2+72\max(1,D^2))\beta/n+18\beta r^2n+160\beta(r-\rho)_+^2$. At $r=0$
    it is the known GD bound.

    Args:
        learning_rate: the step size $\eta$, $0<\eta\le 1/(4\beta)$.
        radius: the SA-GD perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        beta: the smoothness constant $\beta>0$.
        steps: the number of iterations $T\ge1$.
        n: the sample size $n\ge1$.
        initial_distance: $D=\|w_1-w^\star\|\ge0$ ($D^2$ in the optimization
            term, $\max(1,D^2)$ in the stability term).

    Returns:
        The bound on $\mathbb E F(\widehat w)$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range, or if
            concrete ``learning_rate`` and ``beta`` have $\eta>1/(4\beta)$. Traced
            values are not checked.

    Examples:
        >>> bound = theorem4_sagd_population_bound(
        ...     learning_rate=0.25, radius=0.0, rho=0.0, beta=1.0, steps=100, n=100,
        ...     initial_distance=1.0)
        >>> print(f"{float(bound):.4f}")
        0.8800
    """
    return _population_bound(
        "theorem4_sagd_population_bound",
        learning_rate,
        radius,
        rho,
        beta,
        steps,
        n,
        initial_distance,
    )


def theorem8_sam_population_bound(
    *,
    learning_rate: ArrayLike,
    radius: ArrayLike,
    rho: ArrayLike,
    beta: ArrayLike,
    steps: ArrayLike,
    n: ArrayLike,
    initial_distance: ArrayLike,
) -> Float[Array, ""]:
    r"""Theorem 8 of arXiv 2511.03548: SAM's population risk, constants explicit.

    Exactly the bound of Theorem 4 (``theorem4_sagd_population_bound``), with
    Theorem 5 in place of Theorem 2 (proof of Theorem 8; explicit constants):

    $$\mathbb E F(\widehat w)\le\frac{4D^2}{\eta T}+16\beta(r-\rho)_+^2
    +72\eta\beta^2r^2T+\frac{288\max(1,D^2)\,\beta^2\eta T}{n^2}
    +\frac{2304\beta^3\eta^2T^2(r-\rho)_+^2}{n^2},\qquad D=\|w_1-w^\star\|,$$

    with $\max(1,D^2)$ where Lemma 5's proof assumes $D\le1$.

    Args:
        learning_rate: the step size $\eta$, $0<\eta\le 1/(4\beta)$.
        radius: the SAM perturbation radius $r\ge0$.
        rho: the flatness radius $\rho\ge0$.
        beta: the smoothness constant $\beta>0$.
        steps: the number of iterations $T\ge1$.
        n: the sample size $n\ge1$.
        initial_distance: $D=\|w_1-w^\star\|\ge0$ ($D^2$ in the optimization
            term, $\max(1,D^2)$ in the stability term).

    Returns:
        The bound on $\mathbb E F(\widehat w)$, a 0-d array.

    Raises:
        ValueError: if a concrete argument is not finite or out of range, or if
            concrete ``learning_rate`` and ``beta`` have $\eta>1/(4\beta)$. Traced
            values are not checked.

    Examples:
        >>> bound = theorem8_sam_population_bound(
        ...     learning_rate=0.25, radius=0.0, rho=0.0, beta=1.0, steps=100, n=100,
        ...     initial_distance=1.0)
        >>> print(f"{float(bound):.4f}")
        0.8800
    """
    return _population_bound(
        "theorem8_sam_population_bound",
        learning_rate,
        radius,
        rho,
        beta,
        steps,
        n,
        initial_distance,
    )
