"""Memory-bounded estimators, compilation once per shape, and losses over batches.

Tolerances: chunking changes only the order of a sum over probes (each probe has its
own key), so chunked and unchunked results agree to 1e-12 relative. A loss averaged
over equal batches equals the full-data loss up to the order of the sum: 1e-12.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import (
    BatchedLoss,
    batched_loss,
    expected_sharpness,
    hessian_eigenvalues,
    hessian_frobenius_norm,
    hessian_trace,
    pac_bayes_sigma,
    relative_flatness,
)

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((24, 5)))
Y = jnp.asarray(RNG.standard_normal(24))
W = jnp.asarray(RNG.standard_normal(5))


def example_loss(w, batch):
    x, y = batch
    return 0.5 * jnp.mean(jnp.square(jnp.tanh(x @ w) - y))


def full_loss(w):
    return example_loss(w, (X, Y))


# ------------------------------------------------------------------ chunking


@pytest.mark.parametrize("estimator", ["hutchinson", "hutch++"])
def test_trace_does_not_depend_on_the_chunk_size(estimator):
    key = jax.random.key(3)
    results = [
        hessian_trace(
            full_loss,
            W,
            key=key,
            num_probes=30,
            estimator=estimator,
            probe_batch=batch,
        )
        for batch in (1, 7, 30)
    ]
    for result in results[1:]:
        np.testing.assert_allclose(result.value, results[0].value, rtol=1e-12)
        # (Hutch++ here: a sketch of 10 >= d = 5 leaves a zero remainder.)
        np.testing.assert_allclose(
            result.stderr, results[0].stderr, rtol=1e-10, atol=1e-14
        )


def test_frobenius_and_expected_sharpness_do_not_depend_on_the_chunk_size():
    key = jax.random.key(4)
    frobenius = [
        hessian_frobenius_norm(full_loss, W, key=key, num_probes=20, probe_batch=b)
        for b in (3, 20)
    ]
    np.testing.assert_allclose(frobenius[0].squared, frobenius[1].squared, rtol=1e-12)
    sharpness = [
        expected_sharpness(full_loss, W, 0.1, key=key, num_samples=20, probe_batch=b)
        for b in (6, 20)
    ]
    np.testing.assert_allclose(sharpness[0].value, sharpness[1].value, rtol=1e-12)
    sigmas = [
        pac_bayes_sigma(full_loss, W, 0.01, key=key, num_samples=20, probe_batch=b)
        for b in (6, 20)
    ]
    np.testing.assert_allclose(sigmas[0].value, sigmas[1].value, rtol=1e-12)


def test_chunked_trace_is_still_unbiased():
    # A planted chunking bug (a dropped remainder, a reused key) biases the mean or
    # shrinks the stderr: 200 probes in chunks of 16 against the dense trace.
    hessian = jax.hessian(full_loss)(W)
    result = hessian_trace(full_loss, W, key=jax.random.key(0), num_probes=200)
    assert abs(result.value - jnp.trace(hessian)) < 4 * result.stderr
    assert result.stderr > 0


@pytest.mark.parametrize("probe_batch", [0, -1, 2.0])
def test_bad_probe_batch_is_refused(probe_batch):
    with pytest.raises((ValueError, TypeError), match=r"hessian_trace\(probe_batch"):
        hessian_trace(full_loss, W, key=jax.random.key(0), probe_batch=probe_batch)


# ------------------------------------------------------------- compilation


class CountingLoss:
    """A loss that counts how often JAX traces it (hashable by identity)."""

    def __init__(self):
        self.traces = 0

    def __call__(self, w):
        self.traces += 1
        return full_loss(w)


@pytest.mark.parametrize(
    "measure",
    [
        lambda f, w: hessian_trace(f, w, key=jax.random.key(0), num_probes=8),
        lambda f, w: hessian_eigenvalues(f, w, 2, key=jax.random.key(0)),
        lambda f, w: expected_sharpness(f, w, 0.1, key=jax.random.key(0)),
    ],
    ids=["trace", "eigenvalues", "expected_sharpness"],
)
def test_a_second_call_outside_jit_does_not_recompile(measure):
    loss = CountingLoss()
    counts = [0]
    for shift in (0.0, 0.5, 1.0):
        measure(loss, W + shift)
        counts.append(loss.traces)
    first, second, third = np.diff(counts)
    # A cached call traces the loss only for the argument check (eval_shape); a
    # recompiling one traces it as often as the first call did.
    assert second == third < first


# ------------------------------------------------------------------ batches


def _batches(num_batches):
    return X.reshape(num_batches, -1, 5), Y.reshape(num_batches, -1)


@pytest.mark.parametrize("form", ["stacked", "list", "generator"])
def test_batched_loss_equals_the_full_data_loss(form):
    xs, ys = _batches(4)
    if form == "stacked":
        batches = (xs, ys)
    elif form == "list":
        batches = [(xs[i], ys[i]) for i in range(4)]
    else:
        batches = ((xs[i], ys[i]) for i in range(4))
    loss = batched_loss(example_loss, batches)
    assert isinstance(loss, BatchedLoss)
    np.testing.assert_allclose(loss(W), full_loss(W), rtol=1e-12)
    np.testing.assert_allclose(
        jax.grad(loss)(W), jax.grad(full_loss)(W), rtol=1e-12, atol=1e-15
    )


def test_measures_of_a_batched_loss_equal_those_of_the_full_loss():
    loss = batched_loss(example_loss, _batches(3))
    key = jax.random.key(7)
    for measure in (
        lambda f: hessian_trace(f, W, key=key, num_probes=10).value,
        lambda f: hessian_eigenvalues(f, W, 2, key=key, num_iterations=5).values,
        lambda f: expected_sharpness(f, W, 0.2, key=key, num_samples=10).value,
        lambda f: (
            relative_flatness(
                lambda p: f(p["w"][0]), {"w": W[None]}, lambda p: p["w"]
            ).value
        ),
    ):
        np.testing.assert_allclose(measure(loss), measure(full_loss), rtol=1e-10)


def test_new_batches_of_the_same_shape_do_not_recompile():
    counter = {"traces": 0}

    def counting(w, batch):
        counter["traces"] += 1
        return example_loss(w, batch)

    counts = [0]
    for scale in (1.0, 2.0, 3.0):
        xs, ys = _batches(3)
        loss = batched_loss(counting, (scale * xs, ys))
        hessian_trace(loss, W, key=jax.random.key(0), num_probes=4)
        counts.append(counter["traces"])
    first, second, third = np.diff(counts)
    assert second == third < first


def test_batched_loss_refuses_unequal_batches_and_no_batches():
    xs, ys = _batches(4)
    batches = [(xs[0], ys[0]), (xs[1][:3], ys[1][:3])]
    with pytest.raises(ValueError, match=r"batched_loss\(batches=.*batch 1"):
        batched_loss(example_loss, batches)
    with pytest.raises(ValueError, match=r"batched_loss\(batches=.*got 0"):
        batched_loss(example_loss, [])
    with pytest.raises(ValueError, match=r"batched_loss\(batches=.*leading"):
        batched_loss(example_loss, (xs, ys[:2]))
    with pytest.raises(TypeError, match=r"batched_loss\(loss_fn=.*int"):
        batched_loss(3, (xs, ys))
