"""Test configuration shared by ``tests/`` and the doctests in ``flatjax/``.

float64 is enabled for every test: the paper's constants (Theorem 7) are near 1e-13 and
the reference checks compare to 1e-12. Rank promotion raises, so an accidental
broadcast between arrays of different rank is a test failure rather than a silent
wrong shape.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
