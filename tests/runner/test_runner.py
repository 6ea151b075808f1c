"""The scan runner: averages, flags, jit/vmap behaviour and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flatjax.optim import gd, sam
from flatjax.problems import LeastSquares, SAMTrap
from flatjax.runner import default_suffix_starts, run

PROBLEM = LeastSquares(d=6, n=10)
S = PROBLEM.sample(jax.random.key(0))


def manual_iterates(optimizer, steps):
    grad_fn = jax.grad(lambda w: PROBLEM.empirical_risk(w, S))
    w, state, iterates = (
        PROBLEM.initial_point(),
        optimizer.init(PROBLEM.initial_point()),
        [],
    )
    for _ in range(steps):
        iterates.append(w)
        updates, state = optimizer.update(grad_fn(w), state, w, grad_fn=grad_fn)
        w = optax.apply_updates(w, updates)
    return jnp.stack(iterates)


def test_suffix_averages_and_metrics_equal_a_direct_computation():
    steps = 9
    result = run(PROBLEM, sam(0.5, 0.1), S, steps, suffix_starts=range(1, steps + 1))
    iterates = manual_iterates(sam(0.5, 0.1), steps)
    expected = jnp.stack([iterates[t:].mean(axis=0) for t in range(steps)])
    np.testing.assert_allclose(result.suffix_averages, expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(result.final, iterates[-1], rtol=1e-13)
    np.testing.assert_allclose(result.average, iterates.mean(axis=0), rtol=1e-13)
    risks = jax.vmap(lambda w: PROBLEM.empirical_risk(w, S))(iterates)
    np.testing.assert_allclose(result.metrics["empirical_risk"], risks, rtol=1e-12)
    population = jax.vmap(lambda w: PROBLEM.population_risk(w).value)(expected)
    np.testing.assert_allclose(
        result.suffix_metrics["population_risk"], population, rtol=1e-12
    )
    assert result.metrics["grad_norm"].shape == (steps,)
    assert "grad_norm" not in result.suffix_metrics


def test_default_suffix_starts_include_the_uniform_average():
    assert default_suffix_starts(1) == (1,)
    assert default_suffix_starts(16) == (1, 4, 8, 12, 16)
    result = run(PROBLEM, gd(0.5), S, 16)
    assert result.suffix_starts.tolist() == [1, 4, 8, 12, 16]


def test_vmap_over_datasets_and_hyperparameters_compiles_once():
    @jax.jit
    def sweep(keys, learning_rates, radii):
        def one(key, lr, r):
            return run(PROBLEM, sam(lr, r), PROBLEM.sample(key), 12).suffix_metrics

        return jax.vmap(one)(keys, learning_rates, radii)

    keys = jax.random.split(jax.random.key(1), 8)
    lrs = jnp.linspace(0.1, 0.8, 8)
    radii = jnp.linspace(0.0, 0.2, 8)
    batched = sweep(keys, lrs, radii)
    sweep(keys, lrs * 0.5, radii * 2)
    assert sweep._cache_size() == 1
    for i in (0, 5):
        single = run(
            PROBLEM, sam(float(lrs[i]), float(radii[i])), PROBLEM.sample(keys[i]), 12
        )
        np.testing.assert_allclose(
            batched["population_risk"][i],
            single.suffix_metrics["population_risk"],
            rtol=1e-12,
        )


def test_divergence_is_flagged_not_raised():
    result = run(PROBLEM, gd(1e250), S, 6, project=False)
    assert int(result.nonfinite_step) >= 2
    fine = run(PROBLEM, gd(0.5), S, 6)
    assert int(fine.nonfinite_step) == -1


def test_projection_is_reported_when_it_acts():
    ascent = optax.with_extra_args_support(optax.sgd(-5.0))  # gradient ascent
    result = run(PROBLEM, ascent, S, 6, w1=jnp.full(6, 0.3))
    assert bool(result.projection_acted)
    assert float(result.metrics["iterate_norm"].max()) <= 1.0 + 1e-12
    assert not bool(run(PROBLEM, gd(0.5), S, 6).projection_acted)


def test_sam_trap_run_with_monte_carlo_population_risk_and_certificate():
    problem = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=3.0)
    S_trap = problem.sample_conditioned(jax.random.key(2))
    result = run(
        problem,
        sam(1 / 24, 3.0),
        S_trap,
        16,
        key=jax.random.key(3),
        extra_metrics={"certificate": lambda w: problem.certificate(w, S_trap)},
        suffix_starts=range(1, 17),
    )
    certificates = result.suffix_metrics["certificate"]
    risks = result.suffix_metrics["population_risk"]
    # The certificate is an exact lower bound; the trigger part is Monte Carlo.
    assert bool(jnp.all(certificates <= risks + 1e-15))
    assert not bool(jnp.any(result.suffix_metrics["population_exact"]))
    # Digest §7.5: saturated regime (eta r sqrt(T) = 1/2), the certificate is of
    # order 1e-2 and the empirical risk of every suffix average stays at 0.
    assert 5e-3 < float(certificates.min()) < 5e-2
    assert float(jnp.abs(result.suffix_metrics["empirical_risk"]).max()) < 1e-20
    assert float(result.metrics["iterate_norm"].max()) < 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, r"run\(steps=...\)` must be >= 1, got 0"),
        ({"S": S[:3]}, r"run\(S=...\)` must have 10 examples"),
        ({"saer_radius": 0.1}, "needs `maximizer=`"),
        ({"suffix_starts": [0]}, r"suffix_starts=...\)` must be >= 1"),
        ({"suffix_starts": [11]}, r"must lie in \[1, steps=10\]"),
        ({"w1": jnp.zeros(3)}, r"w1=...\)` must have shape \(6,\)"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    arguments = {"S": S, "steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        run(PROBLEM, gd(0.1), arguments.pop("S"), arguments.pop("steps"), **arguments)
