"""Leave-one-out model stability (Definition 2 of arXiv 2511.03548, Appendix B.3)."""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from ..problems import AbstractProblem, RiskEstimate
from ._runner import run


class LeaveOneOut(AbstractProblem):
    r"""$S^{(i)}$: example $i$ replaced by the null example $z_0$ ($f(w, z_0) = 0$).

    $F_{S^{(i)}}(w) = \frac1n\sum_{j\ne i} f(w, z_j)$: the normalization stays $1/n$
    (Definition 2 of arXiv 2511.03548, Appendix B.3). Computed as $F_S(w) - f(w,
    z_i)/n$, so the problem's fast path is reused; everything else delegates to the
    wrapped problem.

    Attributes:
        problem: the wrapped problem.
        index: $i$ (0-based; may be traced, e.g. under ``vmap``).
    """

    problem: AbstractProblem
    index: Int[Array, ""]
    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)

    def __init__(self, problem: AbstractProblem, index):
        self.problem = problem
        self.index = jnp.asarray(index)
        self.n = problem.n
        self.dtype = problem.dtype

    @property
    def d(self) -> int:
        """The wrapped problem's dimension."""
        return self.problem.d

    @property
    def beta(self) -> float:
        """The wrapped problem's smoothness."""
        return self.problem.beta

    @property
    def lipschitz(self) -> float:
        """The wrapped problem's Lipschitz constant."""
        return self.problem.lipschitz

    @property
    def domain_radius(self) -> float:
        """The wrapped problem's domain radius."""
        return self.problem.domain_radius

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The wrapped problem's example shape."""
        return self.problem.example_shape

    def in_support(self, z):
        """The wrapped problem's support (the null example is never in ``S``)."""
        return self.problem.in_support(z)

    def sample(self, key):
        """The wrapped problem's sampler."""
        return self.problem.sample(key)

    def loss(self, w, z):
        """The wrapped problem's loss."""
        return self.problem.loss(w, z)

    def empirical_risk(self, w, S):
        """$F_{S^{(i)}}(w) = F_S(w) - f(w, z_i)/n$."""
        removed = self.problem.loss(w, S[self.index])
        return self.problem.empirical_risk(w, S) - removed / self.problem.n

    def value_and_grad(self, w, S):
        """Value and gradient of ``empirical_risk`` (reuses a fused parent gradient)."""
        value, grad = self.problem.value_and_grad(w, S)
        removed, removed_grad = jax.value_and_grad(self.problem.loss)(w, S[self.index])
        n = self.problem.n
        return value - removed / n, grad - removed_grad / n

    def population_risk(
        self, w, key=None, *, num_samples: int = 100_000
    ) -> RiskEstimate:
        """The wrapped problem's population risk."""
        return self.problem.population_risk(w, key, num_samples=num_samples)

    def initial_point(self):
        """The wrapped problem's initial point."""
        return self.problem.initial_point()


class LooStabilityResult(NamedTuple):
    r"""$\ell_2$-on-average leave-one-out model stability of an algorithm on $S$.

    Attributes:
        epsilon: $\epsilon_{\mathrm{stab}} = \frac1n\sum_i\|A(S) - A(S^{(i)})\|^2$.
        per_example: $\|A(S) - A(S^{(i)})\|^2$ for each $i$.
        output: $A(S)$, the uniform average of the iterates on $S$.
    """

    epsilon: Float[Array, ""]
    per_example: Float[Array, " n"]
    output: Float[Array, " d"]


def loo_stability(
    problem: AbstractProblem,
    optimizer: optax.GradientTransformation,
    S: Array,
    steps: int,
    *,
    maximizer=None,
) -> LooStabilityResult:
    r"""Measure $\epsilon_{\mathrm{stab}}$ (Definition 2) of ``optimizer`` on ``S``.

    Runs the algorithm on $S$ and on the $n$ leave-one-out sets $S^{(i)}$ (the null
    example replaces $z_i$, normalization $1/n$) as one vmapped program; the output
    $A$ is the uniform average of the $T$ iterates, as in Lemma 5 (whose bound is
    ``flatjax.bounds.lemma5_stability_bound``). The same ``maximizer`` serves every
    run, so it must be exact for every $S^{(i)}$.

    Args:
        problem: the problem.
        optimizer: the algorithm (an optax transform, e.g. ``gd``, ``sam``).
        S: the training set.
        steps: $T$.
        maximizer: the exact maximizer for SA-GD.

    Returns:
        A ``LooStabilityResult``.

    Examples:
        >>> import jax
        >>> from flatjax.problems import LeastSquares
        >>> from flatjax.optim import gd
        >>> problem = LeastSquares(d=4, n=8)
        >>> S = problem.sample(jax.random.key(0))
        >>> result = loo_stability(problem, gd(0.25), S, steps=8)
        >>> bool(result.epsilon > 0), result.per_example.shape
        (True, (8,))
    """

    def output(p):
        return run(
            p,
            optimizer,
            S,
            steps,
            maximizer=maximizer,
            record_population=False,
            suffix_starts=(1,),
        ).average

    full = output(problem)
    indices = jnp.arange(problem.n)
    left_out = jax.vmap(lambda i: output(LeaveOneOut(problem, i)))(indices)
    per_example = jnp.sum(jnp.square(left_out - full[None, :]), axis=1)
    return LooStabilityResult(jnp.mean(per_example), per_example, full)
