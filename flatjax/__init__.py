"""flatjax: flat minima and sharpness-aware optimization on exact hard instances.

The constructions of arXiv 2511.03548 ("Flat Minima and Generalization: Insights from
Stochastic Convex Optimization") as pure JAX problems, sharpness-aware optimizers as
optax transforms, and a ``lax.scan`` runner. Most of the mathematics needs float64:
call ``jax.config.update("jax_enable_x64", True)`` before creating arrays (the
``flatjax`` command does this itself). Traced hyperparameters are checked at run
time unless ``flatjax.runtime_checks(False)`` is in force.
"""

from . import bounds, measures, optim, problems, runner, sweep
from ._checks import runtime_checks, runtime_checks_enabled
from .optim import (
    AbstractMaximizer,
    AscentMaximizer,
    FunctionMaximizer,
    QuadraticMaximizer,
    SAERMResult,
    SAERResult,
    gd,
    maximize_quadratic_on_ball,
    project_onto_ball,
    sa_erm,
    sa_gd,
    saer,
    sam,
    sharpness_aware,
    sharpness_aware_wrapper,
)
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
from .runner import RunResult, run, run_fused

__version__ = "0.1.0"

__all__ = [
    "AbstractMaximizer",
    "AscentMaximizer",
    "ClassicERM",
    "FlatERM",
    "FunctionMaximizer",
    "LeastSquares",
    "QuadraticMaximizer",
    "RiskEstimate",
    "RunResult",
    "SAERMResult",
    "SAERResult",
    "SAGDTrap",
    "SAMSharp",
    "SAMTrap",
    "SquaredHinge",
    "bounds",
    "gd",
    "maximize_quadratic_on_ball",
    "measures",
    "optim",
    "problems",
    "project_onto_ball",
    "run",
    "run_fused",
    "runner",
    "runtime_checks",
    "runtime_checks_enabled",
    "sa_erm",
    "sa_gd",
    "saer",
    "sam",
    "sharpness_aware",
    "sharpness_aware_wrapper",
    "sweep",
]
