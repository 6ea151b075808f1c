"""Fused trajectory kernels: one algorithm's update hand-fused in a problem's layout."""

from __future__ import annotations

import abc
from typing import ClassVar, Literal, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

#: The algorithms a fused kernel may implement (the ``flatjax.optim`` transforms of the
#: same names: ``gd(lr)``, ``sam(lr, r)``, ``sa_gd(lr, r)``).
Algorithm = Literal["gd", "sam", "sa_gd"]
ALGORITHMS: tuple[str, ...] = ("gd", "sam", "sa_gd")


class BlockIterate(NamedTuple):
    r"""An iterate of the constructions in their block layout.

    Attributes:
        blocks: the $2^n\times T$ block matrix (block $i$ is row $i$).
        last: the last coordinate $w(d)$.
    """

    blocks: Float[Array, "m T"]
    last: Float[Array, ""]


def flat_blocks(iterate: BlockIterate) -> Float[Array, " d"]:
    r"""The flat $w$ of the constructions' layout ``(blocks, last)``.

    The $2^n\times T$ block matrix row by row, then the last coordinate: the
    inverse of ``(problem.blocks(w), w[-1])``.
    """
    blocks, last = iterate
    return jnp.concatenate([blocks.reshape(-1), last[None]])


class KernelMetrics(NamedTuple):
    r"""What a kernel step reports at the current iterate $w_t$, at no extra pass.

    Attributes:
        empirical_risk: $F_S(w_t)$.
        grad_norm: $\|\nabla F_S(w_t)\|$.
        saer: $F_S(w_t + v_t)$ for the exact ascent of SA-GD (the sharpness-aware
            empirical risk $F_S^r(w_t)$ when the maximizer is exact), else ``None``.
    """

    empirical_risk: Float[Array, ""]
    grad_norm: Float[Array, ""]
    saer: Float[Array, ""] | None = None


class AbstractFusedKernel(eqx.Module):
    r"""A problem's hand-fused update for one algorithm, in the problem's own layout.

    The iterate lives in a layout chosen by the problem (for the constructions, the
    $2^n\times T$ block matrix and the last coordinate as separate arrays, so no
    step slices or concatenates a $d$-vector), and one ``step`` does what the optax
    transform does in ``flatjax.runner.run`` (gradient, ascent, descent) plus the
    per-iterate metrics, in as few passes over the iterate as the structure allows.
    A state may carry more than the iterate (e.g. per-block statistics of it, so
    that the next step need not read it again). ``flatjax.runner.run_fused``
    drives it; tests hold its whole trajectories equal to ``run`` with the
    matching ``flatjax.optim`` transform and the readable loss.

    Projection onto the domain ball is folded in: ``step(state, scale)`` treats the
    current iterate as ``scale * iterate(state)`` (``scale`` $\le 1$ is the
    projection factor the runner computes from ``norm(state)``), so projecting
    costs no extra pass.

    ``unroll`` is the number of steps per loop iteration of ``run_fused``'s scan:
    2 saves loop-control round trips between small per-step operations at twice
    the compile time; a kernel sets 1 where XLA fuses two unrolled steps worse
    (the SAM kernel of ``SAMTrap``: see there).
    """

    unroll: ClassVar[int] = 2

    @abc.abstractmethod
    def init(self, w: Float[Array, " d"]) -> PyTree:
        """The state of the flat iterate ``w``."""

    @abc.abstractmethod
    def iterate(self, state: PyTree) -> PyTree:
        """The iterate in the kernel's layout (what suffix averages sum)."""

    @abc.abstractmethod
    def flat(self, iterate: PyTree) -> Float[Array, " d"]:
        """The flat vector of an iterate in the kernel's layout."""

    @abc.abstractmethod
    def norm(self, state: PyTree) -> Float[Array, ""]:
        r"""$\|w\|$ of the state's iterate."""

    @abc.abstractmethod
    def step(
        self, state: PyTree, scale: Float[Array, ""]
    ) -> tuple[PyTree, KernelMetrics]:
        r"""One update from $w_t = $ ``scale * iterate(state)``: next state, metrics.

        The next state holds the algorithm's $w_t - \eta\,\tilde g_t$, not
        projected (the next call's ``scale`` does it); the metrics are at $w_t$.
        """

    def observe(
        self, iterate: PyTree, *, population: bool, saer: bool
    ) -> dict[str, Array] | None:
        r"""``run``'s metrics at an iterate in the kernel's layout, or ``None``.

        A kernel whose layout holds enough to evaluate them without the flat vector
        returns ``empirical_risk`` and ``iterate_norm``, with ``population_risk`` and
        ``population_exact`` when ``population`` (exact values only), and ``saer``
        ($F_S^r$ at the kernel's radius, through its maximizer) when ``saer``;
        ``run_fused`` then never expands the iterate for them. The default,
        ``None``, makes it evaluate them on the flat iterate.
        """
        return None
