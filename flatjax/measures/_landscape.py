r"""The loss landscape seen directly: path norm and loss along 1-D and 2-D slices."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import check_key, check_same_structure, check_scalar_loss
from ._base import flatten_loss


def path_norm(
    apply_fn: Callable[[PyTree, Array], Array],
    params: PyTree,
    input_shape: Sequence[int],
) -> Float[Array, ""]:
    r"""Squared $\ell_2$ path norm of a feed-forward ReLU network.

    $\sum_{\text{paths } p}\prod_{e\in p} w_e^2$ over all input-output paths, summed
    over the outputs, computed in one forward pass as the output of the same
    network with every parameter squared on an all-ones input (Neyshabur et al.
    2015; the ``path.norm`` of Jiang et al. 2020). This works because squared
    weights and a positive input keep every pre-activation non-negative, where
    ReLU is the identity, so the network multiplies along paths and adds over them.
    A bias is an edge from a constant unit: the result includes its paths too
    (a bias squared times the squared weights after it). Neyshabur et al.'s
    $\ell_2$ path norm is the square root of this value.

    Only valid for networks built from linear maps and positively homogeneous
    activations that are the identity on $[0,\infty)$ (ReLU, leaky ReLU): the
    function cannot check this.

    Args:
        apply_fn: ``apply_fn(params, x)``, the network's output for one input ``x``.
        params: the network's parameters (for an ``equinox`` model, the inexact
            arrays of ``eqx.partition(model, eqx.is_inexact_array)``).
        input_shape: the shape of one input.

    Returns:
        The squared path norm, a scalar.

    References:
        Neyshabur, Tomioka, Srebro (2015), "Norm-Based Capacity Control in Neural
        Networks", COLT. Neyshabur, Salakhutdinov, Srebro (2015), "Path-SGD",
        NeurIPS. Jiang et al. (2020), "Fantastic Generalization Measures and Where
        to Find Them", ICLR.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> def apply_fn(p, x):
        ...     return p["w2"] @ jax.nn.relu(p["w1"] @ x)
        >>> params = {"w1": jnp.array([[1.0, -2.0]]), "w2": jnp.array([[3.0]])}
        >>> float(path_norm(apply_fn, params, (2,)))  # 9 * (1 + 4)
        45.0
    """
    call = "path_norm"
    shape = tuple(input_shape)
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise ValueError(
            f"`{call}(input_shape=...)` must be a tuple of non-negative ints, got "
            f"{input_shape!r}"
        )
    squared = jax.tree_util.tree_map(jnp.square, params)
    dtype = ravel_pytree(params)[0].dtype
    return jnp.sum(apply_fn(squared, jnp.ones(shape, dtype)))


def filter_normalized_direction(
    key: PRNGKeyArray, w: PyTree, *, include_vectors: bool = False
) -> PyTree:
    r"""A Gaussian direction rescaled filter by filter to the norms of $w$.

    Li et al. (2018), §4: draw $d\sim N(0, I)$ with the structure of $w$, and rescale
    each filter $d_{i,j} \leftarrow d_{i,j}\,\|w_{i,j}\|/\|d_{i,j}\|$, where a filter
    is a slice along the first axis of a weight array with two or more dimensions
    (an output unit's incoming weights for ``equinox.nn.Linear``, an output channel
    for ``equinox.nn.Conv``). This removes the scale invariance of ReLU networks
    that makes unnormalized slices misleading. Biases and other vector or scalar
    leaves get a zero direction, as in Li et al.'s plots; with
    ``include_vectors=True`` each of them is rescaled as one filter instead.

    Args:
        key: PRNG key.
        w: the parameters.
        include_vectors: perturb leaves with fewer than two dimensions too.

    Returns:
        A direction structured like ``w``.

    References:
        Li, Xu, Taylor, Studer, Goldstein (2018), "Visualizing the Loss Landscape of
        Neural Nets", NeurIPS, §4.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> w = {"weight": jnp.array([[3.0, 4.0], [0.0, 1.0]]), "bias": jnp.ones(2)}
        >>> d = filter_normalized_direction(jax.random.key(0), w)
        >>> [round(float(x), 12) for x in jnp.linalg.norm(d["weight"], axis=1)]
        [5.0, 1.0]
        >>> d["bias"].tolist()
        [0.0, 0.0]
    """
    check_key("filter_normalized_direction", key)
    flat, unravel = ravel_pytree(w)
    # One draw for the whole pytree, split back into leaves.
    noise = unravel(jax.random.normal(key, flat.shape, flat.dtype))

    def rescale(leaf, direction):
        leaf = jnp.asarray(leaf)
        if leaf.ndim < 2 and not include_vectors:
            return jnp.zeros_like(leaf)
        # A filter is a slice along axis 0; a vector or scalar is a single filter.
        axes = tuple(range(1 if leaf.ndim >= 2 else 0, leaf.ndim))

        def norms(x):
            return jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))

        tiny = jnp.finfo(leaf.dtype).tiny
        return direction * norms(leaf) / jnp.maximum(norms(direction), tiny)

    return jax.tree_util.tree_map(rescale, w, noise)


def _check_grid(call: str, name: str, values) -> Array:
    values = jnp.asarray(values)
    if values.ndim != 1 or values.shape[0] < 1:
        raise ValueError(
            f"`{call}({name}=...)` must be a non-empty 1-D array, got shape "
            f"{values.shape}"
        )
    return values


def loss_along_direction(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    direction: PyTree,
    alphas: Float[Array, " m"],
) -> Float[Array, " m"]:
    r"""The 1-D slice $\alpha\mapsto L(w + \alpha d)$ on a grid of $\alpha$.

    Goodfellow et al.'s linear interpolation and Li et al.'s 1-D plots (use
    ``filter_normalized_direction`` for networks). For a quadratic the slice is
    the exact parabola $L(w) + \alpha\nabla L^\top d + \frac12\alpha^2 d^\top A d$.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        direction: $d$, structured like $w$.
        alphas: the grid, a 1-D array of length $m \ge 1$.

    Returns:
        The losses, shape ``(m,)``.

    Raises:
        ValueError: on a non-scalar loss, a ``direction`` not structured like
            ``w``, or a grid that is not a non-empty 1-D array.

    References:
        Li, Xu, Taylor, Studer, Goldstein (2018), "Visualizing the Loss Landscape of
        Neural Nets", NeurIPS. Goodfellow, Vinyals, Saxe (2015), "Qualitatively
        Characterizing Neural Network Optimization Problems", ICLR.

    Examples:
        >>> import jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)
        >>> alphas = jnp.array([-1.0, 0.0, 1.0])
        >>> loss_along_direction(loss_fn, jnp.zeros(2), jnp.ones(2), alphas).tolist()
        [1.0, 0.0, 1.0]
    """
    call = "loss_along_direction"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_same_structure(call, "direction", direction, w)
    alphas = _check_grid(call, "alphas", alphas)
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    step = ravel_pytree(direction)[0]
    return jax.vmap(lambda alpha: flat_loss(x0 + alpha * step))(alphas)


def loss_along_plane(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    direction1: PyTree,
    direction2: PyTree,
    alphas: Float[Array, " m"],
    betas: Float[Array, " k"],
) -> Float[Array, "m k"]:
    r"""The 2-D slice $(\alpha,\beta)\mapsto L(w + \alpha d_1 + \beta d_2)$ on a grid.

    The surface and contour plots of Li et al. (2018), with two (filter-normalized,
    for networks) directions. For a quadratic it is the exact paraboloid.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        direction1: $d_1$, structured like $w$.
        direction2: $d_2$, structured like $w$.
        alphas: the grid along $d_1$, a 1-D array of length $m \ge 1$.
        betas: the grid along $d_2$, a 1-D array of length $k \ge 1$.

    Returns:
        The losses, shape ``(m, k)``: entry ``[i, j]`` is at
        ``(alphas[i], betas[j])``.

    Raises:
        ValueError: as ``loss_along_direction``.

    References:
        Li, Xu, Taylor, Studer, Goldstein (2018), "Visualizing the Loss Landscape of
        Neural Nets", NeurIPS.

    Examples:
        >>> import jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)
        >>> e1, e2, grid = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), jnp.arange(2.0)
        >>> loss_along_plane(loss_fn, jnp.zeros(2), e1, e2, grid, grid).tolist()
        [[0.0, 0.5], [0.5, 1.0]]
    """
    call = "loss_along_plane"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_same_structure(call, "direction1", direction1, w)
    check_same_structure(call, "direction2", direction2, w)
    alphas = _check_grid(call, "alphas", alphas)
    betas = _check_grid(call, "betas", betas)
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    step1 = ravel_pytree(direction1)[0]
    step2 = ravel_pytree(direction2)[0]

    def row(alpha):
        return jax.vmap(lambda beta: flat_loss(x0 + alpha * step1 + beta * step2))(
            betas
        )

    return jax.vmap(row)(alphas)
