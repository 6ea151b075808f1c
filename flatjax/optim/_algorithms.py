"""The one table of the optimizers a run, a sweep or the command line can name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import optax

from ._transforms import gd, sa_gd, sam


class Algorithm(NamedTuple):
    """An optimizer that can be named: its factory and its hyperparameters.

    Attributes:
        factory: builds the optax transform from the hyperparameters (keywords).
        hyperparameters: the factory's keyword arguments, all real scalars that
            may be traced (so a sweep vmaps over them).
        needs_maximizer: whether updates need the extra argument ``maximizer``
            (an exact ascent oracle: SA-GD).
        description: one line for listings and error messages.
    """

    factory: Callable[..., optax.GradientTransformationExtraArgs]
    hyperparameters: tuple[str, ...]
    needs_maximizer: bool
    description: str


class _AlgorithmTable(Mapping[str, Algorithm]):
    """The named optimizers, name -> ``Algorithm`` (read-only).

    ``"gd"``, ``"sam"``, ``"usam"``, ``"asam"`` and ``"sa_gd"``; build one with
    ``make_optimizer(name, **hyperparameters)``. ``flatjax.runner.run_fused``,
    ``flatjax.sweep`` and the ``flatjax`` command read this one table.
    """

    def __init__(self, entries: dict[str, Algorithm]):
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Algorithm:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ALGORITHMS({sorted(self._entries)})"


#: Every named optimizer (see ``_AlgorithmTable``).
ALGORITHMS: Mapping[str, Algorithm] = _AlgorithmTable(
    {
        "gd": Algorithm(gd, ("learning_rate",), False, "gradient descent"),
        "sam": Algorithm(
            sam,
            ("learning_rate", "radius"),
            False,
            "SAM, normalized ascent r g/||g|| (Foret et al. 2021)",
        ),
        "usam": Algorithm(
            functools.partial(sam, ascent="unnormalized"),
            ("learning_rate", "radius"),
            False,
            "USAM, unnormalized ascent r g",
        ),
        "asam": Algorithm(
            functools.partial(sam, ascent="adaptive"),
            ("learning_rate", "radius"),
            False,
            "ASAM, adaptive ascent (Kwon et al. 2021)",
        ),
        # The maximizer comes as the update's extra argument, never from here.
        "sa_gd": Algorithm(
            sa_gd,
            ("learning_rate", "radius"),
            True,
            "SA-GD, exact ascent v in argmax F_S(w + v) (needs a maximizer)",
        ),
    }
)


def make_optimizer(
    name: str, *, check_gradient: bool = True, **hyperparameters
) -> optax.GradientTransformation:
    """The optax transform of the optimizer called ``name`` in ``ALGORITHMS``.

    Args:
        name: a key of ``ALGORITHMS``.
        check_gradient: for the sharpness-aware methods, check on every update that
            the gradient received is ``grad_fn(params)`` (``sharpness_aware``'s
            guard against a transform placed before it). A runner that passes the
            raw gradient by construction, as ``flatjax.runner.run_fused`` does,
            turns it off; ignored by ``"gd"``.
        **hyperparameters: exactly the algorithm's ``hyperparameters`` (e.g.
            ``learning_rate=0.1, radius=0.05`` for ``"sam"``); values may be traced.

    Returns:
        The optax transform (an ``optax.GradientTransformationExtraArgs``).

    Raises:
        ValueError: for an unknown ``name`` (the message lists the valid ones).
        TypeError: for missing or unexpected hyperparameters.

    Examples:
        >>> import jax.numpy as jnp
        >>> opt = make_optimizer("gd", learning_rate=0.5)
        >>> w = jnp.array([1.0])
        >>> opt.update(jnp.array([2.0]), opt.init(w), w)[0]
        Array([-1.], dtype=float64)
    """
    if not isinstance(name, str) or name not in ALGORITHMS:
        raise ValueError(
            f"`make_optimizer(name=...)` must be one of {sorted(ALGORITHMS)}, got "
            f"{name!r}"
        )
    spec = ALGORITHMS[name]
    missing = [h for h in spec.hyperparameters if h not in hyperparameters]
    unexpected = sorted(set(hyperparameters) - set(spec.hyperparameters))
    if missing or unexpected:
        raise TypeError(
            f"`make_optimizer({name!r}, ...)` takes exactly the hyperparameters "
            f"{list(spec.hyperparameters)}; missing {missing}, unexpected {unexpected}"
        )
    if name == "gd":
        return spec.factory(**hyperparameters)
    return spec.factory(**hyperparameters, check_gradient=check_gradient)
