"""The registry of ``flatjax reproduce``'s experiments, one module each.

To add an experiment: write ``_<name>.py`` with one function
``<name>(settings: Settings) -> Experiment`` (sizes from ``settings.pick(tiny,
quick, full)``, verdicts from ``make_check`` / ``frequency_check`` /
``informative_upper_check`` of ``_verdicts``, each with a kind and a criterion
derived from the theorem, figures through ``save_figure``), import it here and add
it to ``EXPERIMENTS``; then plant a fault it must catch in
``tests/reproduce/test_mutations.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._algorithms import algorithms
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
    "algorithms": algorithms,
    "measures_predict": measures_predict,
}


def run_experiment(name: str, settings: Settings) -> Experiment:
    """Run one experiment and time it."""
    start = time.perf_counter()
    result = EXPERIMENTS[name](settings)
    result.seconds = time.perf_counter() - start
    return result
