"""``rejection_sample``: the vmap rule returns exactly the sequential loop's draw.

Under ``jax.vmap`` the sampler draws the first K candidates of every lane at once
and continues only the lanes that rejected all of them (a few at a time); alone it
is the sequential loop. Every comparison here is exact (``array_equal``): the same
keys must give the same candidates, so any tolerance would hide a wrong key chain.
The reference is the loop written out here (candidate 0 from ``first_key`` of
``first_key, key = split(key)``, then ``key, sub = split(key)`` per step), also as a
plain Python loop that counts the draws, so the tests know they reach the
fallback (keys whose first K candidates are all rejected).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.problems import SAGDTrap, SAMTrap
from flatjax.problems._base import rejection_sample

PROBLEM = SAGDTrap(n=3, T=4, rho=0.1)


def rare_event(S):
    """Blocks 0 and 1 are +1 in every example: P = 2^-6 for n = 3."""
    return jnp.all(S[:, :2] == 1)


RARE_P = 2.0**-6


def reference(sample, event, key, *, count=False):
    """The sequential rejection loop as a ``lax.while_loop`` (the old sampler).

    With ``count``, also the number of candidates drawn.
    """
    first_key, key = jax.random.split(key)

    def body(carry):
        key, _, draws = carry
        key, sub = jax.random.split(key)
        return key, sample(sub), draws + 1

    _, S, draws = jax.lax.while_loop(
        lambda carry: jnp.logical_not(event(carry[1])),
        body,
        (key, sample(first_key), 1),
    )
    return (S, draws) if count else S


def python_reference(sample, event, key):
    """The same loop in Python: the accepted candidate and how many were drawn."""
    first_key, key = jax.random.split(key)
    S, draws = sample(first_key), 1
    while not bool(event(S)):
        key, sub = jax.random.split(key)
        S, draws = sample(sub), draws + 1
    return S, draws


@pytest.mark.parametrize(
    ("event", "probability"),
    [
        (PROBLEM.good_event, PROBLEM.good_event_probability),
        pytest.param(rare_event, None, marks=pytest.mark.slow),
        (rare_event, RARE_P),
    ],
    ids=["good", "rare-K1", "rare-K44"],
)
def test_vmap_equals_the_sequential_loop_for_every_key(event, probability):
    keys = jax.random.split(jax.random.key(7), 64)
    expected, draws = jax.jit(
        jax.vmap(lambda k: reference(PROBLEM.sample, event, k, count=True))
    )(keys)
    if event is rare_event:
        # K = 44 for P = 2^-6 (the fewest candidates accepted with probability
        # >= 1/2): keys whose first K candidates are all rejected reach the fallback.
        assert int(jnp.sum(draws > 44)) >= 10 and int(jnp.max(draws)) > 88

    def sampler(key):
        return rejection_sample(
            PROBLEM.sample, event, key, acceptance_probability=probability
        )

    got = jax.jit(jax.vmap(sampler))(keys)
    assert jnp.array_equal(got, expected)
    assert bool(jnp.all(jax.vmap(event)(got)))
    # A single key under jit (the loop itself).
    assert jnp.array_equal(jax.jit(sampler)(keys[3]), expected[3])


@pytest.mark.slow
def test_python_loop_agrees_where_the_fallback_is_needed():
    # K for P = 2^-6 is 44 (the fewest candidates accepted with probability >= 1/2):
    # about half the keys need the fallback, some well beyond 2K draws.
    keys = jax.random.split(jax.random.key(11), 48)
    sample = jax.jit(lambda k: PROBLEM.sample(k))
    event = jax.jit(rare_event)
    drawn = [python_reference(sample, event, k) for k in keys]
    draws = np.array([d for _, d in drawn])
    assert (draws > 44).sum() >= 10 and draws.max() > 88

    def sampler(key):
        return rejection_sample(
            PROBLEM.sample, rare_event, key, acceptance_probability=RARE_P
        )

    got = jax.jit(jax.vmap(sampler))(keys)
    assert jnp.array_equal(got, jnp.stack([S for S, _ in drawn]))


def test_batched_problem_fields_and_unbatched_key():
    # vmap over a traced field of the problem (rho), with one key for every lane
    # and with a key per lane; and an event closed over a batched value.
    rhos = jnp.linspace(0.0, 0.3, 8)
    key = jax.random.key(5)
    keys = jax.random.split(key, 8)

    def conditioned(rho, key):
        return SAGDTrap(n=3, T=4, rho=rho).sample_conditioned(key)

    one = reference(PROBLEM.sample, PROBLEM.good_event, key)
    shared = jax.jit(jax.vmap(conditioned, in_axes=(0, None)))(rhos, key)
    assert jnp.array_equal(shared, jnp.broadcast_to(one, shared.shape))
    per_lane = jax.jit(jax.vmap(conditioned))(rhos, keys)
    expected = jax.jit(
        jax.vmap(lambda k: reference(PROBLEM.sample, PROBLEM.good_event, k))
    )(keys)
    assert jnp.array_equal(per_lane, expected)

    thresholds = jnp.array([-3.0, -1.0, 1.0, 3.0] * 2)  # P = 1, 7/8, 1/2, 1/8

    def with_threshold(threshold, key):
        def event(S):
            return jnp.sum(S[:, 0]) >= threshold

        return rejection_sample(PROBLEM.sample, event, key)

    def reference_with_threshold(threshold, key):
        def event(S):
            return jnp.sum(S[:, 0]) >= threshold

        return reference(PROBLEM.sample, event, key)

    got = jax.jit(jax.vmap(with_threshold))(thresholds, keys)
    expected = jax.jit(jax.vmap(reference_with_threshold))(thresholds, keys)
    assert jnp.array_equal(got, expected)


def test_nested_vmap_and_another_problem():
    problem = SAMTrap(n=6, T=8, learning_rate=0.1, radius=0.1)
    keys = jax.random.split(jax.random.key(2), 12).reshape(3, 4)
    got = jax.jit(jax.vmap(jax.vmap(problem.sample_conditioned)))(keys)
    expected = jax.jit(
        jax.vmap(jax.vmap(lambda k: reference(problem.sample, problem.good_event, k)))
    )(keys)
    assert jnp.array_equal(got, expected)


@pytest.mark.parametrize("probability", [0.0, -0.5, 1.5, float("nan")])
def test_bad_acceptance_probability_is_refused(probability):
    with pytest.raises(ValueError, match=r"rejection_sample\(acceptance_probability"):
        rejection_sample(
            PROBLEM.sample,
            PROBLEM.good_event,
            jax.random.key(0),
            acceptance_probability=probability,
        )
