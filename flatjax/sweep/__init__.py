"""Sweeps over seeds, data and hyperparameters: vmapped, chunked, sharded, resumable."""

from ._config import MAXIMIZERS, OPTIMIZERS, PROBLEMS, SweepConfig
from ._distributed import initialize_distributed
from ._engine import (
    SweepResult,
    clear_compile_cache,
    default_memory_budget,
    run_sweep,
    use_cpu_cores,
)

__all__ = [
    "MAXIMIZERS",
    "OPTIMIZERS",
    "PROBLEMS",
    "SweepConfig",
    "SweepResult",
    "clear_compile_cache",
    "default_memory_budget",
    "initialize_distributed",
    "run_sweep",
    "use_cpu_cores",
]
