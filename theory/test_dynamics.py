"""The dynamics core (``theory.dynamics``) is what it says, bit for bit.

* :func:`run` of a step equals the step iterated one at a time (a
  ``lax.scan`` saving every step), at every record step, population and
  online gradients.
* ``vmap`` over points (problems, learning rates, step counts) equals each
  point run alone, and a point's result does not depend on the others.
* :func:`phase_times` observed inside :func:`run` (every step) equals the
  same observer scanned over records that hold every step.

All comparisons are exact: the same floating-point operations on the same
inputs (a step is the body of a loop in both; XLA does not fuse across loop
iterations, so the loop structure does not change a step's arithmetic).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import dynamics as dyn
from theory.signal import dct_basis, make_problem

OPTIMIZERS = {
    "gd": optax.sgd,
    "signgd": optax.sign_sgd,
    "adam": lambda lr: optax.adam(lr),
    "rmsprop": lambda lr: optax.rmsprop(lr, eps_in_sqrt=False),
}


def signed(lo, hi):
    return st.one_of(st.floats(lo, hi), st.floats(-hi, -lo))


@st.composite
def points(draw, d=None):
    """A problem (``d`` in 2..5, or given), an optimizer name and an lr."""
    d = d or draw(st.integers(2, 5))
    spectrum = [draw(st.one_of(st.just(0.0), st.floats(0.05, 1.0))) for _ in range(d)]
    w_star = [draw(st.floats(-5.0, 5.0)) for _ in range(d)]
    w0 = [draw(st.floats(-5.0, 5.0)) for _ in range(d)]
    return make_problem(spectrum, w_star, w0), draw(st.sampled_from(sorted(OPTIMIZERS))), draw(st.floats(1e-3, 0.5))


def _step_and_state(problem, name, lr, gradient=None):
    c = dct_basis(problem.dim, problem.spectrum.dtype)
    opt = OPTIMIZERS[name](lr)
    w_star = c.T @ problem.w_star_freq
    gradient = gradient or dyn.population_gradient(problem.spectrum)
    step = dyn.optax_step(opt, gradient, c, w_star)
    return step, dyn.init_state(opt, c.T @ problem.e0_freq, w_star), c


@functools.partial(jax.jit, static_argnames=("online",))
def _run_and_by_hand(problem, lr, record, online):
    """``run`` with traced record steps, and the same step iterated by a
    ``lax.scan`` saving every step (the same step body in another loop);
    also ``C e`` of the final state."""
    gradient = dyn.online_gradient(problem.spectrum, 3, jax.random.key(7)) if online else None
    step, state0, c = _step_and_state(problem, "adam", lr, gradient)
    final, saved, _ = dyn.run(step, state0, record, dyn.save_e_freq(c))
    _, every = jax.lax.scan(lambda s, _: (step(s), c @ s.e), state0, None, length=MAX_T + 1)
    return final, saved, every, c @ final.e


MAX_T = 36


@settings(max_examples=25, deadline=None)
@given(points(d=3), st.lists(st.integers(0, 12), min_size=3, max_size=3), st.booleans())
def test_run_is_the_step_iterated(point, gaps, online):
    """``run`` saves ``C e`` at the record steps of the step iterated one at
    a time (Adam: a state beyond ``e``; population and online gradients);
    the final state is the last one."""
    problem, _, lr = point
    record = np.cumsum(gaps).astype(np.int32)
    final, saved, every, final_freq = _run_and_by_hand(problem, lr, jnp.asarray(record), online)
    np.testing.assert_array_equal(np.asarray(saved), np.asarray(every)[record])
    np.testing.assert_array_equal(np.asarray(final_freq), np.asarray(every)[record[-1]])
    assert int(final.t) == record[-1]


def _one(problem, lr, n):
    step, state0, c = _step_and_state(problem, "adam", lr)
    final, saved, _ = dyn.run(step, state0, jnp.stack([jnp.zeros_like(n), n]), dyn.save_e_freq(c))
    return final.e, saved


_many = jax.jit(jax.vmap(_one))
_alone = jax.jit(_one)


@settings(max_examples=25, deadline=None)
@given(st.lists(points(d=3), min_size=3, max_size=3), st.data())
def test_vmap_over_points_is_each_point_alone(pts, data):
    """Points with their own problem, lr and step count (Adam): vmapped, each
    is bitwise its own run, and drops none of its bits when another point is
    removed: a point does not depend on the others."""
    # Inputs stacked and sliced, and outputs indexed, in NumPy (no eager JAX operations).
    steps = np.asarray([data.draw(st.integers(0, 40)) for _ in pts], np.int32)
    problems = jax.tree.map(lambda *x: np.stack(x), *[p for p, _, _ in pts])
    lrs = np.asarray([lr for _, _, lr in pts])
    many = jax.tree.map(np.asarray, _many(problems, lrs, steps))
    fewer = jax.tree.map(np.asarray, _many(*jax.tree.map(lambda x: x[1:], (problems, lrs, steps))))
    for i, (p, _, _) in enumerate(pts):
        got = _alone(p, lrs[i], steps[i])
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(jax.tree.map(lambda x: x[i], many))):
            np.testing.assert_array_equal(np.asarray(a), b)
        if i:
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(jax.tree.map(lambda x: x[i - 1], fewer))):
                np.testing.assert_array_equal(np.asarray(a), b)


@st.composite
def signgd_points(draw):
    """d = 3 signGD problems ``(sigma_0, q sigma_0, 0)`` whose phases happen
    within a few hundred steps, a probe step and a window start."""
    s0 = draw(st.floats(0.3, 1.0))
    q = draw(st.floats(0.1, 0.9))
    e0 = [draw(signed(0.05, 2.0)) for _ in range(3)]
    problem = make_problem((s0, q * s0, 0.0), (0.0, 0.0, 0.0), e0)
    lr = draw(st.floats(0.01, 0.1))
    steps = draw(st.integers(0, 300))
    return problem, lr, steps, draw(st.integers(-1, 300)), draw(st.integers(0, 300))


@functools.partial(jax.jit, static_argnames=("frequency",))
def _phases_both_ways(problem, lr, t_probe, t_window, frequency):
    observer = dyn.phase_times(problem.spectrum, t_probe, t_window)
    if frequency:
        step = dyn.signgd_freq_step(problem.spectrum, lr)
        state0, save = dyn.State(jnp.zeros((), jnp.int32), problem.e0_freq, ()), dyn.save_e
    else:
        c = dct_basis(3, problem.spectrum.dtype)
        step = dyn.optax_step(optax.sign_sgd(lr), dyn.population_gradient(problem.spectrum), c)
        state0, save = dyn.init_state(optax.sign_sgd(lr), c.T @ problem.e0_freq), dyn.save_e_freq(c)
    every = np.arange(PHASE_STEPS + 1)
    _, saved, inside = dyn.run(step, state0, every, save, observer)
    return inside, dyn.observe_records(observer, every, saved)


PHASE_STEPS = 300


@settings(max_examples=25, deadline=None)
@given(signgd_points(), st.booleans())
def test_phase_times_in_run_equal_phase_times_over_records(point, frequency):
    """The observer fed every step inside ``run`` and the same observer
    scanned over saved records of every step agree exactly, for the
    frequency recursion (``state.e = e~``) and for optax's sign_sgd
    (``save = C e``)."""
    problem, lr, _, t_probe, t_window = point
    inside, over = _phases_both_ways(problem, lr, t_probe, t_window, frequency)
    for a, b in zip(inside, over):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    t1, t2 = int(inside.t1), int(inside.t2)
    assert t2 < 0 or 0 <= t1 < t2


@jax.jit
def _phases_every_and_sparse(problem):
    """``phase_times`` inside ``run`` (every step) and over the records ``0, 2, 4, ...``."""
    step = dyn.signgd_freq_step(problem.spectrum, 0.05)
    state0 = dyn.State(jnp.zeros((), jnp.int32), problem.e0_freq, ())
    every = np.arange(201)
    _, saved, inside = dyn.run(step, state0, every, dyn.save_e, dyn.phase_times(problem.spectrum))
    return inside, dyn.observe_records(dyn.phase_times(problem.spectrum), every[::2], saved[::2])


def test_phase_times_over_a_sparse_grid_see_only_its_steps():
    """Over records ``0, 2, 4, ...`` the observed ``t1`` is a recorded step
    (the first recorded one in phase 2), not a step in between."""
    problem = make_problem((1.0, 0.5, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 0.5))
    inside, sparse = _phases_every_and_sparse(problem)
    t1 = int(inside.t1)
    assert t1 > 0
    assert int(sparse.t1) == t1 + (t1 % 2)


def test_record_steps_must_be_increasing():
    problem = make_problem((1.0, 0.5, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 0.5))
    step = dyn.signgd_freq_step(problem.spectrum, 0.05)
    state0 = dyn.State(jnp.zeros((), jnp.int32), problem.e0_freq, ())
    for bad in ([3, 1], [], [-1, 2]):
        try:
            dyn.run(step, state0, np.asarray(bad, np.int64))
        except ValueError:
            continue
        raise AssertionError(f"record_steps {bad} accepted")
