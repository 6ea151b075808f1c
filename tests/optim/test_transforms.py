"""The contract suite every flatjax transform passes, and SAM against optax.contrib."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flatjax.optim import (
    QuadraticMaximizer,
    SharpnessAwareWrapperState,
    gd,
    project_onto_ball,
    sa_gd,
    sam,
    sharpness_aware,
    sharpness_aware_wrapper,
)

D = 4
_rng = np.random.default_rng(0)
_Q = np.linalg.qr(_rng.normal(size=(D, D)))[0]
HESSIAN = jnp.asarray(_Q @ np.diag([2.0, 1.0, 0.5, 0.1]) @ _Q.T)
LINEAR = jnp.asarray(_rng.normal(size=D))


def quadratic(w):
    w = w.astype(jnp.float64) if w.dtype == jnp.float64 else w
    return 0.5 * w @ (HESSIAN.astype(w.dtype) @ w) + LINEAR.astype(w.dtype) @ w


# name -> factory(learning_rate, radius) building the transform under test.
FACTORIES = {
    "sam": lambda lr, r: sam(lr, r),
    "usam": lambda lr, r: sam(lr, r, ascent="unnormalized"),
    "asam": lambda lr, r: sam(lr, r, ascent="adaptive"),
    "sa_gd": lambda lr, r: sa_gd(lr, r, QuadraticMaximizer(HESSIAN, LINEAR)),
    "sam_wrapper": lambda lr, r: sharpness_aware_wrapper(optax.sgd(lr), r),
    "sam_schedule": lambda lr, r: sam(lr, optax.constant_schedule(r)),
}


# name -> factory(radius) of the bare sharpness-aware link, to chain by hand.
LINKS = {
    "sam": lambda r: sharpness_aware(r),
    "usam": lambda r: sharpness_aware(r, "unnormalized"),
    "asam": lambda r: sharpness_aware(r, "adaptive"),
    "sa_gd": lambda r: sharpness_aware(
        r, "exact", maximizer=QuadraticMaximizer(HESSIAN, LINEAR)
    ),
    "sam_wrapper": lambda r: sharpness_aware_wrapper(optax.identity(), r),
    "sam_schedule": lambda r: sharpness_aware(optax.constant_schedule(r)),
}


def run_steps(opt, w, steps=6, loss=quadratic):
    grad_fn = jax.grad(loss)
    state = opt.init(w)
    for _ in range(steps):
        updates, state = opt.update(grad_fn(w), state, w, grad_fn=grad_fn)
        w = optax.apply_updates(w, updates)
    return w, state


def start(seed=0, dtype=jnp.float64):
    return jax.random.normal(jax.random.key(seed), (D,), dtype)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_radius_zero_is_bit_identical_to_the_base_optimizer(name):
    w, _ = run_steps(FACTORIES[name](0.3, 0.0), start())
    base, _ = run_steps(optax.sgd(0.3), start())
    np.testing.assert_array_equal(w, base)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_jit_and_no_recompilation_for_new_hyperparameter_values(name):
    factory = FACTORIES[name]

    @jax.jit
    def trajectory(w, lr, r):
        opt = factory(lr, r)
        grad_fn = jax.grad(quadratic)

        def step(carry, _):
            w, state = carry
            updates, state = opt.update(grad_fn(w), state, w, grad_fn=grad_fn)
            return (optax.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w, opt.init(w)), None, length=5)[0][0]

    first = trajectory(start(), 0.1, 0.05)
    second = trajectory(start(), 0.2, 0.01)
    assert trajectory._cache_size() == 1
    eager, _ = run_steps(factory(0.2, 0.01), start(), steps=5)
    # jit vs eager: XLA may fuse differently, so allow float64 rounding.
    np.testing.assert_allclose(second, eager, rtol=1e-13, atol=1e-15)
    assert not np.allclose(first, second)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_inside_a_chain_with_clipping_and_adam(name):
    sa_part = LINKS[name](0.05)
    chained = optax.chain(sa_part, optax.clip_by_global_norm(0.5), optax.adam(0.05))
    w, _ = run_steps(chained, start(), steps=20)
    assert jnp.all(jnp.isfinite(w))
    assert quadratic(w) < quadratic(start())
    zero = LINKS[name](0.0)
    w0, _ = run_steps(
        optax.chain(zero, optax.clip_by_global_norm(0.5), optax.adam(0.05)), start()
    )
    ref, _ = run_steps(
        optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.05)), start()
    )
    np.testing.assert_array_equal(w0, ref)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_inject_hyperparams(name):
    injected = optax.inject_hyperparams(FACTORIES[name])(lr=0.2, r=0.05)
    w, state = run_steps(injected, start())
    plain, _ = run_steps(FACTORIES[name](0.2, 0.05), start())
    np.testing.assert_allclose(w, plain, rtol=1e-14)
    state.hyperparams["r"] = jnp.asarray(0.0)
    # With the radius set to 0 through the state, the next step is plain SGD.
    grad_fn = jax.grad(quadratic)
    updates, _ = injected.update(grad_fn(w), state, w, grad_fn=grad_fn)
    np.testing.assert_array_equal(updates, -0.2 * grad_fn(w))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_multi_steps_accumulates_then_applies_one_update(name):
    inner = FACTORIES[name](0.2, 0.05)
    # MultiSteps accumulates in float32 unless told otherwise.
    multi = optax.MultiSteps(inner, every_k_schedule=2, accumulator_dtype=jnp.float64)
    grad_fn = jax.grad(quadratic)
    w = start()
    state = multi.init(w)
    g = grad_fn(w)
    first, state = multi.update(g, state, w, grad_fn=grad_fn)
    assert jnp.all(first == 0)
    second, state = multi.update(g, state, w, grad_fn=grad_fn)
    expected, _ = inner.update(g, inner.init(w), w, grad_fn=grad_fn)
    np.testing.assert_allclose(second, expected, rtol=1e-14)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_is_kept(name, dtype):
    w = start(dtype=dtype)
    out, state = run_steps(FACTORIES[name](0.1, 0.05), w, steps=2)
    assert out.dtype == dtype
    # The wrapper's own state, or the chain-head link's (first in the chain).
    sa_state = state if isinstance(state, SharpnessAwareWrapperState) else state[0]
    assert sa_state.count.dtype == jnp.int32


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_vmap_over_seeds_equals_a_python_loop(name):
    factory = FACTORIES[name]

    @jax.jit
    def one(seed_key):
        w = jax.random.normal(seed_key, (D,))
        return run_steps(factory(0.1, 0.05), w, steps=5)[0]

    keys = jax.random.split(jax.random.key(3), 16)
    batched = jax.vmap(one)(keys)
    looped = jnp.stack([one(k) for k in keys])
    # Batched matrix products may sum in another order: float64 rounding only.
    np.testing.assert_allclose(batched, looped, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_vmap_over_traced_hyperparameters(name):
    radii = jnp.array([0.0, 0.01, 0.1])
    batched = jax.vmap(lambda r: run_steps(FACTORIES[name](0.1, r), start())[0])(radii)
    for i, r in enumerate(radii):
        looped = run_steps(FACTORIES[name](0.1, float(r)), start())[0]
        np.testing.assert_allclose(batched[i], looped, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_holds_no_copy_of_the_parameters(name):
    _, state = run_steps(FACTORIES[name](0.1, 0.05), start(), steps=1)
    sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(state)]
    assert max(sizes) == 1  # counters only (sgd has no state)


def test_gd_is_sgd():
    w, _ = run_steps(gd(0.3), start())
    ref, _ = run_steps(optax.sgd(0.3), start())
    np.testing.assert_array_equal(w, ref)


def test_sam_step_by_hand():
    w = start()
    g = jax.grad(quadratic)(w)
    v = 0.05 * g / jnp.linalg.norm(g)
    expected = w - 0.2 * jax.grad(quadratic)(w + v)
    out, _ = run_steps(sam(0.2, 0.05), w, steps=1)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_asam_step_by_hand():
    w = start()
    g = jax.grad(quadratic)(w)
    t = jnp.abs(w) + 0.01
    v = 0.05 * t**2 * g / jnp.linalg.norm(t * g)
    expected = w - 0.2 * jax.grad(quadratic)(w + v)
    out, _ = run_steps(sam(0.2, 0.05, ascent="adaptive"), w, steps=1)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


# ------------------------------------------------------------------------------
# Against optax.contrib.sam.


def optax_contrib_sam(lr, r):
    return optax.contrib.sam(
        optax.sgd(lr),
        optax.chain(optax.contrib.normalize(), optax.sgd(r)),
        sync_period=2,
    )


def test_sam_matches_optax_contrib_sam_step_for_step():
    grad_fn = jax.grad(quadratic)
    ours, theirs = sam(0.2, 0.05), optax_contrib_sam(0.2, 0.05)
    w_ours = w_theirs = start()
    s_ours, s_theirs = ours.init(w_ours), theirs.init(w_theirs)
    for _ in range(10):
        u, s_ours = ours.update(grad_fn(w_ours), s_ours, w_ours, grad_fn=grad_fn)
        w_ours = optax.apply_updates(w_ours, u)
        # Transparent mode: one adversarial call, then one outer call.
        for _ in range(2):
            u, s_theirs = theirs.update(grad_fn(w_theirs), s_theirs, w_theirs)
            w_theirs = optax.apply_updates(w_theirs, u)
        np.testing.assert_allclose(w_ours, w_theirs, rtol=1e-13, atol=1e-15)


def test_zero_gradient_is_a_no_op_where_optax_contrib_sam_returns_nan():
    def flat_at_zero(w):
        return 0.5 * jnp.sum(jnp.maximum(w, 0.0) ** 2)

    w = jnp.zeros(D)
    ours, _ = run_steps(sam(0.2, 0.05), w, steps=3, loss=flat_at_zero)
    assert jnp.all(ours == 0)
    theirs = optax_contrib_sam(0.2, 0.05)
    state = theirs.init(w)
    u, state = theirs.update(jax.grad(flat_at_zero)(w), state, w)
    assert jnp.any(jnp.isnan(optax.apply_updates(w, u)))


# ------------------------------------------------------------------------------
# Projection.


def test_projection_is_a_bit_exact_no_op_inside_and_reports_acting():
    proj = project_onto_ball(1.0)
    w = jnp.array([0.1, 0.2, 0.3, 0.1])
    u = jnp.array([1e-3, -2e-3, 3e-3, 0.0])
    out, state = proj.update(u, proj.init(w), w)
    np.testing.assert_array_equal(out, u)
    assert not bool(state.acted)
    chained = optax.chain(sam(2.0, 0.05), project_onto_ball(1.0))
    w_end, state = run_steps(chained, start(), steps=3, loss=lambda w: -jnp.sum(w))
    assert float(jnp.linalg.norm(w_end)) == pytest.approx(1.0, abs=1e-12)
    assert bool(state[-1].acted)


# ------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "build, match",
    [
        (
            lambda: sharpness_aware(-0.1),
            r"sharpness_aware\(radius=...\)` must be >= 0.0",
        ),
        (lambda: sharpness_aware(float("inf")), r"radius=...\)` must be finite"),
        (
            lambda: sharpness_aware(0.1, ascent="sideways"),
            r"ascent=...\)` must be one of",
        ),
        (
            lambda: sharpness_aware(0.1, maximizer=lambda w, r: w),
            "only used with ascent='exact'",
        ),
        (lambda: sam(-0.1, 0.1), r"sam\(learning_rate=...\)` must be >= 0.0"),
        (lambda: sam(float("nan"), 0.1), r"learning_rate=...\)` must be finite"),
        (lambda: sam(0.1, 0.1, ascent="exact"), "use `sa_gd`"),
        (lambda: gd(-1.0), r"gd\(learning_rate=...\)` must be >= 0.0"),
        (lambda: sa_gd(0.1, -1.0), r"radius=...\)` must be >= 0.0"),
        (lambda: project_onto_ball(0.0), r"radius=...\)` must be > 0.0"),
    ],
)
def test_bad_hyperparameters_are_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_missing_extra_arguments_are_named():
    w = start()
    opt = sam(0.1, 0.1)
    with pytest.raises(ValueError, match="`grad_fn`"):
        opt.update(w, opt.init(w), w)
    with pytest.raises(ValueError, match="`params`"):
        opt.update(w, opt.init(w), None, grad_fn=jax.grad(quadratic))
    exact = sa_gd(0.1, 0.1)
    with pytest.raises(ValueError, match="needs a maximizer"):
        exact.update(w, exact.init(w), w, grad_fn=jax.grad(quadratic))


def test_maximizer_outside_the_ball_is_a_runtime_error():
    opt = sa_gd(0.1, 0.1, lambda w, r: jnp.full_like(w, 1.0))
    w = start()
    with pytest.raises(Exception, match="outside the ball"):
        jax.block_until_ready(
            jax.jit(functools.partial(opt.update, grad_fn=jax.grad(quadratic)))(
                w, opt.init(w), w
            )
        )


# ------------------------------------------------------------------------------
# SA-ERM.


def test_sa_erm_closed_forms():
    from flatjax.optim import sa_erm
    from flatjax.problems import ClassicERM, FlatERM, SAGDTrap, SAMSharp

    flat = FlatERM(n=4, rho=0.25)
    S = flat.sample_conditioned(jax.random.key(0))
    result = sa_erm(flat, S, 0.5)
    assert result.method == "closed_form"
    np.testing.assert_array_equal(result.w, flat.flat_erm(S))
    assert float(result.saer) == 0.5 * 0.25**2
    # The closed form is attained: F_S at the perturbation r e_d equals the value.
    assert float(flat.empirical_risk(result.w.at[-1].add(0.5), S)) == 0.5 * 0.25**2
    trap = SAGDTrap(n=3, T=4, rho=0.1)
    w, value = sa_erm(trap, trap.sample(jax.random.key(1)), 0.3)[:2]
    assert jnp.all(w == 0) and float(value) == pytest.approx(0.02)
    sharp = SAMSharp()
    result = sa_erm(sharp, sharp.sample(None), 0.25)
    assert float(result.w[0]) == -0.5 and float(result.saer) == 0.0
    classic = ClassicERM(n=3)
    S = classic.sample(jax.random.key(2))
    w, value, _ = sa_erm(classic, S, 0.4)
    assert float(value) == pytest.approx(0.08 * float(S.mean(axis=0).max()))


def test_sa_erm_numerical_path_reaches_the_quadratic_saer_minimum():
    from flatjax.optim import sa_erm
    from flatjax.problems import LeastSquares

    problem = LeastSquares(d=3, n=20)
    S = problem.sample(jax.random.key(4))
    X = S[:, :-1]
    hessian = X.T @ X / problem.n
    gradient = -hessian @ problem.w_star
    result = sa_erm(
        problem, S, 0.2, maximizer=QuadraticMaximizer(hessian, gradient), steps=2000
    )
    assert result.method == "numerical"
    # min_w F_S^r(w) = r^2 lambda_max / 2, at w = w*; the SA-GD average is within a
    # few percent after 2000 steps (Theorem 2's O(1/T) rate for the flat part).
    target = 0.5 * 0.2**2 * float(jnp.linalg.eigvalsh(hessian)[-1])
    assert target <= float(result.saer) <= 1.05 * target
    with pytest.raises(ValueError, match="pass `maximizer=` or `key=`"):
        sa_erm(problem, S, 0.2)
