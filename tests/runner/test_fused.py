"""``run_fused``: the problems' fused kernels equal the generic runner and autodiff.

Reference: ``flatjax.runner.run`` with the ``flatjax.optim`` transform of the same
name, on a copy of the problem whose ``value_and_grad`` is autodiff of the mean of
the vmapped readable ``loss`` (the paper's definition). Whole trajectories: every
per-step metric, the last iterate, every suffix average and its metrics, and the
flags. Both sides sum the same terms in other orders, so they agree to rounding:
1e-12 relative to the largest magnitude of each record (the SAM trajectories of
``SAMTrap`` go through a normalized ascent at gradients of size ~1e-15, which
amplifies rounding, hence not 1e-15). A wrong coefficient, index, sign or
projection shows at O(1).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from readable_reference import (
    ReadableSAGDTrap,
    ReadableSAMTrap,
)

from flatjax.optim import FunctionMaximizer, gd, sa_gd, sam
from flatjax.problems import LeastSquares, SAGDTrap, SAMTrap
from flatjax.runner import run, run_fused

RTOL = 1e-12


TRANSFORMS = {"gd": lambda lr, r: gd(lr), "sam": sam, "sa_gd": sa_gd}


def assert_same_run(fast, reference, rtol=RTOL):
    """Every record of two RunResults agrees to ``rtol`` of its largest magnitude."""

    def close(name, a, b):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, name
        if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
            np.testing.assert_array_equal(a, b, err_msg=name)
            return
        scale = np.max(np.abs(b)) if b.size else 0.0
        np.testing.assert_allclose(
            a, b, rtol=0, atol=rtol * scale + 1e-300, err_msg=name
        )

    assert sorted(fast.metrics) == sorted(reference.metrics)
    for name in reference.metrics:
        close(name, fast.metrics[name], reference.metrics[name])
    assert sorted(fast.suffix_metrics) == sorted(reference.suffix_metrics)
    for name in reference.suffix_metrics:
        close(
            f"suffix {name}", fast.suffix_metrics[name], reference.suffix_metrics[name]
        )
    close("final", fast.final, reference.final)
    close("suffix averages", fast.suffix_averages, reference.suffix_averages)
    close("suffix starts", fast.suffix_starts, reference.suffix_starts)
    close("projection", fast.projection_acted, reference.projection_acted)
    close("nonfinite", fast.nonfinite_step, reference.nonfinite_step)


def both(problem, readable, algorithm, S, steps, lr, r, maximizer=None, **kwargs):
    fast = jax.jit(
        lambda S: run_fused(
            problem,
            algorithm,
            S,
            steps,
            learning_rate=lr,
            radius=r,
            maximizer=maximizer,
            record_saer=maximizer is not None,
            **kwargs,
        )
    )(S)
    reference = run(
        readable,
        TRANSFORMS[algorithm](lr, r),
        S,
        steps,
        maximizer=maximizer,
        saer_radius=r if maximizer is not None else None,
        **kwargs,
    )
    return fast, reference


SAM_CASES = {
    "theorem7_n6_T16": (dict(n=6, T=16, learning_rate=1 / 24, radius=0.5), 1 / 24, 0.5),
    "saturated_n6_T16": (
        dict(n=6, T=16, learning_rate=1 / 24, radius=1.5),
        1 / 24,
        1.5,
    ),
    "unchecked_n3_T4": (
        dict(n=3, T=4, learning_rate=2.0, radius=0.7, check_theorem=False),
        2.0,
        0.7,
    ),
    "delta_schedule_n6_T8": (
        dict(n=6, T=8, learning_rate=0.1, radius=0.2, delta=jnp.linspace(0.01, 1, 7)),
        0.1,
        0.2,
    ),
}


@pytest.mark.parametrize("algorithm", ["sam", "gd"])
@pytest.mark.parametrize("name", sorted(SAM_CASES))
def test_samtrap_kernel_equals_the_readable_runner(name, algorithm):
    kwargs, lr, r = SAM_CASES[name]
    problem, readable = SAMTrap(**kwargs), ReadableSAMTrap(**kwargs)
    S = problem.sample_conditioned(jax.random.key(3))
    steps = problem.T
    fast, reference = both(
        problem,
        readable,
        algorithm,
        S,
        steps,
        lr,
        r,
        suffix_starts=range(1, steps + 1),
        record_population=False,
    )
    assert_same_run(fast, reference)
    # The trajectory moves (a frozen kernel would pass a vacuous comparison).
    assert float(jnp.max(jnp.abs(fast.final))) > 0


SAGD_CASES = {
    "theorem3_n4_T16": (dict(n=4, T=16, rho=0.01), 0.25, 0.2),
    "flat_rho0_n3_T8": (dict(n=3, T=8, rho=0.0), 0.3, 0.5),
    "exhausted_block_n2_T2": (dict(n=2, T=2, rho=0.05), 0.5, 0.4),  # runs past T
    "sign_flips_n3_T8": (dict(n=3, T=8, rho=0.05), 3.0, 0.4),  # eta * slope > 1
}


@pytest.mark.parametrize("algorithm", ["sa_gd", "gd"])
@pytest.mark.parametrize("name", sorted(SAGD_CASES))
def test_sagdtrap_kernel_equals_the_readable_runner(name, algorithm):
    kwargs, lr, r = SAGD_CASES[name]
    problem, readable = SAGDTrap(**kwargs), ReadableSAGDTrap(**kwargs)
    S = problem.sample_conditioned(jax.random.key(4))
    maximizer = (
        FunctionMaximizer(problem.adversarial_maximizer(S))
        if algorithm == "sa_gd"
        else None
    )
    steps = problem.T + 3
    # GD from w_1 = 0 stays at 0 here; start it from a random point instead.
    w1 = (
        None
        if algorithm == "sa_gd"
        else 0.3 * jax.random.normal(jax.random.key(5), (problem.d,))
    )
    fast, reference = both(
        problem,
        readable,
        algorithm,
        S,
        steps,
        lr,
        r,
        maximizer,
        w1=w1,
        suffix_starts=(1, 2, steps),
        record_population=False,
    )
    assert_same_run(fast, reference)
    assert float(jnp.max(jnp.abs(fast.final))) > 0


def test_projection_is_folded_into_the_kernel():
    # GD from a w_1 far outside the unit ball lands outside it: projected.
    problem = SAGDTrap(n=3, T=8, rho=0.0)
    readable = ReadableSAGDTrap(n=3, T=8, rho=0.0)
    S = problem.sample(jax.random.key(6))
    w1 = 2.0 * jax.random.normal(jax.random.key(7), (problem.d,))
    fast, reference = both(
        problem, readable, "gd", S, 6, 0.5, 0.0, w1=w1, record_population=False
    )
    assert bool(fast.projection_acted)
    np.testing.assert_allclose(fast.metrics["iterate_norm"][1], 1.0, rtol=1e-14)
    assert_same_run(fast, reference)
    # project=False: no projection at all, as in run.
    fast, reference = both(
        problem,
        readable,
        "gd",
        S,
        6,
        0.5,
        0.0,
        w1=w1,
        record_population=False,
        project=False,
    )
    assert not bool(fast.projection_acted)
    assert_same_run(fast, reference)


def test_per_step_population_and_extra_metrics_read_the_flat_iterate():
    problem = SAMTrap(n=6, T=8, learning_rate=0.1, radius=0.2)
    readable = ReadableSAMTrap(n=6, T=8, learning_rate=0.1, radius=0.2)
    S = problem.sample_conditioned(jax.random.key(8))
    extra = {"certificate": lambda w: problem.certificate(w, S)}
    fast, reference = both(
        problem,
        readable,
        "sam",
        S,
        8,
        0.1,
        0.2,
        key=jax.random.key(9),
        extra_metrics=extra,
    )
    assert "population_risk" in fast.metrics and "certificate" in fast.metrics
    assert_same_run(fast, reference)


def test_kernel_takes_traced_hyperparameters_under_vmap():
    problem = SAGDTrap(n=3, T=8, rho=0.05)
    S = problem.sample_conditioned(jax.random.key(10))
    maximizer = problem.adversarial_maximizer(S)
    rates, radii = jnp.array([0.1, 0.2, 0.3]), jnp.array([0.5, 0.3, 0.2])

    def one(lr, r):
        return run_fused(
            problem,
            "sa_gd",
            S,
            8,
            learning_rate=lr,
            radius=r,
            maximizer=maximizer,
            record_population=False,
        ).final

    batched = jax.jit(jax.vmap(one))(rates, radii)
    for k in range(3):
        expected = run(
            problem,
            sa_gd(float(rates[k]), float(radii[k])),
            S,
            8,
            maximizer=maximizer,
            record_population=False,
        ).final
        np.testing.assert_allclose(batched[k], expected, rtol=0, atol=1e-15)
    # Theorem 3: block I moves by -eta (r - rho) per step, one fresh coordinate each.
    index = int(problem.unseen_index(S))
    block = batched[0][:-1].reshape(8, 8)[index]
    np.testing.assert_allclose(block[:7], -0.1 * (0.5 - 0.05), rtol=1e-14)


def test_problems_without_a_kernel_fall_back_to_run_exactly():
    problem = LeastSquares(d=5, n=7)
    S = problem.sample(jax.random.key(11))
    fast = run_fused(problem, "sam", S, 6, learning_rate=0.3, radius=0.1)
    reference = run(problem, sam(0.3, 0.1), S, 6)
    assert_same_run(fast, reference, rtol=0)
    # SA-GD on SAGDTrap with another maximizer: the generic runner too.
    trap = SAGDTrap(n=3, T=4)
    S = trap.sample_conditioned(jax.random.key(12))
    maximizer = trap.extra_coordinate_maximizer()
    assert trap.fused_kernel(S, "sa_gd", 0.1, 0.2, maximizer) is None
    assert trap.fused_kernel(S, "sam", 0.1, 0.2) is None
    fast = run_fused(
        trap,
        "sa_gd",
        S,
        4,
        learning_rate=0.1,
        radius=0.2,
        maximizer=maximizer,
        record_saer=True,
    )
    reference = run(trap, sa_gd(0.1, 0.2), S, 4, maximizer=maximizer, saer_radius=0.2)
    assert_same_run(fast, reference, rtol=0)


def test_nonfinite_iterates_are_flagged_at_the_first_bad_step():
    problem = SAGDTrap(n=3, T=4)
    S = problem.sample(jax.random.key(13))
    w1 = jnp.zeros(problem.d).at[3].set(jnp.nan)
    fast = run_fused(
        problem, "gd", S, 4, learning_rate=0.1, w1=w1, record_population=False
    )
    assert int(fast.nonfinite_step) == 1


def test_bad_arguments_are_refused_by_name():
    problem = SAMTrap(n=6, T=8, learning_rate=0.1, radius=0.2)
    S = problem.sample(jax.random.key(14))
    with pytest.raises(ValueError, match="algorithm.*'adam'"):
        run_fused(problem, "adam", S, 4, learning_rate=0.1)
    with pytest.raises(ValueError, match="record_saer"):
        run_fused(problem, "sam", S, 4, learning_rate=0.1, radius=0.1, record_saer=True)
    with pytest.raises(ValueError, match="learning_rate.*-0.1"):
        run_fused(problem, "sam", S, 4, learning_rate=-0.1, radius=0.1)
    with pytest.raises(ValueError, match="radius.*nan"):
        run_fused(problem, "sam", S, 4, learning_rate=0.1, radius=float("nan"))
    with pytest.raises(ValueError, match="steps"):
        run_fused(problem, "sam", S, 0, learning_rate=0.1, radius=0.1)
    with pytest.raises(ValueError, match="S="):
        run_fused(problem, "sam", S[:2], 4, learning_rate=0.1, radius=0.1)


@pytest.mark.parametrize("learning_rate", [0.3, 3.0, 7.0])
def test_sagdtrap_carried_statistics_track_the_blocks(learning_rate):
    # The kernel updates P_i and N_i by the rows' multipliers a_i, b_i instead of
    # re-summing the blocks; with a large step the multipliers turn negative and
    # the signs flip. The carried sums must stay the sums of the carried blocks.
    problem = SAGDTrap(n=3, T=8, rho=0.05)
    S = problem.sample_conditioned(jax.random.key(15))
    for algorithm, maximizer in (
        ("gd", None),
        ("sa_gd", problem.adversarial_maximizer(S)),
    ):
        kernel = problem.fused_kernel(S, algorithm, learning_rate, 0.4, maximizer)
        w1 = 0.3 * jax.random.normal(jax.random.key(16), (problem.d,))
        state = kernel.init(w1)
        step = eqx.filter_jit(kernel.step)
        flips = 0
        for _ in range(12):
            new, _ = step(state, jnp.asarray(1.0))
            flips += int(jnp.sum((new[0] * state[0]) < 0))
            state = new
            blocks = state[0]
            fresh_positive = jnp.sum(jnp.square(jnp.maximum(blocks, 0.0)), axis=1)
            fresh_negative = jnp.sum(jnp.square(jnp.minimum(blocks, 0.0)), axis=1)
            scale = jnp.max(fresh_positive + fresh_negative)
            np.testing.assert_allclose(state[2], fresh_positive, atol=1e-13 * scale)
            np.testing.assert_allclose(state[3], fresh_negative, atol=1e-13 * scale)
        if learning_rate > 1:
            assert flips > 0  # the sign-flip branches were exercised


COMPRESSED_CASES = {
    **SAGD_CASES,
    "control_r_below_rho_n3_T8": (dict(n=3, T=8, rho=0.3), 0.5, 0.2),  # never moves
    "projected_n3_T8": (dict(n=3, T=8, rho=0.0), 1.0, 0.5),  # ||w_t|| > 1
}


# Four cases by default (the theorem's regime, sign flips, a projection, a run
# that never moves); the other two are covered without population risks above.
_DEFAULT_COMPRESSED = (
    "theorem3_n4_T16",
    "sign_flips_n3_T8",
    "projected_n3_T8",
    "control_r_below_rho_n3_T8",
)


@pytest.mark.parametrize(
    "name",
    [
        name
        if name in _DEFAULT_COMPRESSED
        else pytest.param(name, marks=[pytest.mark.slow])
        for name in sorted(COMPRESSED_CASES)
    ],
)
def test_compressed_sagdtrap_kernel_equals_dense_and_readable(name):
    # From w_1 = 0 SAGDTrap's kernel carries block I only (O(T) per step); the
    # dense kernel (an explicit w1 = 0) and the readable runner must agree on
    # every record, population risks (per step and of suffix averages) included.
    kwargs, lr, r = COMPRESSED_CASES[name]
    problem, readable = SAGDTrap(**kwargs), ReadableSAGDTrap(**kwargs)
    S = problem.sample_conditioned(jax.random.key(17))
    maximizer = problem.adversarial_maximizer(S)
    kernel = problem.fused_kernel(S, "sa_gd", lr, r, maximizer, zero_start=True)
    assert type(kernel).__name__ == "_CompressedSAGDTrapKernel"
    steps = problem.T + 3
    options = dict(
        suffix_starts=(1, 2, problem.T // 2 + 1, steps), key=jax.random.key(18)
    )
    compressed, reference = both(
        problem, readable, "sa_gd", S, steps, lr, r, maximizer, **options
    )
    assert bool(jnp.all(compressed.metrics["population_exact"]))
    assert_same_run(compressed, reference)
    dense, _ = both(
        problem,
        readable,
        "sa_gd",
        S,
        steps,
        lr,
        r,
        maximizer,
        w1=jnp.zeros(problem.d),
        **options,
    )
    assert_same_run(compressed, dense, rtol=1e-14)
    if name == "projected_n3_T8":
        assert bool(compressed.projection_acted)
    if name == "control_r_below_rho_n3_T8":
        assert float(jnp.max(jnp.abs(compressed.final))) == 0.0
    else:
        assert float(jnp.max(jnp.abs(compressed.final))) > 0


def test_compressed_kernel_runs_sizes_whose_flat_iterate_is_never_built():
    # SAGDTrap(n=12, T=4096): d = 16,777,217 (134 MB per flat iterate). Metrics of
    # the suffix averages, population risks included, need no d-vector: XLA's
    # memory analysis shows none (a dense layout would need several).
    problem = SAGDTrap(n=12, T=4096, rho=0.1)
    lr, r, steps = 0.25, 0.1 + 1 / (0.25 * 64), 64

    def records(S):
        result = run_fused(
            problem,
            "sa_gd",
            S,
            steps,
            learning_rate=lr,
            radius=r,
            maximizer=problem.adversarial_maximizer(S),
            record_saer=True,
            population_every_step=False,
            suffix_starts=(1, steps),
        )
        return result.suffix_metrics, result.nonfinite_step

    S = problem.sample_conditioned(jax.random.key(19))
    compiled = jax.jit(records).lower(S).compile()
    analysis = compiled.memory_analysis()
    assert analysis.temp_size_in_bytes + analysis.output_size_in_bytes < problem.d
    suffix, nonfinite = compiled(S)
    assert int(nonfinite) == -1
    # Theorem 3's exact trajectory (paper digest §7.3): block I holds t - 1
    # coordinates at -eta (r - rho); the average at tau holds sums of them.
    step = lr * (r - 0.1)
    for k, tau in enumerate((1, steps)):
        count = steps - tau + 1
        entries = -step * np.array(
            [min(count, steps - j) for j in range(1, steps)], dtype=float
        )
        norm = np.linalg.norm(entries / count)
        np.testing.assert_allclose(suffix["iterate_norm"][k], norm, rtol=1e-13)
        expected = 0.25 * max(norm - 0.1, 0.0) ** 2  # F = 1/4 [||w^(I)|| - rho]_+^2
        np.testing.assert_allclose(suffix["population_risk"][k], expected, rtol=1e-12)
        assert bool(suffix["population_exact"][k])
        np.testing.assert_allclose(suffix["saer"][k], 0.5 * (r - 0.1) ** 2, rtol=1e-12)


@pytest.mark.parametrize("w1", ["zero", "random"])
def test_overflow_is_flagged_and_never_projected_away(w1):
    # Steps of 1e200: the iterate's squared norm overflows. The non-finite flag
    # must be raised, and the projection must not rescale the overflow to a
    # plausible (finite, small) iterate.
    problem = SAGDTrap(n=3, T=8, rho=0.0)
    S = problem.sample_conditioned(jax.random.key(20))
    start = None if w1 == "zero" else 0.1 * jnp.ones(problem.d)
    algorithm = "sa_gd" if w1 == "zero" else "gd"
    result = run_fused(
        problem,
        algorithm,
        S,
        8,
        learning_rate=1e200,
        radius=1e200,
        maximizer=problem.adversarial_maximizer(S),
        record_population=False,
        w1=start,
    )
    assert int(result.nonfinite_step) >= 1
    assert not bool(jnp.all(jnp.isfinite(result.final)))


@pytest.mark.parametrize("starts", [(1,), (1, 3, 6)])
@pytest.mark.parametrize("algorithm", ["sam", "gd"])
def test_samtrap_kernel_projects_and_sums_every_suffix(algorithm, starts):
    # From a w_1 of norm about 2 the first update lands outside the unit ball, so
    # the projection factor scales every later iterate and its share of the suffix
    # sums (one running sum for one start, several segments otherwise); T = 2 rows
    # is the chain's smallest block (no interior link).
    for n, T in ((3, 6), (2, 2)):
        kwargs = dict(n=n, T=T, learning_rate=0.7, radius=0.3, check_theorem=False)
        problem, readable = SAMTrap(**kwargs), ReadableSAMTrap(**kwargs)
        S = problem.sample(jax.random.key(21))
        w1 = 0.1 * jax.random.normal(jax.random.key(22), (problem.d,))
        w1 = 2.0 * w1 / jnp.linalg.norm(w1)
        steps = 6
        fast, reference = both(
            problem,
            readable,
            algorithm,
            S,
            steps,
            0.7,
            0.3,
            w1=w1,
            suffix_starts=starts,
            record_population=False,
        )
        assert bool(fast.projection_acted)
        np.testing.assert_allclose(fast.metrics["iterate_norm"][1], 1.0, rtol=1e-14)
        assert_same_run(fast, reference)


def test_samtrap_kernel_flags_the_first_nonfinite_step_as_run_does():
    problem = SAMTrap(n=3, T=4, learning_rate=0.5, radius=0.2, check_theorem=False)
    readable = ReadableSAMTrap(
        n=3, T=4, learning_rate=0.5, radius=0.2, check_theorem=False
    )
    S = problem.sample(jax.random.key(23))
    # A NaN entry of w_1: flagged at step 1.
    w1 = jnp.zeros(problem.d).at[5].set(jnp.nan)
    fast, reference = both(
        problem, readable, "sam", S, 4, 0.5, 0.2, w1=w1, record_population=False
    )
    assert int(fast.nonfinite_step) == int(reference.nonfinite_step) == 1
    # Steps of 1e200 from a finite start: the iterate overflows after a few steps;
    # the flag names the same step as run, and the overflow is never projected
    # back to a finite point.
    w1 = 0.3 * jax.random.normal(jax.random.key(24), (problem.d,))
    fast, reference = both(
        problem, readable, "gd", S, 4, 1e200, 0.0, w1=w1, record_population=False
    )
    assert int(fast.nonfinite_step) == int(reference.nonfinite_step) > 1
    assert not bool(jnp.all(jnp.isfinite(fast.final)))


def test_single_suffix_start_equals_the_segmented_sums():
    # The start 1 alone carries a plain running sum (no segment axis): the same
    # average as when 1 is one of several starts, for both constructions' kernels.
    problem = SAMTrap(n=6, T=8, learning_rate=0.1, radius=0.2)
    S = problem.sample_conditioned(jax.random.key(25))
    sagd = SAGDTrap(n=3, T=8, rho=0.05)
    S_sagd = sagd.sample_conditioned(jax.random.key(26))
    for trap, algorithm, data, maximizer in (
        (problem, "sam", S, None),
        (sagd, "sa_gd", S_sagd, sagd.adversarial_maximizer(S_sagd)),
    ):
        results = [
            run_fused(
                trap,
                algorithm,
                data,
                8,
                learning_rate=0.1,
                radius=0.2,
                maximizer=maximizer,
                record_population=False,
                suffix_starts=starts,
            )
            for starts in ((1,), (1, 3, 5))
        ]
        one, several = results
        np.testing.assert_array_equal(one.suffix_starts, [1])
        np.testing.assert_allclose(
            one.suffix_averages, several.suffix_averages[:1], rtol=0, atol=1e-15
        )
        assert float(jnp.max(jnp.abs(one.suffix_averages))) > 0
