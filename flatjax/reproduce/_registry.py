"""The registry of ``flatjax reproduce``'s experiments, one module each."""

from __future__ import annotations

import time
from collections.abc import Callable

from ._measures_predict import measures_predict
from ._theorem1 import theorem1
from ._theorem3 import theorem3
from ._theorem6 import theorem6
from ._theorem7 import theorem7
from ._theorems2_5 import theorems2_5
from ._upper_bounds import upper_bounds
from ._verdicts import Experiment, Settings

EXPERIMENTS: dict[str, Callable[[Settings], Experiment]] = {
    "theorem1": theorem1,
    "theorems2_5": theorems2_5,
    "theorem3": theorem3,
    "theorem6": theorem6,
    "theorem7": theorem7,
    "upper_bounds": upper_bounds,
    "measures_predict": measures_predict,
}


def run_experiment(name: str, settings: Settings) -> Experiment:
    """Run one experiment and time it."""
    start = time.perf_counter()
    result = EXPERIMENTS[name](settings)
    result.seconds = time.perf_counter() - start
    return result
