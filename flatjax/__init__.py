"""flatjax: flat minima and sharpness-aware optimization on exact hard instances.

The constructions of arXiv 2511.03548 ("Flat Minima and Generalization: Insights from
Stochastic Convex Optimization") as pure JAX problems, with sharpness-aware optimizers
as optax transforms. Most of the mathematics needs float64: call
``jax.config.update("jax_enable_x64", True)`` before creating arrays (the ``flatjax``
command does this itself).
"""

from . import problems
from .problems import (
    ClassicERM,
    FlatERM,
    LeastSquares,
    RiskEstimate,
    SAGDTrap,
    SAMSharp,
    SAMTrap,
    SquaredHinge,
)

__version__ = "0.1.0"

__all__ = [
    "ClassicERM",
    "FlatERM",
    "LeastSquares",
    "RiskEstimate",
    "SAGDTrap",
    "SAMSharp",
    "SAMTrap",
    "SquaredHinge",
    "problems",
]
