"""Bad inputs across the public Python API: each is refused clearly, or flagged.

Issue 15's suite (library half; the CLI and TOML half lives in ``tests/cli``).
Every case names one bad input and the refusal it must get: the exception type and
a regex that names the call and the argument (so a refusal from deep inside JAX,
or one that blames the wrong argument, fails). Divergence is data, not an error:
those cases assert the run's ``nonfinite_step`` flag instead.

Cases are grouped by kind (the test ids start with it): ``shape``, ``dtype``,
``type``, ``range``, ``nan_inf``, ``traced`` (a bad value under ``jit``/``vmap``,
refused at run time), ``key``, ``size`` (memory and huge sizes), ``structure``
(pytrees and training sets of the wrong kind) and ``divergence``.

Every case uses tiny problems and at most a few steps, so the whole module runs
in seconds; the traced cases compile one small program each.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatjax
from flatjax import bounds, measures
from flatjax.optim import (
    AscentMaximizer,
    QuadraticMaximizer,
    gd,
    make_optimizer,
    maximize_quadratic_on_ball,
    sa_erm,
    sam,
)
from flatjax.problems import (
    ClassicERM,
    FlatERM,
    LeastSquares,
    SAGDTrap,
    SAMSharp,
    SAMTrap,
    SquaredHinge,
)
from flatjax.runner import run, run_fused

KEY = jax.random.key(0)
FLAT = FlatERM(3)  # d = 9, examples of shape (8,)
CLASSIC = ClassicERM(3)  # d = 8
TRAP = SAGDTrap(2, 3)  # d = 13, examples in {-1, 1}^4
SHARP = SAMSharp(2)
LS = LeastSquares(3, 4)  # d = 3, examples of shape (4,)
HINGE = SquaredHinge(3, 4)  # same shapes as LS
SAMT = SAMTrap(2, 2, 0.1, 0.1, check_theorem=False)  # d = 9
S_FLAT = FLAT.sample(KEY)
S_TRAP = TRAP.sample(KEY)
S_LS = LS.sample(KEY)
S_HINGE = HINGE.sample(KEY)
W_FLAT = jnp.zeros(FLAT.d)
W_TRAP = jnp.zeros(TRAP.d)


def quadratic(w):
    return 0.5 * jnp.sum(jnp.square(w))


def bits_like(problem, fill):
    return jnp.full((problem.n, *problem.example_shape), fill, problem.dtype)


# (kind, name, thunk, exception, regex naming the call and the argument)
CASES = [
    # --- shape: arrays whose shape does not fit the problem or function.
    (
        "shape",
        "flat-population-short-w",
        lambda: FLAT.population_risk(jnp.zeros(5)),
        ValueError,
        r"FlatERM.population_risk\(w=...\)` must have shape \(9,\)",
    ),
    (
        "shape",
        "flat-population-matrix-w",
        lambda: FLAT.population_risk(jnp.zeros((9, 1))),
        ValueError,
        r"population_risk\(w=...\)` must have shape",
    ),
    (
        "shape",
        "flat-empirical-column-S",
        lambda: FLAT.empirical_risk(W_FLAT, jnp.zeros((9, 1))),
        ValueError,
        r"empirical_risk\(S=...\)` must have at least one example of shape \(8,\)",
    ),
    (
        "shape",
        "flat-empirical-vector-S",
        lambda: FLAT.empirical_risk(W_FLAT, jnp.zeros(8)),
        ValueError,
        r"empirical_risk\(S=...\)` must have at least one example",
    ),
    (
        "shape",
        "flat-empirical-long-w",
        lambda: FLAT.empirical_risk(jnp.zeros(10), S_FLAT),
        ValueError,
        r"empirical_risk\(w=...\)` must have shape \(9,\)",
    ),
    (
        "shape",
        "flat-loss-short-z",
        lambda: FLAT.loss(W_FLAT, jnp.zeros(4)),
        ValueError,
        r"FlatERM.loss\(z=...\)` must have shape \(8,\)",
    ),
    (
        "shape",
        "flat-value-and-grad-few-examples",
        lambda: FLAT.value_and_grad(W_FLAT, S_FLAT[:2]),
        ValueError,
        r"value_and_grad\(S=...\)` must have 3 examples \(problem.n\) of shape \(8,\)",
    ),
    (
        "shape",
        "classic-population-w",
        lambda: CLASSIC.population_risk(jnp.zeros(9)),
        ValueError,
        r"ClassicERM.population_risk\(w=...\)`",
    ),
    (
        "shape",
        "trap-population-w",
        lambda: TRAP.population_risk(jnp.zeros(12)),
        ValueError,
        r"SAGDTrap.population_risk\(w=...\)` must have shape \(13,\)",
    ),
    (
        "shape",
        "trap-value-and-grad-S",
        lambda: TRAP.value_and_grad(W_TRAP, S_TRAP.T),
        ValueError,
        r"SAGDTrap.value_and_grad\(S=...\)`",
    ),
    (
        "shape",
        "trap-blocks-w",
        lambda: TRAP.blocks(jnp.zeros(12)),
        ValueError,
        r"SAGDTrap.blocks\(w=...\)`",
    ),
    (
        "shape",
        "samtrap-empirical-w",
        lambda: SAMT.empirical_risk(jnp.zeros(8), S_FLAT[:2, :4]),
        ValueError,
        r"SAMTrap.empirical_risk\(w=...\)`",
    ),
    (
        "shape",
        "sharp-saer-w",
        lambda: SHARP.saer(jnp.zeros(2), 0.1),
        ValueError,
        r"SAMSharp.saer\(w=...\)` must have shape \(1,\)",
    ),
    (
        "shape",
        "ls-loss-z",
        lambda: LS.loss(jnp.zeros(3), jnp.zeros(3)),
        ValueError,
        r"LeastSquares.loss\(z=...\)` must have shape \(4,\)",
    ),
    (
        "shape",
        "ls-empirical-S",
        lambda: LS.empirical_risk(jnp.zeros(3), S_LS[:, :3]),
        ValueError,
        r"LeastSquares.empirical_risk\(S=...\)`",
    ),
    (
        "shape",
        "hinge-population-w",
        lambda: HINGE.population_risk(jnp.zeros(4)),
        ValueError,
        r"SquaredHinge.population_risk\(w=...\)`",
    ),
    (
        "shape",
        "ls-w-star",
        lambda: LeastSquares(3, 4, w_star=jnp.zeros(2)),
        ValueError,
        r"LeastSquares\(w_star=...\)` must have shape \(3,\)",
    ),
    (
        "shape",
        "samtrap-delta",
        lambda: SAMTrap(2, 4, 0.1, 0.1, delta=jnp.full(2, 0.1), check_theorem=False),
        ValueError,
        r"SAMTrap\(delta=...\)` must be a scalar or have shape \(3,\)",
    ),
    (
        "shape",
        "run-w1",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, w1=jnp.zeros(8)),
        ValueError,
        r"run\(w1=...\)` must have shape \(9,\)",
    ),
    (
        "shape",
        "run-S-transposed",
        lambda: run(FLAT, gd(0.1), S_FLAT.T, 2),
        ValueError,
        r"run\(S=...\)` must have 3 examples \(problem.n\) of shape \(8,\)",
    ),
    (
        "shape",
        "run-fused-S-rows",
        lambda: run_fused(TRAP, "gd", S_TRAP[:1], 2, learning_rate=0.1),
        ValueError,
        r"run_fused\(S=...\)` must have 2 examples \(problem.n\) of shape \(4,\)",
    ),
    (
        "shape",
        "run-fused-w1",
        lambda: run_fused(TRAP, "gd", S_TRAP, 2, learning_rate=0.1, w1=jnp.zeros(12)),
        ValueError,
        r"run_fused\(w1=...\)` must have shape \(13,\)",
    ),
    (
        "shape",
        "sa-erm-S",
        lambda: sa_erm(FLAT, S_FLAT[:, :4], 0.1),
        ValueError,
        r"sa_erm\(S=...\)` must have 3 examples",
    ),
    (
        "shape",
        "quadratic-hessian-not-square",
        lambda: maximize_quadratic_on_ball(jnp.zeros((2, 3)), jnp.zeros(2), 1.0),
        ValueError,
        r"maximize_quadratic_on_ball\(hessian=...\)` must be a square",
    ),
    (
        "shape",
        "quadratic-linear",
        lambda: maximize_quadratic_on_ball(jnp.eye(2), jnp.zeros(3), 1.0),
        ValueError,
        r"maximize_quadratic_on_ball\(linear=...\)` must have shape",
    ),
    (
        "shape",
        "quadratic-maximizer-w",
        lambda: QuadraticMaximizer(jnp.eye(2), jnp.zeros(2))(jnp.zeros(3), 0.5),
        ValueError,
        r"QuadraticMaximizer.__call__\(w=...\)` must have shape \(2,\)",
    ),
    (
        "shape",
        "radius-vector",
        lambda: run_fused(
            TRAP, "sam", S_TRAP, 2, learning_rate=0.1, radius=jnp.ones(2)
        ),
        ValueError,
        r"run_fused\(radius=...\)` must be a scalar",
    ),
    (
        "shape",
        "sam-lr-vector",
        lambda: SAMTrap(2, 2, jnp.ones(2), 0.1, check_theorem=False),
        ValueError,
        r"SAMTrap\(learning_rate=...\)` must be a scalar",
    ),
    # --- dtype: arrays of the wrong element type.
    (
        "dtype",
        "flat-population-bool-w",
        lambda: FLAT.population_risk(jnp.zeros(9, bool)),
        TypeError,
        r"population_risk\(w=...\)` must be a real \(floating\) array, got dtype bool",
    ),
    (
        "dtype",
        "flat-population-complex-w",
        lambda: FLAT.population_risk(jnp.zeros(9, jnp.complex64)),
        TypeError,
        r"population_risk\(w=...\)` must be a real",
    ),
    (
        "dtype",
        "flat-empirical-bool-S",
        lambda: FLAT.empirical_risk(W_FLAT, S_FLAT > 0),
        TypeError,
        r"empirical_risk\(S=...\)` must be a real",
    ),
    (
        "dtype",
        "trap-loss-string-array-z",
        lambda: TRAP.loss(W_TRAP, np.array(["a"] * 4)),
        TypeError,
        r"SAGDTrap.loss\(z=...\)` must be a real",
    ),
    (
        "dtype",
        "run-w1-complex",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, w1=jnp.zeros(9, jnp.complex64)),
        TypeError,
        r"run\(w1=...\)` must be a real",
    ),
    (
        "dtype",
        "flat-dtype-int",
        lambda: FlatERM(3, dtype=jnp.int32),
        TypeError,
        r"FlatERM\(dtype=...\)` must be a floating dtype",
    ),
    (
        "dtype",
        "ls-dtype-string",
        lambda: LeastSquares(3, 4, dtype="banana"),
        TypeError,
        r"LeastSquares\(dtype=...\)` is not a dtype",
    ),
    (
        "dtype",
        "samtrap-float32",
        lambda: SAMTrap(6, 6, 0.1, 0.1, dtype=jnp.float32),
        ValueError,
        r"SAMTrap\(dtype=...\)` must be float64",
    ),
    (
        "dtype",
        "lr-bool-array",
        lambda: run_fused(TRAP, "gd", S_TRAP, 2, learning_rate=jnp.asarray(True)),
        TypeError,
        r"run_fused\(learning_rate=...\)` must be a real number",
    ),
    (
        "dtype",
        "radius-complex",
        lambda: maximize_quadratic_on_ball(jnp.eye(2), jnp.zeros(2), 1j),
        TypeError,
        r"maximize_quadratic_on_ball\(radius=...\)` must be a real",
    ),
    (
        "dtype",
        "ascent-int-params",
        lambda: AscentMaximizer(quadratic, KEY)(jnp.zeros(2, int), 0.5),
        TypeError,
        r"AscentMaximizer.__call__\(w=...\)` must be a pytree of floating arrays",
    ),
    (
        "dtype",
        "quadratic-bool-hessian",
        lambda: maximize_quadratic_on_ball(jnp.eye(2, dtype=bool), jnp.zeros(2), 1.0),
        TypeError,
        r"maximize_quadratic_on_ball\(hessian=...\)` must be a real",
    ),
    # --- type: strings, lists, None and other non-arrays.
    (
        "type",
        "flat-population-string",
        lambda: FLAT.population_risk("abc"),
        TypeError,
        r"FlatERM.population_risk\(w=...\)` must be an array, got 'abc' \(str\)",
    ),
    (
        "type",
        "flat-population-list",
        lambda: FLAT.population_risk([0.0] * 9),
        TypeError,
        r"population_risk\(w=...\)` must be an array",
    ),
    (
        "type",
        "flat-population-none",
        lambda: FLAT.population_risk(None),
        TypeError,
        r"population_risk\(w=...\)` must be an array, got None",
    ),
    (
        "type",
        "flat-empirical-string-S",
        lambda: FLAT.empirical_risk(W_FLAT, "S"),
        TypeError,
        r"empirical_risk\(S=...\)` must be an array",
    ),
    (
        "type",
        "flat-loss-dict-z",
        lambda: FLAT.loss(W_FLAT, {"z": 1}),
        TypeError,
        r"FlatERM.loss\(z=...\)` must be an array",
    ),
    (
        "type",
        "ls-loss-float-w",
        lambda: LS.loss(1.0, S_LS[0]),
        TypeError,
        r"LeastSquares.loss\(w=...\)` must be an array",
    ),
    (
        "type",
        "flat-rho-string",
        lambda: FlatERM(3, rho="0.1"),
        TypeError,
        r"FlatERM\(rho=...\)` must be a real number",
    ),
    (
        "type",
        "flat-rho-bool",
        lambda: FlatERM(3, rho=True),
        TypeError,
        r"FlatERM\(rho=...\)` must be a real number",
    ),
    (
        "type",
        "flat-rho-none",
        lambda: FlatERM(3, rho=None),
        TypeError,
        r"FlatERM\(rho=...\)` must be a real number",
    ),
    (
        "type",
        "flat-n-float",
        lambda: FlatERM(2.5),
        TypeError,
        r"FlatERM\(n=...\)` must be an int",
    ),
    (
        "type",
        "flat-n-string",
        lambda: FlatERM("3"),
        TypeError,
        r"FlatERM\(n=...\)` must be an int",
    ),
    (
        "type",
        "trap-T-bool",
        lambda: SAGDTrap(2, True),
        TypeError,
        r"SAGDTrap\(T=...\)` must be an int",
    ),
    (
        "type",
        "hinge-margin-list",
        lambda: SquaredHinge(3, 4, margin=[0.5]),
        TypeError,
        r"SquaredHinge\(margin=...\)` must be a real number",
    ),
    (
        "type",
        "samtrap-radius-string",
        lambda: SAMTrap(2, 2, 0.1, "r", check_theorem=False),
        TypeError,
        r"SAMTrap\(radius=...\)` must be a real number",
    ),
    (
        "type",
        "run-problem-string",
        lambda: run("FlatERM", gd(0.1), S_FLAT, 2),
        TypeError,
        r"run\(problem=...\)` must be a flatjax problem",
    ),
    (
        "type",
        "run-optimizer-function",
        lambda: run(FLAT, quadratic, S_FLAT, 2),
        TypeError,
        r"run\(optimizer=...\)` must be an optax GradientTransformation",
    ),
    (
        "type",
        "run-S-list",
        lambda: run(FLAT, gd(0.1), S_FLAT.tolist(), 2),
        TypeError,
        r"run\(S=...\)` must be an array",
    ),
    (
        "type",
        "run-steps-float",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2.0),
        TypeError,
        r"run\(steps=...\)` must be an int",
    ),
    (
        "type",
        "run-suffix-starts-string",
        lambda: run(FLAT, gd(0.1), S_FLAT, 3, suffix_starts="12"),
        TypeError,
        r"run\(suffix_starts=...\)` must be a sequence of ints",
    ),
    (
        "type",
        "run-maximizer-string",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, maximizer="exact"),
        TypeError,
        r"run\(maximizer=...\)` must be callable",
    ),
    (
        "type",
        "run-extra-metrics-list",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, extra_metrics=[quadratic]),
        TypeError,
        r"run\(extra_metrics=...\)` must be a dict",
    ),
    (
        "type",
        "run-population-samples-float",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, population_samples=10.0),
        TypeError,
        r"run\(population_samples=...\)` must be an int",
    ),
    (
        "type",
        "run-fused-lr-string",
        lambda: run_fused(TRAP, "gd", S_TRAP, 2, learning_rate="0.1"),
        TypeError,
        r"run_fused\(learning_rate=...\)` must be a real number",
    ),
    (
        "type",
        "run-fused-algorithm-int",
        lambda: run_fused(TRAP, 1, S_TRAP, 2, learning_rate=0.1),
        ValueError,
        r"run_fused\(algorithm=...\)` must be one of \['asam', 'gd'",
    ),
    (
        "type",
        "run-fused-algorithm-unknown",
        lambda: run_fused(TRAP, "adam", S_TRAP, 2, learning_rate=0.1),
        ValueError,
        r"run_fused\(algorithm=...\)` must be one of",
    ),
    (
        "type",
        "sa-erm-problem",
        lambda: sa_erm(quadratic, S_FLAT, 0.1),
        TypeError,
        r"sa_erm\(problem=...\)` must be a flatjax problem",
    ),
    (
        "type",
        "sa-erm-maximizer",
        lambda: sa_erm(FLAT, S_FLAT, 0.1, maximizer=3),
        TypeError,
        r"sa_erm\(maximizer=...\)` must be callable",
    ),
    (
        "type",
        "ascent-loss-not-callable",
        lambda: AscentMaximizer("loss", KEY),
        TypeError,
        r"AscentMaximizer\(loss_fn=...\)` must be callable",
    ),
    (
        "type",
        "ascent-params-string-leaf",
        lambda: AscentMaximizer(quadratic, KEY)({"a": "x"}, 0.5),
        TypeError,
        r"AscentMaximizer.__call__\(w=...\)` must be a pytree of floating",
    ),
    (
        "type",
        "make-optimizer-unknown",
        lambda: make_optimizer("sgd", learning_rate=0.1),
        ValueError,
        r"make_optimizer\(name=...\)` must be one of",
    ),
    (
        "type",
        "make-optimizer-missing-radius",
        lambda: make_optimizer("sam", learning_rate=0.1),
        TypeError,
        r"make_optimizer\('sam', ...\)` takes exactly the hyperparameters",
    ),
    (
        "type",
        "runtime-checks-not-bool",
        lambda: flatjax.runtime_checks("off"),
        TypeError,
        r"runtime_checks\(enabled=...\)` must be a bool",
    ),
    # --- range: values outside the allowed interval.
    (
        "range",
        "flat-rho-negative",
        lambda: FlatERM(3, rho=-0.1),
        ValueError,
        r"FlatERM\(rho=...\)` must be >= 0.0",
    ),
    (
        "range",
        "flat-rho-above-half",
        lambda: FlatERM(3, rho=0.7),
        ValueError,
        r"FlatERM\(rho=...\)` must be <= 0.5",
    ),
    (
        "range",
        "flat-n-zero",
        lambda: FlatERM(0),
        ValueError,
        r"FlatERM\(n=...\)` must be >= 1",
    ),
    (
        "range",
        "trap-T-zero",
        lambda: SAGDTrap(2, 0),
        ValueError,
        r"SAGDTrap\(T=...\)` must be >= 1",
    ),
    (
        "range",
        "hinge-margin-one",
        lambda: SquaredHinge(3, 4, margin=1.0),
        ValueError,
        r"SquaredHinge\(margin=...\)` must be < 1.0",
    ),
    (
        "range",
        "hinge-d-two",
        lambda: SquaredHinge(2, 4),
        ValueError,
        r"SquaredHinge\(d=...\)` must be >= 3",
    ),
    (
        "range",
        "ls-w-star-outside-ball",
        lambda: LeastSquares(3, 4, w_star=jnp.ones(3)),
        ValueError,
        r"LeastSquares\(w_star=...\)` must lie in the unit ball",
    ),
    (
        "range",
        "samtrap-delta-zero",
        lambda: SAMTrap(2, 2, 0.1, 0.1, delta=0.0, check_theorem=False),
        ValueError,
        r"SAMTrap\(delta=...\)` must lie in \(0, 1\]",
    ),
    (
        "range",
        "samtrap-lr-zero",
        lambda: SAMTrap(2, 2, 0.0, 0.1, check_theorem=False),
        ValueError,
        r"SAMTrap\(learning_rate=...\)` must be > 0.0",
    ),
    (
        "range",
        "samtrap-theorem",
        lambda: SAMTrap(6, 6, 1.0, 1.0),
        ValueError,
        r"SAMTrap`: Theorem 7 needs learning_rate \* radius",
    ),
    (
        "range",
        "population-num-samples-zero",
        lambda: FLAT.population_risk(W_FLAT, KEY, num_samples=0),
        ValueError,
        r"FlatERM.population_risk\(num_samples=...\)` must be >= 2, got 0",
    ),
    (
        "range",
        "population-num-samples-one",
        lambda: TRAP.population_risk(W_TRAP, KEY, num_samples=1),
        ValueError,
        r"SAGDTrap.population_risk\(num_samples=...\)` must be >= 2",
    ),
    (
        "range",
        "run-population-samples-zero",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, key=KEY, population_samples=0),
        ValueError,
        r"run\(population_samples=...\)` must be >= 2, got 0",
    ),
    (
        "range",
        "run-steps-zero",
        lambda: run(FLAT, gd(0.1), S_FLAT, 0),
        ValueError,
        r"run\(steps=...\)` must be >= 1",
    ),
    (
        "range",
        "run-suffix-start-beyond",
        lambda: run(FLAT, gd(0.1), S_FLAT, 3, suffix_starts=(5,)),
        ValueError,
        r"run\(suffix_starts=...\)` must lie in \[1, steps=3\]",
    ),
    (
        "range",
        "run-saer-radius-negative",
        lambda: run(
            SHARP,
            gd(0.1),
            SHARP.sample(),
            2,
            maximizer=lambda w, r: w,
            saer_radius=-1.0,
        ),
        ValueError,
        r"run\(saer_radius=...\)` must be >= 0.0",
    ),
    (
        "range",
        "run-fused-lr-negative",
        lambda: run_fused(TRAP, "gd", S_TRAP, 2, learning_rate=-0.1),
        ValueError,
        r"run_fused\(learning_rate=...\)` must be >= 0.0",
    ),
    (
        "range",
        "run-fused-radius-negative",
        lambda: run_fused(TRAP, "sam", S_TRAP, 2, learning_rate=0.1, radius=-1.0),
        ValueError,
        r"run_fused\(radius=...\)` must be >= 0.0",
    ),
    (
        "range",
        "run-fused-sa-gd-without-maximizer",
        lambda: run_fused(TRAP, "sa_gd", S_TRAP, 2, learning_rate=0.1, radius=0.1),
        ValueError,
        r"run_fused\(algorithm='sa_gd'\)` needs `maximizer=`",
    ),
    (
        "range",
        "sa-erm-radius-negative",
        lambda: sa_erm(FLAT, S_FLAT, -0.5),
        ValueError,
        r"sa_erm\(radius=...\)` must be >= 0.0",
    ),
    (
        "range",
        "sa-erm-steps-zero",
        lambda: sa_erm(LS, S_LS, 0.1, key=KEY, steps=0),
        ValueError,
        r"sa_erm\(steps=...\)` must be >= 1",
    ),
    (
        "range",
        "saer-minimizer-radius",
        lambda: TRAP.saer_minimizer(S_TRAP, -1.0),
        ValueError,
        r"SAGDTrap.saer_minimizer\(radius=...\)` must be >= 0.0",
    ),
    (
        "range",
        "ascent-restarts-zero",
        lambda: AscentMaximizer(quadratic, KEY, num_restarts=0),
        ValueError,
        r"AscentMaximizer\(num_restarts=...\)` must be >= 1",
    ),
    (
        "range",
        "quadratic-radius-negative",
        lambda: maximize_quadratic_on_ball(jnp.eye(2), jnp.zeros(2), -1.0),
        ValueError,
        r"maximize_quadratic_on_ball\(radius=...\)` must be >= 0",
    ),
    (
        "range",
        "quadratic-hessian-asymmetric",
        lambda: maximize_quadratic_on_ball(
            jnp.array([[1.0, 2.0], [0.0, 1.0]]), jnp.zeros(2), 1.0
        ),
        ValueError,
        r"maximize_quadratic_on_ball\(hessian=...\)` must be symmetric",
    ),
    (
        "range",
        "sam-radius-negative",
        lambda: sam(0.1, -0.5),
        ValueError,
        r"radius=...\)` must be >= 0.0",
    ),
    (
        "range",
        "bound-theorem1-rho",
        lambda: bounds.theorem1_flat_erm_excess_risk(rho=0.75),
        ValueError,
        r"theorem1_flat_erm_excess_risk\(rho=...\)` must be <= 0.5",
    ),
    (
        "range",
        "bound-theorem6-radius",
        lambda: bounds.theorem6_sam_saer_gap(radius=-1.0),
        ValueError,
        r"theorem6_sam_saer_gap\(radius=...\)`",
    ),
    (
        "range",
        "measure-saer-gap-radius",
        lambda: measures.saer_gap(quadratic, jnp.zeros(2), -1.0, key=KEY),
        ValueError,
        r"saer_gap\(radius=...\)`",
    ),
    (
        "range",
        "measure-expected-sharpness-samples",
        lambda: measures.expected_sharpness(
            quadratic, jnp.zeros(2), 0.1, key=KEY, num_samples=0
        ),
        ValueError,
        r"expected_sharpness\(num_samples=...\)`",
    ),
    # --- NaN and infinity in concrete hyperparameters and arrays.
    (
        "nan_inf",
        "flat-rho-nan",
        lambda: FlatERM(3, rho=float("nan")),
        ValueError,
        r"FlatERM\(rho=...\)` must be finite, got nan",
    ),
    (
        "nan_inf",
        "trap-rho-inf",
        lambda: SAGDTrap(2, 3, rho=math.inf),
        ValueError,
        r"SAGDTrap\(rho=...\)` must be finite, got inf",
    ),
    (
        "nan_inf",
        "hinge-margin-nan",
        lambda: SquaredHinge(3, 4, margin=jnp.nan),
        ValueError,
        r"SquaredHinge\(margin=...\)` must be finite",
    ),
    (
        "nan_inf",
        "samtrap-radius-inf",
        lambda: SAMTrap(2, 2, 0.1, math.inf, check_theorem=False),
        ValueError,
        r"SAMTrap\(radius=...\)` must be finite",
    ),
    (
        "nan_inf",
        "samtrap-delta-nan",
        lambda: SAMTrap(
            2, 3, 0.1, 0.1, delta=jnp.array([0.1, jnp.nan]), check_theorem=False
        ),
        ValueError,
        r"SAMTrap\(delta=...\)` must lie in \(0, 1\] everywhere, got nan",
    ),
    (
        "nan_inf",
        "ls-w-star-nan",
        lambda: LeastSquares(3, 4, w_star=jnp.full(3, jnp.nan)),
        ValueError,
        r"LeastSquares\(w_star=...\)` must lie in the unit ball",
    ),
    (
        "nan_inf",
        "run-fused-lr-nan",
        lambda: run_fused(TRAP, "gd", S_TRAP, 2, learning_rate=math.nan),
        ValueError,
        r"run_fused\(learning_rate=...\)` must be finite, got nan",
    ),
    (
        "nan_inf",
        "run-fused-radius-inf",
        lambda: run_fused(TRAP, "sam", S_TRAP, 2, learning_rate=0.1, radius=math.inf),
        ValueError,
        r"run_fused\(radius=...\)` must be finite, got inf",
    ),
    (
        "nan_inf",
        "run-saer-radius-nan",
        lambda: run(
            SHARP,
            gd(0.1),
            SHARP.sample(),
            2,
            maximizer=lambda w, r: w,
            saer_radius=math.nan,
        ),
        ValueError,
        r"run\(saer_radius=...\)` must be finite",
    ),
    (
        "nan_inf",
        "sa-erm-radius-nan",
        lambda: sa_erm(FLAT, S_FLAT, math.nan),
        ValueError,
        r"sa_erm\(radius=...\)` must be finite",
    ),
    (
        "nan_inf",
        "sa-erm-lr-inf",
        lambda: sa_erm(LS, S_LS, 0.1, key=KEY, learning_rate=math.inf),
        ValueError,
        r"sa_erm\(learning_rate=...\)` must be finite",
    ),
    (
        "nan_inf",
        "quadratic-radius-nan",
        lambda: maximize_quadratic_on_ball(jnp.eye(2), jnp.zeros(2), math.nan),
        ValueError,
        r"maximize_quadratic_on_ball\(radius=...\)` must be finite",
    ),
    (
        "nan_inf",
        "ascent-radius-inf",
        lambda: AscentMaximizer(quadratic, KEY)(jnp.zeros(2), math.inf),
        ValueError,
        r"AscentMaximizer.__call__\(radius=...\)` must be finite",
    ),
    (
        "nan_inf",
        "run-S-nan",
        lambda: run(FLAT, gd(0.1), S_FLAT.at[0, 0].set(jnp.nan), 2),
        ValueError,
        r"run\(S=...\)` holds examples that FlatERM cannot draw",
    ),
    (
        "nan_inf",
        "bound-theorem1-rho-nan",
        lambda: bounds.theorem1_flat_erm_excess_risk(rho=math.nan),
        ValueError,
        r"theorem1_flat_erm_excess_risk\(rho=...\)` must be finite",
    ),
    # --- key: PRNG keys of the wrong kind.
    (
        "key",
        "flat-sample-int",
        lambda: FLAT.sample(0),
        TypeError,
        r"FlatERM.sample\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "flat-sample-none",
        lambda: FLAT.sample(None),
        TypeError,
        r"FlatERM.sample\(key=...\)` must be a PRNG key .*got None",
    ),
    (
        "key",
        "trap-sample-string",
        lambda: TRAP.sample("seed"),
        TypeError,
        r"SAGDTrap.sample\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "ls-sample-float-array",
        lambda: LS.sample(jnp.zeros(2)),
        TypeError,
        r"LeastSquares.sample\(key=...\)` must be a PRNG key .*dtype float64",
    ),
    (
        "key",
        "hinge-sample-batch",
        lambda: HINGE.sample(jax.random.split(KEY, 3)),
        ValueError,
        r"SquaredHinge.sample\(key=...\)` must be one PRNG key, got a batch",
    ),
    (
        "key",
        "flat-conditioned-legacy-wrong-shape",
        lambda: FLAT.sample_conditioned(jnp.zeros(3, jnp.uint32)),
        ValueError,
        r"FlatERM.sample_conditioned\(key=...\)` must be one PRNG key",
    ),
    (
        "key",
        "population-key-int",
        lambda: FLAT.population_risk(W_FLAT, 7),
        TypeError,
        r"FlatERM.population_risk\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "run-key-int",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, key=1),
        TypeError,
        r"run\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "run-fused-key-string",
        lambda: run_fused(TRAP, "gd", S_TRAP, 2, learning_rate=0.1, key="k"),
        TypeError,
        r"run_fused\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "sa-erm-key-int",
        lambda: sa_erm(LS, S_LS, 0.1, key=3),
        TypeError,
        r"sa_erm\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "ascent-key-int",
        lambda: AscentMaximizer(quadratic, 0),
        TypeError,
        r"AscentMaximizer\(key=...\)` must be a PRNG key",
    ),
    (
        "key",
        "measure-key-missing",
        lambda: measures.hessian_eigenvalues(quadratic, jnp.zeros(2), key=None),
        ValueError,
        r"hessian_eigenvalues\(key=...\)` must be a PRNG key",
    ),
    # --- size: sizes over memory, or too large to represent at all.
    (
        "size",
        "flat-n-40",
        lambda: FlatERM(40),
        ValueError,
        r"FlatERM` would need about [\d,]+ bytes",
    ),
    (
        "size",
        "flat-n-5000",
        lambda: FlatERM(5000),
        ValueError,
        r"FlatERM\(n=...\)` must be <= 48 \(the construction has 2\*\*n coordinates\)",
    ),
    (
        "size",
        "classic-n-huge",
        lambda: ClassicERM(10**9),
        ValueError,
        r"ClassicERM\(n=...\)` must be <= 48",
    ),
    (
        "size",
        "trap-n-huge",
        lambda: SAGDTrap(10**6, 2),
        ValueError,
        r"SAGDTrap\(n=...\)` must be <= 48",
    ),
    (
        "size",
        "samtrap-n-huge",
        lambda: SAMTrap(100, 6, 0.1, 0.1),
        ValueError,
        r"SAMTrap\(n=...\)` must be <= 48",
    ),
    (
        "size",
        "trap-T-huge",
        lambda: SAGDTrap(2, 2**40),
        ValueError,
        r"SAGDTrap` would need about",
    ),
    (
        "size",
        "ls-d-huge",
        lambda: LeastSquares(2**40, 2**20),
        ValueError,
        r"LeastSquares` would need",
    ),
    (
        "size",
        "flat-max-bytes-small",
        lambda: FlatERM(3, max_bytes=10),
        ValueError,
        r"FlatERM` would need about 288 bytes .* over the limit of 10 bytes",
    ),
    (
        "size",
        "flat-max-bytes-float",
        lambda: FlatERM(3, max_bytes=1e9),
        TypeError,
        r"FlatERM\(max_bytes=...\)` must be an int",
    ),
    (
        "size",
        "flat-max-support-negative",
        lambda: FlatERM(3, max_support=-1),
        ValueError,
        r"FlatERM\(max_support=...\)` must be >= 0",
    ),
    # --- structure: training sets of another problem, pytrees of the wrong kind.
    (
        "structure",
        "run-flat-with-trap-S",
        lambda: run(FLAT, gd(0.1), bits_like(FLAT, -1.0), 2),
        ValueError,
        r"run\(S=...\)` holds examples that FlatERM cannot draw",
    ),
    (
        "structure",
        "run-trap-with-flat-S",
        lambda: run(TRAP, gd(0.1), bits_like(TRAP, 0.0), 2),
        ValueError,
        r"run\(S=...\)` holds examples that SAGDTrap cannot draw",
    ),
    (
        "structure",
        "run-ls-with-hinge-S",
        lambda: run(LS, gd(0.1), S_HINGE, 2),
        ValueError,
        r"run\(S=...\)` holds examples that LeastSquares cannot draw",
    ),
    (
        "structure",
        "run-hinge-with-ls-S",
        lambda: run(HINGE, gd(0.1), S_LS, 2),
        ValueError,
        r"run\(S=...\)` holds examples that SquaredHinge cannot draw",
    ),
    (
        "structure",
        "run-fused-trap-with-flat-S",
        lambda: run_fused(TRAP, "gd", bits_like(TRAP, 0.5), 2, learning_rate=0.1),
        ValueError,
        r"run_fused\(S=...\)` holds examples that SAGDTrap cannot draw",
    ),
    (
        "structure",
        "run-sharp-with-ones",
        lambda: run(SHARP, gd(0.1), jnp.ones((2, 1)), 2),
        ValueError,
        r"run\(S=...\)` holds examples that SAMSharp cannot draw",
    ),
    (
        "structure",
        "run-extra-metric-shadows",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, extra_metrics={"grad_norm": quadratic}),
        ValueError,
        r"run\(extra_metrics=...\)` must not reuse the built-in metric names",
    ),
    (
        "structure",
        "run-saer-radius-without-maximizer",
        lambda: run(FLAT, gd(0.1), S_FLAT, 2, saer_radius=0.1),
        ValueError,
        r"run\(saer_radius=...\)` needs `maximizer=`",
    ),
    (
        "structure",
        "ascent-empty-params",
        lambda: AscentMaximizer(quadratic, KEY)({}, 0.5),
        ValueError,
        r"AscentMaximizer.__call__\(w=...\)` must hold at least one array",
    ),
    (
        "structure",
        "measure-direction-structure",
        lambda: measures.loss_along_direction(
            lambda p: jnp.sum(p["a"] ** 2),
            {"a": jnp.zeros(2)},
            jnp.zeros(2),
            jnp.linspace(-1, 1, 3),
        ),
        ValueError,
        r"loss_along_direction\(direction=...\)` must have the pytree structure",
    ),
    (
        "structure",
        "measure-loss-rejects-the-pytree",
        lambda: measures.loss_along_direction(
            quadratic, {"a": jnp.zeros(2)}, {"a": jnp.ones(2)}, jnp.linspace(-1, 1, 3)
        ),
        TypeError,
        r"loss_along_direction\(loss_fn=...\)` fails on the parameters given",
    ),
]


@pytest.mark.parametrize(
    ("thunk", "error", "match"),
    [pytest.param(t, e, m, id=f"{k}-{n}") for k, n, t, e, m in CASES],
)
def test_bad_input_is_refused_with_the_argument_named(thunk, error, match):
    with pytest.raises(error, match=match):
        thunk()


def test_case_ids_are_distinct_and_every_kind_is_tried():
    ids = [f"{k}-{n}" for k, n, *_ in CASES]
    assert len(ids) == len(set(ids))
    kinds = {k for k, *_ in CASES}
    assert kinds == {
        "shape",
        "dtype",
        "type",
        "range",
        "nan_inf",
        "key",
        "size",
        "structure",
    }


# --- traced: bad values that only exist at run time, under jit or vmap. Each must
# raise a runtime error naming the call and the argument (equinox.error_if).
def _jit(fn, *args):
    return jax.block_until_ready(jax.jit(fn)(*args))


def _vmap(fn, *args):
    return jax.block_until_ready(jax.jit(jax.vmap(fn))(*args))


TRACED = [
    (
        "flat-rho-negative-jit",
        lambda: _jit(lambda r: FlatERM(3, r).rho, -0.1),
        r"FlatERM\(rho=...\)` must be finite and >= 0.0 and <= 0.5",
    ),
    (
        "trap-rho-nan-vmap",
        lambda: _vmap(lambda r: SAGDTrap(2, 3, r).rho, jnp.array([0.1, jnp.nan])),
        r"SAGDTrap\(rho=...\)` must be finite",
    ),
    (
        "hinge-margin-jit",
        lambda: _jit(lambda m: SquaredHinge(3, 4, m).margin, 1.5),
        r"SquaredHinge\(margin=...\)`",
    ),
    (
        "samtrap-lr-negative-jit",
        lambda: _jit(
            lambda lr: SAMTrap(2, 2, lr, 0.1, check_theorem=False).gamma, -1.0
        ),
        r"SAMTrap\(learning_rate=...\)`",
    ),
    (
        "samtrap-delta-zero-vmap",
        lambda: _vmap(
            lambda d: SAMTrap(2, 2, 0.1, 0.1, delta=d, check_theorem=False).delta,
            jnp.array([0.5, 0.0]),
        ),
        r"SAMTrap\(delta=...\)` must lie in \(0, 1\]",
    ),
    (
        "run-fused-lr-negative-jit",
        lambda: _jit(
            lambda lr: (
                run_fused(
                    TRAP, "gd", S_TRAP, 2, learning_rate=lr, record_population=False
                ).final
            ),
            -1.0,
        ),
        r"run_fused\(learning_rate=...\)`",
    ),
    (
        "run-fused-radius-nan-vmap",
        lambda: _vmap(
            lambda r: (
                run_fused(
                    TRAP,
                    "sam",
                    S_TRAP,
                    2,
                    learning_rate=0.1,
                    radius=r,
                    record_population=False,
                ).final
            ),
            jnp.array([0.1, jnp.nan]),
        ),
        r"run_fused\(radius=...\)`",
    ),
    (
        "run-S-of-another-problem-jit",
        lambda: _jit(
            lambda S: run(FLAT, gd(0.1), S, 2, record_population=False).final,
            bits_like(FLAT, -1.0),
        ),
        r"run\(S=...\)` holds examples that FlatERM cannot draw",
    ),
    (
        "quadratic-radius-negative-jit",
        lambda: _jit(
            lambda r: maximize_quadratic_on_ball(jnp.eye(2), jnp.ones(2), r), -1.0
        ),
        r"maximize_quadratic_on_ball\(radius=...\)`",
    ),
    (
        "sa-erm-radius-negative-jit",
        lambda: _jit(lambda r: sa_erm(FLAT, S_FLAT, r).saer, -0.5),
        r"sa_erm\(radius=...\)`",
    ),
    (
        "ascent-radius-inf-jit",
        lambda: _jit(
            lambda r: AscentMaximizer(quadratic, KEY, 1, 1)(jnp.ones(2), r), jnp.inf
        ),
        r"AscentMaximizer.__call__\(radius=...\)`",
    ),
]


@pytest.mark.parametrize(
    ("thunk", "match"), [pytest.param(t, m, id=f"traced-{n}") for n, t, m in TRACED]
)
def test_bad_traced_value_is_refused_at_run_time(thunk, match):
    # jax.jit surfaces equinox's runtime error as a JaxRuntimeError whose message
    # holds ours; the exact class depends on the JAX version, the message does not.
    with pytest.raises(Exception, match=match):
        thunk()


def test_runtime_checks_switch_turns_the_traced_checks_off():
    # The setting is read at trace time: a fresh jit inside the block runs unchecked,
    # and the block restores the default on exit.
    with flatjax.runtime_checks(False):
        assert not flatjax.runtime_checks_enabled()
        rho = jax.jit(lambda r: FlatERM(3, r).rho)(-0.1)
    assert float(rho) == pytest.approx(-0.1)
    assert flatjax.runtime_checks_enabled()
    with pytest.raises(Exception, match=r"FlatERM\(rho=...\)"):
        jax.block_until_ready(jax.jit(lambda r: FlatERM(3, r).rho)(-0.2))


# --- divergence: a run that overflows or meets a NaN is flagged (data, not an
# error), at the step where it first happened, and never projected back to 0.
W_TENTHS = jnp.full(TRAP.d, 0.1)
W_SAMT = jnp.full(SAMT.d, 0.1)
S_SAMT = SAMT.sample(KEY)

DIVERGENCE = [
    # (id, thunk -> RunResult, expected nonfinite_step, whether the run projects)
    ("run-gd-huge-lr-projected", lambda: run(LS, gd(1e300), S_LS, 4), 2, True),
    (
        "run-gd-huge-lr-unprojected",
        lambda: run(LS, gd(1e300), S_LS, 4, project=False),
        2,
        False,
    ),
    (
        "run-trap-huge-lr",
        lambda: run(TRAP, gd(1e300), S_TRAP, 4, w1=W_TENTHS),
        2,
        True,
    ),
    (
        "run-fused-trap-gd-huge-lr",
        lambda: run_fused(TRAP, "gd", S_TRAP, 4, learning_rate=1e300, w1=W_TENTHS),
        2,
        True,
    ),
    (
        "run-fused-samtrap-gd-huge-lr",
        lambda: run_fused(SAMT, "gd", S_SAMT, 4, learning_rate=1e300, w1=W_SAMT),
        2,
        True,
    ),
    (
        "run-fused-samtrap-sam-huge-lr",
        lambda: run_fused(
            SAMT, "sam", S_SAMT, 4, learning_rate=1e300, radius=0.1, w1=W_SAMT
        ),
        2,
        True,
    ),
    (
        "run-fused-samtrap-unprojected",
        lambda: run_fused(
            SAMT, "gd", S_SAMT, 4, learning_rate=1e300, w1=W_SAMT, project=False
        ),
        2,
        False,
    ),
    (
        "run-nan-w1",
        lambda: run(FLAT, gd(0.1), S_FLAT, 3, w1=W_FLAT.at[0].set(jnp.nan)),
        1,
        True,
    ),
    (
        "run-fused-inf-w1",
        lambda: run_fused(
            TRAP, "gd", S_TRAP, 3, learning_rate=0.1, w1=W_TRAP.at[-1].set(jnp.inf)
        ),
        1,
        True,
    ),
    (
        "run-huge-w1-norm-overflows",
        lambda: run(LS, gd(0.1), S_LS, 3, w1=jnp.full(3, 1e200), project=False),
        1,
        False,
    ),
]


@pytest.mark.parametrize(
    ("thunk", "step", "projects"),
    [pytest.param(t, s, p, id=f"divergence-{n}") for n, t, s, p in DIVERGENCE],
)
def test_divergence_sets_the_flag_at_its_first_step(thunk, step, projects):
    result = thunk()
    assert int(result.nonfinite_step) == step
    if projects:
        # The projection never hides it (it used to scale an overflowing iterate to
        # 0): the last iterate is NaN, not a plausible point of the ball.
        assert bool(jnp.all(jnp.isnan(result.final)))


def test_divergence_flags_only_the_bad_run_of_a_batch():
    def one(learning_rate):
        return run_fused(
            TRAP,
            "gd",
            S_TRAP,
            4,
            learning_rate=learning_rate,
            w1=W_TENTHS,
            record_population=False,
        ).nonfinite_step

    flags = jax.jit(jax.vmap(one))(jnp.array([0.1, 1e300]))
    assert flags.tolist() == [-1, 2]


def test_population_risk_of_a_nan_iterate_is_nan_not_a_support_error():
    # It used to raise "more than 12 active coordinates": NaN != 0 counted as one.
    for key in (None, KEY):
        risk = FLAT.population_risk(jnp.full(FLAT.d, jnp.nan), key)
        assert bool(jnp.isnan(risk.value)) and not bool(risk.exact)
