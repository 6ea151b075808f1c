"""Sweeps over seeds, data and hyperparameters: vmapped, chunked, sharded, resumable."""

from ._config import MAXIMIZERS, OPTIMIZERS, PROBLEMS, SweepConfig
from ._engine import SweepResult, default_memory_budget, run_sweep, use_cpu_cores

__all__ = [
    "MAXIMIZERS",
    "OPTIMIZERS",
    "PROBLEMS",
    "SweepConfig",
    "SweepResult",
    "default_memory_budget",
    "run_sweep",
    "use_cpu_cores",
]
