"""Sharpness-aware optimizers as optax transforms, and exact inner maximization."""

from ._maximizer_base import (
    AbstractMaximizer,
    FunctionMaximizer,
    SAERResult,
    saer,
    tree_norm,
)

__all__ = [
    "AbstractMaximizer",
    "FunctionMaximizer",
    "SAERResult",
    "saer",
    "tree_norm",
]
