r"""Relative flatness (Petzka et al. 2021): curvature of one layer times its norms."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import check_int, check_key, check_scalar_loss
from ._base import Estimate, map_probes, mean_and_stderr, resolve_probe_batch


def relative_flatness(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    where: Callable[[PyTree], Array],
    *,
    key: PRNGKeyArray | None = None,
    num_probes: int | None = None,
    probe_batch: int | None = None,
) -> Estimate:
    r"""Relative flatness of one layer (Petzka et al. 2021).

    $\kappa(w) = \sum_{s,s'}\langle w_s, w_{s'}\rangle\,\mathrm{tr}(H_{s,s'})$.
    Petzka, Kamp, Adilova, Sminchisescu, Boley (2021), Definition 3: $W$ is the
    layer's weight matrix selected by ``where`` (rows $w_s$ along axis 0), and
    $H_{s,s'}$ the block of the Hessian of $L$ with respect to $W$ for rows $s,s'$.
    With $G = WW^\top$ and the Hessian $H_W$ of the layer indexed by (row, column),
    $\kappa = \mathrm{tr}(H_W(G\otimes I))$. Multiplying the layer by $\alpha$ and
    the next by $1/\alpha$ (a ReLU network's function is unchanged) multiplies $G$
    by $\alpha^2$ and $H_W$ by $1/\alpha^2$: $\kappa$ is invariant, unlike
    $\mathrm{tr}\,H$.

    Exact (``num_probes=None``): $\sum_{(s,j)}[H_W V_{sj}]_{sj}$ with
    $V_{sj} = (G\otimes I)e_{sj}$, one Hessian-vector product of the layer per
    entry of $W$, ``probe_batch`` at a time. Stochastic: Hutchinson,
    $\kappa = \mathbb{E}\langle U, H_W(GU)\rangle$ for Rademacher $U$, with its
    standard error. Each product is forward-over-reverse on $L$ as a function of
    $W$ alone.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        where: selects the layer's weight matrix (2-D) from ``w``, as in
            ``equinox.tree_at``, e.g. ``lambda p: p.layers[1].weight``.
        key: PRNG key, needed when ``num_probes`` is given.
        num_probes: None for the exact value, or the number of Hutchinson probes
            $\ge 1$.
        probe_batch: products per chunk (static; default from ``DEFAULT_PROBE_MEMORY``).

    Returns:
        An ``Estimate`` (``stderr`` 0 for the exact value).

    Raises:
        ValueError: on a non-scalar loss, a selected leaf that is not 2-D,
            ``num_probes < 1``, or ``num_probes`` without ``key``.

    References:
        Petzka, Kamp, Adilova, Sminchisescu, Boley (2021), "Relative Flatness and
        Generalization", NeurIPS, Definition 3 and Theorem 5.

    Examples:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[1.0, 2.0], [3.0, 0.0]])
        >>> def loss_fn(p):  # linear model: kappa = |w|^2 tr H = 5 * (5 + 9) / 2
        ...     return 0.5 * jnp.mean((x @ p["w"][0]) ** 2)
        >>> params = {"w": jnp.array([[1.0, 2.0]])}
        >>> float(relative_flatness(loss_fn, params, lambda p: p["w"]).value)
        35.0
    """
    call = "relative_flatness"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    weight = jnp.asarray(where(w))
    if weight.ndim != 2:
        raise ValueError(
            f"`{call}(where=...)` must select a 2-D weight matrix, got shape "
            f"{weight.shape}"
        )
    if num_probes is None:
        count = weight.size
    else:
        check_key(call, key)
        count = check_int(call, "num_probes", num_probes, 1)
    probe_batch = resolve_probe_batch(call, probe_batch, count, weight)
    return _relative_flatness(loss_fn, w, where, key, num_probes, probe_batch)


@eqx.filter_jit
def _relative_flatness(loss_fn, w, where, key, num_probes, probe_batch):
    weight = where(w)
    gram = weight @ weight.T

    def layer_loss(matrix):
        return loss_fn(eqx.tree_at(where, w, matrix))

    grad = jax.grad(layer_loss)

    def hvp(direction):
        return jax.jvp(grad, (weight,), (direction,))[1]

    if num_probes is None:
        rows, columns = weight.shape

        def entry(index):
            s, j = index // columns, index % columns
            direction = jnp.zeros_like(weight).at[:, j].set(gram[:, s])
            return hvp(direction)[s, j]

        indices = jnp.arange(rows * columns)
        if probe_batch >= rows * columns:
            entries = jax.vmap(entry)(indices)
        else:
            entries = jax.lax.map(entry, indices, batch_size=probe_batch)
        value = jnp.sum(entries)
        return Estimate(value, jnp.zeros_like(value))

    def sample(probe_key):
        probe = jax.random.rademacher(probe_key, weight.shape, weight.dtype)
        return jnp.sum(probe * hvp(gram @ probe))

    samples = map_probes(sample, key, num_probes, probe_batch)
    return Estimate(*mean_and_stderr(samples))
