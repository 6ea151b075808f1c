"""SAM inside real optax pipelines: ordering, schedules, masks, accumulation, devices.

Every check compares against SAM written out by hand (the perturbation, the second
gradient, the base optimizer's formula) on a small two-layer network whose parameters
are a dict of four leaves, in float64. Tolerances: ``assert_array_equal`` where the
same floating-point operations run in the same order (the wrapper and the chain-head
form are one computation); rtol 1e-13 where a reduction may be reordered (a mean over
micro-batches taken in two ways, ``vmap`` vs a loop): a few float64 roundings.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flatjax.optim import (
    QuadraticMaximizer,
    sa_gd,
    sam,
    sharpness_aware,
    sharpness_aware_wrapper,
    tree_norm,
)

ROOT = Path(__file__).resolve().parents[2]
_rng = np.random.default_rng(7)
X = jnp.asarray(_rng.normal(size=(16, 3)))
Y = jnp.asarray(_rng.normal(size=16))


def init_params(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "w1": jax.random.normal(k1, (3, 5)),
        "b1": jnp.full((5,), 0.1),
        "w2": jax.random.normal(k2, (5,)),
        "b2": jnp.asarray(-0.2),
    }


def loss(params, x=X, y=Y):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    return 0.5 * jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)


def batch_grad_fn(x, y):
    return jax.grad(lambda p: loss(p, x, y))


grad_fn = batch_grad_fn(X, Y)
tmap = jax.tree_util.tree_map


def sam_gradient(params, grad_fn=grad_fn, radius=0.05, chosen=None):
    """Gradient at w + r g/||g|| (over the ``chosen`` leaves), by hand."""
    g = grad_fn(params)
    chosen = chosen or sorted(params)
    norm = jnp.sqrt(sum(jnp.sum(g[k] ** 2) for k in chosen))
    perturbed = {
        k: params[k] + radius * g[k] / norm if k in chosen else params[k]
        for k in params
    }
    a = grad_fn(perturbed)
    return {k: a[k] if k in chosen else g[k] for k in params}


def step(opt, state, params, grad_fn=grad_fn):
    return opt.update(grad_fn(params), state, params, grad_fn=grad_fn)


def run(opt, params, steps=4, grad_fn=grad_fn):
    state = opt.init(params)
    for _ in range(steps):
        updates, state = step(opt, state, params, grad_fn)
        params = optax.apply_updates(params, updates)
    return params, state


def leaf_pairs(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    return zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)


def assert_trees_equal(a, b):
    for x, y in leaf_pairs(a, b):
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, rtol=1e-13, atol=1e-15):
    for x, y in leaf_pairs(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


MAXIMIZER = QuadraticMaximizer(jnp.eye(2), jnp.ones(2))


# ------------------------------------------------------------------------------
# 1. Wrapper form and chain-head form; where clipping and weight decay go.


@pytest.mark.parametrize("ascent", ["normalized", "unnormalized", "adaptive"])
def test_wrapper_is_the_chain_head_form_with_the_rest_of_the_chain_inside(ascent):
    rest = [
        optax.clip_by_global_norm(0.3),
        optax.add_decayed_weights(1e-2),
        optax.adam(0.05),
    ]
    chained = optax.chain(sharpness_aware(0.05, ascent), *rest)
    wrapped = sharpness_aware_wrapper(optax.chain(*rest), 0.05, ascent)
    assert_trees_equal(run(chained, init_params())[0], run(wrapped, init_params())[0])


def test_wrapper_and_head_form_agree_for_the_exact_ascent():
    def quadratic(w):
        return 0.5 * w @ w + jnp.sum(w)

    gq = jax.grad(quadratic)
    w = jnp.array([0.3, -0.2])
    head = sa_gd(0.1, 0.2, MAXIMIZER)
    wrapped = sharpness_aware_wrapper(optax.sgd(0.1), 0.2, "exact", maximizer=MAXIMIZER)
    assert_trees_equal(run(head, w, grad_fn=gq)[0], run(wrapped, w, grad_fn=gq)[0])


def test_clipping_inside_clips_the_perturbed_gradient():
    big = tmap(lambda p: 30.0 * p, init_params())
    opt = sharpness_aware_wrapper(
        optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0)), 0.05
    )
    updates, _ = step(opt, opt.init(big), big)
    a = sam_gradient(big)
    assert float(tree_norm(a)) > 1.0  # the clip acts
    expected = tmap(lambda x: -x / tree_norm(a), a)
    assert_trees_close(updates, expected)
    assert float(tree_norm(updates)) == pytest.approx(1.0, rel=1e-14)


def test_weight_decay_inside_is_added_to_the_perturbed_gradient():
    params = init_params()
    opt = sharpness_aware_wrapper(
        optax.chain(optax.add_decayed_weights(0.1), optax.sgd(1.0)), 0.05
    )
    updates, _ = step(opt, opt.init(params), params)
    expected = tmap(lambda a, w: -(a + 0.1 * w), sam_gradient(params), params)
    assert_trees_close(updates, expected)


def test_adamw_inside_decays_the_weights_it_is_given():
    params = init_params()
    opt = sharpness_aware_wrapper(optax.adamw(0.1, weight_decay=0.5), 0.05)
    updates, _ = step(opt, opt.init(params), params)
    # First Adam step: m/sqrt(v) = sign(a) (eps aside); AdamW adds wd * w.
    a = sam_gradient(params)
    expected = tmap(lambda a, w: -0.1 * (a / (jnp.abs(a) + 1e-8) + 0.5 * w), a, params)
    assert_trees_close(updates, expected, rtol=1e-12)


def unit_norm_512(params):
    return tmap(lambda g: g * 512.0 / tree_norm(grad_fn(params)), grad_fn(params))


BEFORE = {
    "clip_before_head": lambda: optax.chain(
        optax.clip_by_global_norm(1.0), sharpness_aware(0.05), optax.sgd(1.0)
    ),
    "decay_before_head": lambda: optax.chain(
        optax.add_decayed_weights(1e-3), sharpness_aware(0.05), optax.sgd(1.0)
    ),
    "adam_before_head": lambda: optax.chain(
        optax.scale_by_adam(), sharpness_aware(0.05), optax.sgd(1.0)
    ),
    "clip_before_wrapper": lambda: optax.chain(
        optax.clip_by_global_norm(1.0), sharpness_aware_wrapper(optax.sgd(1.0), 0.05)
    ),
    "sam_after_adam": lambda: optax.chain(optax.adam(0.1), sharpness_aware(0.05)),
}


@pytest.mark.parametrize("name", sorted(BEFORE))
@pytest.mark.parametrize("jit", [False, True])
def test_a_transform_before_sam_is_refused_not_discarded(name, jit):
    # The case: gradient of norm 512, clipped to 1 before SAM, used to give
    # an update of norm 512.
    params = init_params()
    big_grad_fn = unit_norm_512
    opt = BEFORE[name]()
    update = opt.update
    if jit:
        update = jax.jit(update, static_argnames="grad_fn")
    with pytest.raises(Exception, match=r"is not `grad_fn\(params\)`"):
        jax.block_until_ready(
            update(big_grad_fn(params), opt.init(params), params, grad_fn=big_grad_fn)
        )


def test_a_clip_before_that_does_not_act_changes_nothing():
    params = init_params()
    quiet = optax.chain(
        optax.clip_by_global_norm(1e6), sharpness_aware(0.05), optax.sgd(0.1)
    )
    plain = optax.chain(sharpness_aware(0.05), optax.sgd(0.1))
    assert_trees_equal(run(quiet, params)[0], run(plain, params)[0])


def test_a_gradient_from_another_compiled_program_is_not_refused():
    # float32 gradient from a separately jitted grad_fn, update run eagerly: the two
    # evaluations of the same gradient round differently, within the tolerance.
    params = tmap(lambda x: x.astype(jnp.float32), init_params())
    x32, y32 = X.astype(jnp.float32), Y.astype(jnp.float32)
    g32 = batch_grad_fn(x32, y32)
    opt = optax.chain(sharpness_aware(0.05), optax.sgd(0.1))
    updates, _ = opt.update(jax.jit(g32)(params), opt.init(params), params, grad_fn=g32)
    assert all(jnp.all(jnp.isfinite(u)) for u in jax.tree_util.tree_leaves(updates))


def test_check_gradient_false_lets_a_different_grad_fn_through():
    params = init_params()
    opt = optax.chain(sharpness_aware(0.05, check_gradient=False), optax.sgd(1.0))
    other = batch_grad_fn(X[:8], Y[:8])
    updates, _ = opt.update(grad_fn(params), opt.init(params), params, grad_fn=other)
    g = grad_fn(params)
    v = tmap(lambda x: 0.05 * x / tree_norm(g), g)
    expected = tmap(jnp.negative, other(tmap(jnp.add, params, v)))
    assert_trees_close(updates, expected)


# ------------------------------------------------------------------------------
# 2. Radius schedules.

SCHEDULE = optax.linear_schedule(0.0, 0.1, transition_steps=3)


def by_hand_with_schedule(params, steps):
    for t in range(steps):
        # optax evaluates schedules at an int32 count: a float32 radius.
        r = float(SCHEDULE(jnp.int32(t)))
        a = sam_gradient(params, radius=r) if r > 0 else grad_fn(params)
        params = tmap(lambda w, g: w - 0.2 * g, params, a)
    return params


@pytest.mark.parametrize(
    "build",
    [
        lambda: sam(0.2, SCHEDULE),
        lambda: optax.chain(sharpness_aware(SCHEDULE), optax.sgd(0.2)),
        lambda: sharpness_aware_wrapper(optax.sgd(0.2), SCHEDULE),
        lambda: optax.inject_hyperparams(sam)(learning_rate=0.2, radius=SCHEDULE),
        lambda: optax.inject_hyperparams(sharpness_aware_wrapper)(
            optax.sgd(0.2), radius=SCHEDULE
        ),
    ],
    ids=["sam", "head", "wrapper", "inject_sam", "inject_wrapper"],
)
def test_radius_schedule_is_evaluated_at_the_step_count(build):
    expected = by_hand_with_schedule(init_params(), 5)
    ours = run(build(), init_params(), steps=5)[0]
    assert_trees_close(ours, expected)
    jitted = jax.jit(lambda p: run(build(), p, steps=5)[0])(init_params())
    assert_trees_close(jitted, expected)


def test_radius_schedule_of_sa_gd():
    def quadratic(w):
        return 0.5 * w @ w + jnp.sum(w)

    gq = jax.grad(quadratic)
    w = jnp.array([0.3, -0.2])
    ours = run(sa_gd(0.1, SCHEDULE, MAXIMIZER), w, steps=4, grad_fn=gq)[0]
    for t in range(4):
        r = SCHEDULE(jnp.int32(t))
        w = w - 0.1 * gq(w + MAXIMIZER(w, r))
    np.testing.assert_allclose(ours, w, rtol=1e-14)


def test_a_negative_scheduled_radius_is_refused():
    params = init_params()
    opt = sam(0.1, optax.linear_schedule(0.1, -0.1, 2))
    state = opt.init(params)
    for _ in range(2):
        updates, state = step(opt, state, params)
    with pytest.raises(ValueError, match=r"`sharpness_aware\(radius=...\)` must be >="):
        step(opt, state, params)


# ------------------------------------------------------------------------------
# 3. Masks.


def not_bias(params):
    return {k: not k.startswith("b") for k in params}


@pytest.mark.parametrize(
    "mask",
    [
        {"w1": True, "b1": False, "w2": True, "b2": False},
        not_bias,
        lambda p: jax.tree_util.tree_map_with_path(
            lambda path, _: not path[-1].key.startswith("b"), p
        ),
    ],
    ids=["pytree", "callable", "by_path"],
)
def test_mask_perturbs_only_the_selected_leaves(mask):
    params = init_params()
    opt = sharpness_aware_wrapper(optax.sgd(1.0), 0.05, mask=mask)
    updates, _ = step(opt, opt.init(params), params)
    expected = sam_gradient(params, chosen=["w1", "w2"])
    assert_trees_close(updates, tmap(jnp.negative, expected))
    g = grad_fn(params)
    for bias in ("b1", "b2"):  # the plain gradient, exactly
        np.testing.assert_array_equal(updates[bias], -g[bias])


def test_mask_prefix_and_all_false():
    params = {"a": init_params(), "b": init_params(1)}

    def gf(p):
        return jax.grad(lambda q: loss(q["a"]) + loss(q["b"]))(p)

    prefix = sharpness_aware_wrapper(optax.sgd(1.0), 0.05, mask={"a": True, "b": False})
    updates, _ = step(prefix, prefix.init(params), params, gf)
    g = gf(params)
    assert_trees_equal(updates["b"], tmap(jnp.negative, g["b"]))
    assert_trees_close(updates["a"], tmap(jnp.negative, sam_gradient(params["a"])))
    nothing = sharpness_aware(0.05, mask={"a": False, "b": False})
    assert_trees_equal(step(nothing, nothing.init(params), params, gf)[0], g)


@pytest.mark.parametrize(
    "mask, error, match",
    [
        ({"w1": True}, ValueError, r"mask=...\)` must be a pytree of bools"),
        (
            {"w1": 1, "b1": False, "w2": True, "b2": False},
            TypeError,
            r"mask=...\)` leaves must be Python bools",
        ),
    ],
)
def test_bad_masks_are_named(mask, error, match):
    params = init_params()
    opt = sharpness_aware(0.05, mask=mask)
    with pytest.raises(error, match=match):
        step(opt, opt.init(params), params)


def test_mask_with_the_exact_ascent_is_refused():
    with pytest.raises(ValueError, match=r"mask=...\)` cannot be used with ascent"):
        sharpness_aware(0.1, "exact", mask=not_bias, maximizer=MAXIMIZER)


def test_optax_masked_around_it_is_refused_with_the_remedy():
    params = init_params()
    opt = optax.masked(sharpness_aware(0.05), not_bias)
    with pytest.raises(TypeError, match=r"use `sharpness_aware\(..., mask=...\)`"):
        step(opt, opt.init(params), params)


# ------------------------------------------------------------------------------
# 4. Accumulation and several devices.

MICRO = [(X[:8], Y[:8]), (X[8:], Y[8:])]


def m_sharpness_by_hand(params, radius=0.05):
    grads = [sam_gradient(params, batch_grad_fn(x, y), radius) for x, y in MICRO]
    return tmap(lambda a, b: (a + b) / 2, *grads)


@pytest.mark.parametrize(
    "build",
    [
        lambda: sharpness_aware_wrapper(
            optax.MultiSteps(optax.sgd(1.0), 2, accumulator_dtype=jnp.float64), 0.05
        ),
        lambda: optax.chain(
            sharpness_aware(0.05),
            optax.MultiSteps(optax.sgd(1.0), 2, accumulator_dtype=jnp.float64),
        ),
    ],
    ids=["wrapper", "head"],
)
def test_multi_steps_inside_averages_one_perturbation_per_micro_batch(build):
    params = init_params()
    opt = build()
    state = opt.init(params)
    total = tmap(jnp.zeros_like, params)
    for x, y in MICRO:
        updates, state = step(opt, state, params, batch_grad_fn(x, y))
        total = tmap(jnp.add, total, updates)
    assert_trees_close(total, tmap(jnp.negative, m_sharpness_by_hand(params)))


@pytest.mark.parametrize(
    "inner",
    [
        lambda: optax.chain(sharpness_aware(0.05), optax.sgd(1.0)),
        lambda: sharpness_aware_wrapper(optax.sgd(1.0), 0.05),
    ],
    ids=["head", "wrapper"],
)
def test_multi_steps_around_is_refused(inner):
    # Around the whole, the inner SAM would see the running mean of the micro-batch
    # gradients with the last micro-batch's grad_fn.
    params = init_params()
    opt = optax.MultiSteps(inner(), 2)
    state = opt.init(params)
    _, state = step(opt, state, params, batch_grad_fn(*MICRO[0]))
    with pytest.raises(Exception, match=r"is not `grad_fn\(params\)`"):
        jax.block_until_ready(step(opt, state, params, batch_grad_fn(*MICRO[1])))


def test_one_global_perturbation_with_an_accumulating_grad_fn():
    xs, ys = X.reshape(2, 8, 3), Y.reshape(2, 8)

    def accumulated(params):
        per_batch = jax.lax.map(lambda b: batch_grad_fn(*b)(params), (xs, ys))
        return tmap(lambda g: jnp.mean(g, axis=0), per_batch)

    params = init_params()
    opt = sharpness_aware_wrapper(optax.sgd(1.0), 0.05)
    updates, _ = step(opt, opt.init(params), params, accumulated)
    assert_trees_close(updates, tmap(jnp.negative, sam_gradient(params)))


@pytest.mark.parametrize("per_device", [False, True])
def test_vmap_with_axis_name_global_or_per_shard_perturbation(per_device):
    xs, ys = X.reshape(2, 8, 3), Y.reshape(2, 8)
    params = init_params()
    opt = sharpness_aware_wrapper(
        optax.sgd(1.0), 0.05, axis_name="batch", per_device_perturbation=per_device
    )
    state = opt.init(params)

    def shard_step(x, y):
        return step(opt, state, params, batch_grad_fn(x, y))[0]

    updates = jax.vmap(shard_step, axis_name="batch")(xs, ys)
    expected = m_sharpness_by_hand(params) if per_device else sam_gradient(params)
    for i in range(2):  # every shard applies the same update
        assert_trees_close(
            tmap(lambda u, i=i: u[i], updates), tmap(jnp.negative, expected)
        )


SHARD_MAP_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np, optax
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 2, jax.devices()
    from jax.sharding import Mesh, PartitionSpec as P
    sys.path.insert(0, "tests/optim")
    from test_sam_pipeline import (
        X, Y, batch_grad_fn, init_params, m_sharpness_by_hand, sam_gradient,
        sharpness_aware_wrapper, tmap,
    )
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    params = init_params()
    for per_device in (False, True):
        opt = sharpness_aware_wrapper(
            optax.sgd(1.0), 0.05, axis_name="batch",
            per_device_perturbation=per_device,
        )
        state = opt.init(params)

        def local(params, state, x, y):
            g = batch_grad_fn(x, y)
            return opt.update(g(params), state, params, grad_fn=g)[0]

        sharded = jax.jit(jax.shard_map(
            local, mesh=mesh, in_specs=(P(), P(), P("batch"), P("batch")),
            out_specs=P(), check_vma=False,
        ))
        updates = sharded(params, state, X, Y)
        expected = m_sharpness_by_hand(params) if per_device else sam_gradient(params)
        for u, e in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
            np.testing.assert_allclose(u, -e, rtol=1e-13, atol=1e-15)
    print("shard_map ok")
    """
)


def test_shard_map_on_two_host_devices_global_and_per_device():
    # XLA_FLAGS must be set before JAX starts: a fresh interpreter.
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    completed = subprocess.run(
        [sys.executable, "-c", SHARD_MAP_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "shard_map ok" in completed.stdout


# ------------------------------------------------------------------------------
# 5. apply_if_finite.


def nan_beyond(w):
    """A gradient that is finite at w = (1, 0.5) but NaN once w[0] > 1.02."""
    return jnp.where(w[0] > 1.02, jnp.nan, w)


W_NAN = jnp.array([1.0, 0.5])


@pytest.mark.parametrize(
    "build",
    [
        lambda: sharpness_aware_wrapper(optax.apply_if_finite(optax.sgd(0.1), 3), 0.1),
        lambda: optax.chain(
            sharpness_aware(0.1), optax.apply_if_finite(optax.sgd(0.1), 3)
        ),
    ],
    ids=["wrapper", "head"],
)
def test_apply_if_finite_inside_skips_a_nan_at_the_perturbed_point(build):
    opt = build()
    state = opt.init(W_NAN)
    updates, state = opt.update(nan_beyond(W_NAN), state, W_NAN, grad_fn=nan_beyond)
    np.testing.assert_array_equal(updates, jnp.zeros(2))
    counts = [
        s.notfinite_count
        for s in jax.tree_util.tree_leaves(
            state, is_leaf=lambda s: isinstance(s, optax.ApplyIfFiniteState)
        )
        if isinstance(s, optax.ApplyIfFiniteState)
    ]
    assert [int(c) for c in counts] == [1]


def test_apply_if_finite_around_sees_only_the_raw_gradient():
    # The documented pitfall: the NaN at the perturbed point goes through.
    opt = optax.apply_if_finite(optax.chain(sharpness_aware(0.1), optax.sgd(0.1)), 3)
    updates, state = opt.update(
        nan_beyond(W_NAN), opt.init(W_NAN), W_NAN, grad_fn=nan_beyond
    )
    assert bool(jnp.all(jnp.isnan(updates))) and int(state.notfinite_count) == 0


# ------------------------------------------------------------------------------
# 6. Clear errors.


def test_integer_leaf_is_named():
    params = {**init_params(), "step": jnp.asarray(3)}
    opt = sharpness_aware_wrapper(optax.sgd(0.1), 0.05)
    with pytest.raises(TypeError, match=r"params=...\)`.*\['step'\] has dtype int"):
        opt.init(params)


def test_a_whole_equinox_module_is_refused_with_the_partition_remedy():
    model = eqx.nn.MLP(3, 1, 4, 1, key=jax.random.key(0))
    opt = optax.chain(sharpness_aware(0.05), optax.sgd(0.1))
    with pytest.raises(TypeError, match=r"eqx.partition\(model, eqx.is_inexact_array"):
        opt.init(model)
    # The remedy the message gives works.
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def gf(p):
        return jax.grad(lambda q: jnp.sum(eqx.combine(q, static)(X[0]) ** 2))(p)

    updates, _ = opt.update(gf(params), opt.init(params), params, grad_fn=gf)
    assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params)


def test_grad_fn_returning_value_and_grad_is_named():
    params = init_params()
    opt = sharpness_aware_wrapper(optax.sgd(0.1), 0.05)
    value_and_grad = jax.value_and_grad(loss)
    with pytest.raises(TypeError, match=r"grad_fn=...\)` is a \(value, gradient\)"):
        opt.update(grad_fn(params), opt.init(params), params, grad_fn=value_and_grad)


def test_grad_fn_of_another_structure_is_named():
    params = init_params()
    opt = sharpness_aware(0.05)
    with pytest.raises(ValueError, match=r"grad_fn=...\)` must have the pytree"):
        opt.update(grad_fn(params), opt.init(params), params, grad_fn=lambda p: p["w1"])
    with pytest.raises(ValueError, match=r"grad_fn=...\)` must have leaves shaped"):
        opt.update(
            grad_fn(params),
            opt.init(params),
            params,
            grad_fn=lambda p: {**grad_fn(p), "b2": jnp.zeros(2)},
        )


def test_updates_of_another_structure_or_a_pair_are_named():
    params = init_params()
    opt = sharpness_aware(0.05)
    with pytest.raises(ValueError, match=r"updates=...\)` must have the pytree"):
        opt.update(grad_fn(params)["w1"], opt.init(params), params, grad_fn=grad_fn)
    with pytest.raises(TypeError, match=r"updates=...\)` is a \(value, gradient\)"):
        opt.update(
            jax.value_and_grad(loss)(params), opt.init(params), params, grad_fn=grad_fn
        )


def test_per_device_perturbation_without_an_axis_is_refused():
    with pytest.raises(ValueError, match=r"per_device_perturbation=True\)` needs"):
        sharpness_aware_wrapper(optax.sgd(0.1), 0.05, per_device_perturbation=True)


def test_inner_that_is_not_a_transformation_is_named():
    with pytest.raises(TypeError, match=r"inner=...\)` must be an optax"):
        sharpness_aware_wrapper(optax.adam, 0.05)


# ------------------------------------------------------------------------------
# 7. Cost: two gradient evaluations per SAM step.


def counting(grad_fn, calls):
    def counted(params):
        calls.append(1)
        return grad_fn(params)

    return counted


@pytest.mark.parametrize("check_gradient", [True, False])
def test_update_traces_grad_fn_once_plus_the_check(check_gradient):
    params = init_params()
    calls = []
    gf = counting(grad_fn, calls)
    opt = sharpness_aware_wrapper(optax.adam(0.1), 0.05, check_gradient=check_gradient)
    jax.make_jaxpr(lambda p, s: opt.update(grad_fn(p), s, p, grad_fn=gf))(
        params, opt.init(params)
    )
    assert len(calls) == (2 if check_gradient else 1)


def compiled_flops(fn, *args):
    return jax.jit(fn).lower(*args).compile().cost_analysis()["flops"]


def test_a_jitted_sam_step_costs_two_gradients_check_included():
    # 64 examples so that the gradient dominates the optimizer's elementwise work.
    x = jnp.asarray(_rng.normal(size=(64, 3)))
    y = jnp.asarray(_rng.normal(size=64))
    gf = batch_grad_fn(x, y)
    params = init_params()

    def sam_step(check):
        opt = sharpness_aware_wrapper(optax.adam(0.1), 0.05, check_gradient=check)
        state = opt.init(params)
        return lambda p: opt.update(gf(p), state, p, grad_fn=gf)[0]

    adam = optax.adam(0.1)
    adam_state = adam.init(params)
    gradient_flops = compiled_flops(gf, params)
    adam_flops = compiled_flops(lambda p: adam.update(gf(p), adam_state, p)[0], params)
    checked = compiled_flops(sam_step(True), params)
    unchecked = compiled_flops(sam_step(False), params)
    # XLA merges the check's gradient with the caller's: the check costs only its
    # norms (elementwise work of the size of the parameters).
    assert checked < unchecked + 0.5 * gradient_flops
    # Two gradients and the optimizer's elementwise work, not three gradients.
    assert 2 * gradient_flops <= unchecked
    assert checked <= 2 * adam_flops + 0.5 * gradient_flops
