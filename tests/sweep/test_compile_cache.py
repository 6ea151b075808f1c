"""``clear_compile_cache``: the sweep engine's compiled programs are forgotten.

The cache is keyed on the configuration, not on flatjax's code, so a function of
flatjax patched in-process is invisible to a sweep that reuses a program; the bug
caught is ``clear_compile_cache`` not clearing (the patched code never runs).
"""

import numpy as np

import flatjax.sweep._engine as sweep_engine
from flatjax.sweep import SweepConfig, clear_compile_cache, run_sweep

CONFIG = SweepConfig(
    problem="LeastSquares",
    optimizer="gd",
    grid={"d": [3], "n": [4], "learning_rate": [0.5]},
    seeds=2,
    steps=4,
    block_size=4,
)


def _final_risks():
    return run_sweep(CONFIG, progress=False).runs["final_empirical_risk"].to_numpy()


def test_a_compiled_program_is_not_reused_after_clearing(monkeypatch):
    clear_compile_cache()
    before = _final_risks()
    assert clear_compile_cache() >= 1  # the program compiled above is forgotten
    before_again = _final_risks()  # recompiled from the same code: same numbers
    np.testing.assert_array_equal(before_again, before)

    original = sweep_engine.run_fused

    def frozen(*args, learning_rate, **kwargs):  # every run stays at w_1
        return original(*args, learning_rate=0.0 * learning_rate, **kwargs)

    monkeypatch.setattr(sweep_engine, "run_fused", frozen)
    # Without clearing, the program compiled from the unpatched code is reused.
    np.testing.assert_array_equal(_final_risks(), before)
    clear_compile_cache()
    patched = _final_risks()
    assert not np.array_equal(patched, before)
    monkeypatch.undo()
    clear_compile_cache()  # no patched program outlives this test


def test_clearing_an_empty_cache_forgets_nothing():
    clear_compile_cache()
    assert clear_compile_cache() == 0
