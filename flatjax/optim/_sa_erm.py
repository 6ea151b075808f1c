"""The SA-ERM oracle: a minimizer of the sharpness-aware empirical risk."""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_int, check_prng_key, check_real, check_training_set
from ..problems import AbstractProblem
from ._maximizer_base import AbstractMaximizer, saer
from ._maximizers import AscentMaximizer
from ._transforms import project_point


class SAERMResult(NamedTuple):
    r"""A minimizer of $F_S^r$ and its SAER value.

    Attributes:
        w: the SA-ERM output $w_S \in \arg\min_{w\in W} F_S^r(w)$ (or an approximation).
        saer: $F_S^r(w)$: exact for ``"closed_form"``; for ``"numerical"`` it is
            evaluated with the maximizer used, a lower bound if that maximizer's
            ``method`` is ``"lower_bound"``.
        method: ``"closed_form"`` (the paper's minimizer) or ``"numerical"`` (the
            average of SA-GD iterates).
    """

    w: Float[Array, " d"]
    saer: Float[Array, ""]
    method: Literal["closed_form", "numerical"]


def sa_erm(
    problem: AbstractProblem,
    S: Array,
    radius,
    *,
    maximizer: AbstractMaximizer | None = None,
    key: PRNGKeyArray | None = None,
    steps: int = 1000,
    learning_rate=None,
) -> SAERMResult:
    r"""SA-ERM: output a minimizer of $F_S^r$ over the domain (arXiv 2511.03548, §3).

    Where the problem knows one (``problem.saer_minimizer``: Theorem 1's flat ERM
    $e_I$, the origin for Theorem 3's construction, Theorem 6's $-\frac12$, the origin
    for the classical construction), that closed form is returned. Otherwise SA-GD
    with the given ``maximizer`` (default: ``AscentMaximizer`` seeded by ``key``) runs
    ``steps`` iterations at $\eta = 1/(4\beta)$ from $w_1$, projected onto the
    domain, and returns the average iterate (Theorem 2 bounds its SAER).

    Args:
        problem: the problem.
        S: the training set.
        radius: $r \ge 0$.
        maximizer: a maximizer of $F_S$ over the ball; forces the numerical path.
        key: randomness for the default numerical maximizer.
        steps: SA-GD iterations of the numerical path.
        learning_rate: step size of the numerical path (default $1/(4\beta)$).

    Returns:
        A ``SAERMResult``.

    Raises:
        TypeError: for a ``problem`` that is not an ``AbstractProblem``, a
            non-array ``S``, a ``key`` that is not a PRNG key or a non-callable
            ``maximizer``.
        ValueError: for an ``S`` of the wrong shape, a negative or non-finite
            concrete ``radius`` or ``learning_rate`` (traced ones are checked at run
            time), ``steps < 1``, or the numerical path without ``maximizer`` or
            ``key``.

    Examples:
        >>> import jax
        >>> from flatjax.problems import FlatERM
        >>> problem = FlatERM(n=4, rho=0.25)
        >>> S = problem.sample_conditioned(jax.random.key(0))
        >>> result = sa_erm(problem, S, 0.5)
        >>> risk = problem.population_risk(result.w).value
        >>> float(result.saer), result.method, float(risk)
        (0.03125, 'closed_form', 0.140625)
    """
    call = "sa_erm"
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            f"`{call}(problem=...)` must be a flatjax problem (an AbstractProblem), "
            f"got a {type(problem).__name__}"
        )
    S = check_training_set(call, problem, S)
    radius = check_real(call, "radius", radius, lower=0.0)
    steps = check_int(call, "steps", steps, 1)
    key = check_prng_key(call, key, optional=True)
    if maximizer is not None and not callable(maximizer):
        raise TypeError(
            f"`{call}(maximizer=...)` must be callable as maximizer(w, radius), got "
            f"a {type(maximizer).__name__}"
        )
    if maximizer is None:
        closed_form = problem.saer_minimizer(S, radius)
        if closed_form is not None:
            w, value = closed_form
            return SAERMResult(w, value, "closed_form")

    def loss_fn(w):
        return problem.empirical_risk(w, S)

    if maximizer is None:
        if key is None:
            raise ValueError(
                f"`sa_erm`: {type(problem).__name__} has no closed-form SAER "
                "minimizer; pass `maximizer=` or `key=` for the numerical path"
            )
        maximizer = AscentMaximizer(loss_fn, key)
    if learning_rate is None:
        learning_rate = 1.0 / (4.0 * problem.beta)
    learning_rate = check_real(
        call, "learning_rate", learning_rate, lower=0.0, lower_open=True
    )
    grad_fn = jax.grad(loss_fn)

    def step(carry, _):
        w, total = carry
        v = maximizer(w, radius)
        w_next, _ = project_point(
            w - learning_rate * grad_fn(w + v), problem.domain_radius
        )
        return (w_next, total + w), None

    w1 = problem.initial_point()
    (_, total), _ = jax.lax.scan(step, (w1, jnp.zeros_like(w1)), None, length=steps)
    average = total / steps
    return SAERMResult(
        average, saer(loss_fn, average, radius, maximizer).value, "numerical"
    )
