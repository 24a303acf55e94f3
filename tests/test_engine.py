"""The iteration engine: what it computes, and that how it is run does not matter.

* A seed's trajectory is bit-for-bit the same whether it runs alone or with
  63 others, whatever the record grid, the chunking and ``draw_steps``.
* The engine equals the dynamics core (:mod:`theory.dynamics`: ``run`` of
  ``optax_step``, one seed and one optimizer at a time) fed the engine
  oracle's own batches (``g~ = oracle.grad(data, fold_in(stream_key, t), e~)``;
  the population gradient is the core's own ``H~ e~``), for the fast
  (seed-last, blocked) path and for the generic vmapped path, to a derived
  float32 tolerance (:func:`_tolerance`).
* Records start with ``w0`` at step 0 and have the grid's length, so memory
  follows the grid, not the number of steps.
* Gaps longer than one loop may run (int32 counters) are split into segments
  exactly (:func:`sims.linear.engine.split_gaps`); splitting changes no bit; the
  64-bit step counter carries across ``2^32`` in the blocked draws.
* Optimizers run element-wise only when declared so; declared or vmapped, the
  numbers agree.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from jax.extend.random import threefry_2x32

from sims.linear import engine
from sims.linear.engine import MAX_SEGMENT, auto_draw_steps, make_simulation, seed_keys, simulate, split_gaps
from sims.common.optimizers import OPTIMIZERS, make_optimizer
from sims.linear.oracles import GradientOracle, make_oracle
from sims.linear.recording import log_steps
from theory import dynamics as dyn
from theory.gd import gd_error
from theory.signal import dct_basis, make_problem

from engine_cases import GRID, OPTS, ORACLES, STEPS  # tests/ is on sys.path
from engine_cases import model as _model, oracle as _oracle, run64 as _run64


@pytest.mark.parametrize("kind", list(ORACLES))
def test_seed_independent_of_seed_count(kind):
    full = _run64(kind)
    sim = make_simulation(OPTS, _oracle(kind))
    alone = np.asarray(simulate(sim, _model(), seed_keys([5]), GRID).w_freq)
    np.testing.assert_array_equal(alone[0], full[5])
    few = np.asarray(simulate(sim, _model(), seed_keys([17, 3, 40]), GRID).w_freq)
    np.testing.assert_array_equal(few, full[[17, 3, 40]])


@pytest.mark.parametrize("kind", ["population", "online-noise", "explicit"])
def test_grid_chunks_and_draw_steps_do_not_change_values(kind):
    full = _run64(kind)
    sim = make_simulation(OPTS, _oracle(kind))
    coarse = np.array([0, 7, 147, STEPS])
    other = np.asarray(simulate(sim, _model(), seed_keys(64), coarse, chunks=2, draw_steps=4).w_freq)
    np.testing.assert_array_equal(other, full[:, :, np.searchsorted(GRID, coarse)])
    one_chunk = np.asarray(simulate(sim, _model(), seed_keys(64), GRID, chunks=1, draw_steps=64).w_freq)
    np.testing.assert_array_equal(one_chunk, full)


def test_records_start_at_w0_and_follow_the_grid():
    sim = make_simulation(OPTS, _oracle("population"))
    grid = log_steps(100_000, 20)
    calls = []
    traj = simulate(sim, _model(), seed_keys(3), grid, chunks=4, progress=lambda done, total: calls.append((done, total)))
    assert traj.names == tuple(OPTIMIZERS)
    np.testing.assert_array_equal(traj.steps, grid)
    assert traj.w_freq.shape == (3, len(OPTIMIZERS), len(grid), 3)  # memory ~ grid, not 10^5 steps
    np.testing.assert_allclose(np.asarray(traj.w_freq[:, :, 0]), np.broadcast_to(_model().w0_freq, (3, 4, 3)), atol=1e-6)
    assert traj.of("adam").shape == (3, len(grid), 3)
    assert calls[-1] == (100_000, 100_000) and 1 < len(calls) <= 4
    only_start = simulate(sim, _model(), seed_keys(2), np.array([0]))
    assert only_start.w_freq.shape == (2, 4, 1, 3)
    with pytest.raises(ValueError):
        simulate(sim, _model(), seed_keys(2), np.array([1, 2]))


def _core(oracle: GradientOracle, opts: tuple, key, record_steps, t0: int = 0, population: bool = False):
    """One seed by the dynamics core: ``(k, T, d)`` ``w~`` of each optimizer at ``record_steps``.

    ``run`` of ``optax_step`` from ``e0 = C^T e~(0)`` (input coordinates,
    the optimizers seeing ``w = e + w*``), one optimizer at a time. The
    gradient is the core's ``H~ e~`` (``population``) or the oracle's, with
    the engine's data (``oracle.init(data_key)``) and step ``t0 + t``'s batch
    drawn with the key ``threefry2x32(stream_key, (t >> 32, t mod 2^32))``,
    the counter words computed here in Python integers: ``fold_in(stream_key,
    t)`` for ``t < 2^32``.
    """
    problem = _model()
    basis = dct_basis(problem.dim, problem.spectrum.dtype)
    data_key, stream_key = jax.random.split(key)
    data = oracle.init(data_key)
    stream = jax.random.key_data(stream_key)
    last = int(record_steps[-1])
    counters = jnp.asarray(np.array([[(t >> 32) & 0xFFFFFFFF, t & 0xFFFFFFFF] for t in range(t0, t0 + last)], np.uint32))

    def drawn(e_freq, t):
        step_key = jax.random.wrap_key_data(threefry_2x32(stream, counters[t]), impl="threefry2x32")
        return oracle.grad(data, step_key, e_freq)

    gradient = dyn.population_gradient(problem.spectrum) if population else drawn
    w_star = basis.T @ problem.w_star_freq
    e0 = basis.T @ problem.e0_freq
    out = []
    for opt in opts:
        step = dyn.optax_step(opt, gradient, basis, w_star)
        _, e_freq, _ = dyn.run(step, dyn.init_state(opt, e0, w_star), np.asarray(record_steps), dyn.save_e_freq(basis))
        out.append(e_freq + problem.w_star_freq)
    return jnp.stack(out)


@functools.partial(jax.jit, static_argnums=(0, 1, 3, 4, 5))
def _core_seeds(oracle, opts, keys, record_steps: tuple, t0: int = 0, population: bool = False):
    return jax.vmap(lambda k: _core(oracle, opts, k, record_steps, t0, population))(keys)


def _tolerance(w_freq, steps: int, lr: float) -> float:
    """Engine minus core, float32 (``u = 2^-24``), ``d = 3``; ``w_freq`` the
    engine's records, ``E = max ||e~||_2 = max ||w~ - w~*||_2`` over them.

    Both iterate ``e <- e + update(C^T g~(C e))`` with the same optax update
    on the same batches; they differ only in rounding: the engine's ``C``
    is the float64 DCT rounded once (exact zeros kept) and its products are
    unrolled, the core's is ``jax.scipy.fft.dct`` in float32 with ``dot``.

    * Records ``w~ = C e + w~*``: each side rounds ``d`` products and ``d``
      sums, ``<= (d + 1) u (||w~*||_inf + sqrt(d) E)`` (``|C_kj| <= 1``,
      ``||e||_1 <= sqrt(d) E``); twice, one per side.
    * Steps: given the same ``g``, the update's operations are the same;
      each side rounds ``e + upd`` once, ``<= u (E + |upd|)``, with
      ``|upd| <= 10 lr``: GD ``lr sigma_0^2 E``, signGD ``lr``, RMSProp
      ``lr |g| / sqrt(v) <= lr / sqrt(1 - decay) = 10 lr`` (``v >= (1 - decay) g^2``),
      Adam ``lr |mhat| / sqrt(vhat) <= lr (1 - b1) / sqrt((1 - b2)(1 - b1^2 / b2))
      = 7.3 lr`` (Cauchy-Schwarz on the moment sums; the bias corrections
      only lower it). ``g`` itself differs by the rounding of ``C e`` and
      ``C^T g~``, ``<= 2 (d + 1) u`` relative to ``|C| |e|``: GD's update
      moves by ``lr sigma_0^2`` times that (negligible), signGD's not at all
      unless a ``|g_i|`` is at rounding level, Adam's and RMSProp's by a
      relative ``O(u)`` where ``|g_i|`` is not small (their ratio is
      homogeneous of degree 0 in the gradients). So ``2 u (E + 10 lr)`` a
      step, ``steps`` of them, assuming that earlier differences are not
      amplified: proved for GD (a contraction, ``lr sigma_0^2 < 2``) and for
      signGD while the signs agree; for Adam and RMSProp it is what this
      comparison checks.

    Measured: the two agree to 1.5 ulp of ``||w~*||_inf = 10`` (1.4e-6), the
    record rounding; the bound is ``~ 2e-4`` over 300 steps. A different
    batch at one step moves a signGD or Adam run by ``~ lr = 1e-2`` (an
    off-by-one step key fails with ``0.014``).
    """
    u, d = 2.0**-24, 3
    w_star = np.asarray(_model().w_star_freq)
    e_max = float(np.linalg.norm(np.asarray(w_freq) - w_star, axis=-1).max())
    records = 2 * (d + 1) * u * (np.abs(w_star).max() + np.sqrt(d) * e_max)
    return records + steps * 2 * u * (e_max + 10 * lr)


LR = 0.01  # the learning rate of OPTS


@pytest.mark.parametrize("kind", ["population", "online", "online-noise", "fixed", "explicit"])
def test_engine_matches_core(kind):
    """Same batches, same updates, up to float32 rounding (:func:`_tolerance`),
    for each of the four optimizers."""
    got = _run64(kind)[[0, 9]]
    ref = np.asarray(_core_seeds(_oracle(kind), tuple(OPTS.values()), seed_keys(64)[np.array([0, 9])],
                                 tuple(GRID), population=kind == "population"))
    np.testing.assert_allclose(got, ref, rtol=0, atol=_tolerance(got, STEPS, LR))


@pytest.mark.parametrize("kind", ["online", "online-noise"])
def test_fast_path_matches_generic_path(kind):
    """An oracle stripped to ``(init, grad)`` runs vmapped over seeds: same numbers."""
    oracle = _oracle(kind)
    generic = make_simulation(OPTS, GradientOracle(oracle.init, oracle.grad))
    got = np.asarray(simulate(generic, _model(), seed_keys(64), GRID).w_freq)
    np.testing.assert_allclose(got, _run64(kind), rtol=1e-5, atol=1e-5)


def test_non_elementwise_optimizer():
    """Global-norm clipping couples coordinates: not declared element-wise, it
    is vmapped per seed, and correct; declaring it element-wise would clip the
    norm over all seeds at once, which the check against the core catches
    (tolerance :func:`_tolerance`: its update is at most ``0.5 * 0.01``)."""
    clip = optax.chain(optax.clip_by_global_norm(0.01), optax.sgd(0.5))
    oracle = _oracle("online")
    sim = make_simulation({"clip": clip, "gd": OPTS["gd"]}, oracle)
    assert sim.elementwise == (False, True)
    traj = np.asarray(simulate(sim, _model(), seed_keys(64), GRID).w_freq)
    alone = np.asarray(simulate(sim, _model(), seed_keys([7]), GRID).w_freq)
    np.testing.assert_array_equal(alone[0], traj[7])
    ref = np.asarray(_core_seeds(oracle, (clip,), seed_keys(64)[7:8], tuple(GRID)))
    np.testing.assert_allclose(traj[7, 0], ref[0, 0], rtol=0, atol=_tolerance(traj[7, 0], STEPS, LR))
    with pytest.raises(ValueError, match="unknown"):
        make_simulation({"gd": OPTS["gd"]}, oracle, elementwise=["adam"])


def test_declared_elementwise_equals_vmapped():
    """The four optimizers run on the stacked batch (declared, the default) and
    vmapped per seed (``elementwise=()``) give the same numbers: the same
    element-wise operations on the same inputs; only XLA's fusion (and so
    which products become FMAs) may differ, a few float32 roundings per step,
    which the contraction of the dynamics keeps at the 1e-5 level of
    ``test_fast_path_matches_generic_path`` over 300 steps."""
    sim = make_simulation(OPTS, _oracle("online"), elementwise=())
    assert sim.elementwise == (False,) * 4
    assert make_simulation(OPTS, _oracle("online")).elementwise == (True,) * 4
    got = np.asarray(simulate(sim, _model(), seed_keys(64), GRID).w_freq)
    np.testing.assert_allclose(got, _run64("online"), rtol=1e-5, atol=1e-5)


def test_split_gaps_of_a_gap_beyond_2_31():
    """``2^32 + 5 = 2 (2^31 - 1) + 7``: two full segments, then 7 steps; only the last records."""
    seg = split_gaps(np.array([0, 3, 2**32 + 8]))
    np.testing.assert_array_equal(seg.lengths, [3, MAX_SEGMENT, MAX_SEGMENT, 7])
    np.testing.assert_array_equal(seg.record, [True, False, False, True])
    assert seg.lengths.dtype == np.int32
    with pytest.raises(ValueError):
        split_gaps(np.array([0, 5]), 0)


@settings(max_examples=25, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 2**40), min_size=1, max_size=6),
    max_segment=st.one_of(st.integers(1, 50), st.just(MAX_SEGMENT)),
)
def test_split_gaps_reaches_every_grid_point(gaps, max_segment):
    """The running sum of the segments, read where they record, is the grid
    (in Python integers); every segment is in ``[1, max_segment]``; a gap takes
    ``ceil(gap / max_segment)`` segments, the fewest possible."""
    grid = np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
    if sum(-(-g // max_segment) for g in gaps) > 10**6:  # keep the arrays small
        max_segment = MAX_SEGMENT
    seg = split_gaps(grid, max_segment)
    lengths = [int(v) for v in seg.lengths]
    assert all(1 <= v <= max_segment for v in lengths)
    ends = np.cumsum(np.array(lengths, dtype=object))
    assert list(ends[seg.record]) == [int(g) for g in grid[1:]]
    assert len(lengths) == sum(-(-g // max_segment) for g in gaps)


def test_long_gaps_in_segments_match_gd_closed_form():
    """Population GD with gaps split into segments of at most 97 steps (a
    stand-in for 2^31 - 1) is bitwise the unsplit run, and equals the closed
    form ``e~(t) = (1 - lr s^2)^t e~(0)`` (``theory.gd.gd_error``) at the grid,
    whether each segment runs in its own call or all in one.

    Tolerance (float64, u = 2^-53): a step ``e <- e - lr C^T diag(s^2) C e`` is
    computed with an error at most ``(4d + 4) u ||e||`` (two unrolled d x d
    products, the scaling and the update); the exact step is symmetric with
    eigenvalues ``1 - lr s_k^2`` in ``[0, 1]``, so errors never grow: after
    ``t`` steps at most ``t (4d + 4) u ||e0||``. The closed form's ``x^t``
    with ``x`` rounded once is off by ``t u`` relatively, and the record
    ``C e + w~*`` by ``4 d u (||e|| + ||w~*||)``. With ``t = 700``, d = 3:
    ``atol = (700 * 16 + 700 + 12) u (||e0|| + ||w~*||) ~ 3e-11``.
    A wrong split (a lost or an extra segment) moves ``e~_0`` by ``lr s_0^2 |e~_0|
    = 0.005 * 5`` per step.
    """
    with jax.enable_x64(True):
        problem = make_problem(np.array([0.1, 0.05, 0.0]), np.array([5.0, 10.0, 0.0]), np.array([0.01, -0.01, 0.02]))
        lr = 0.5
        sim = make_simulation({"gd": make_optimizer("gd", lr)}, make_oracle("population", problem.spectrum))
        grid = np.array([0, 250, 251, 700])
        split = np.asarray(simulate(sim, problem, seed_keys(2), grid, max_segment=97).w_freq)
        whole = np.asarray(simulate(sim, problem, seed_keys(2), grid).w_freq)
        np.testing.assert_array_equal(split, whole)
        one_call = np.asarray(simulate(sim, problem, seed_keys(2), grid, max_segment=97, chunks=1).w_freq)
        np.testing.assert_array_equal(one_call, whole)  # records picked out of one call's segments
        expected = np.asarray(gd_error(problem, lr)(jnp.asarray(grid, jnp.float64))) + np.asarray(problem.w_star_freq)
        u, d, t = 2.0**-53, 3, int(grid[-1])
        scale = np.linalg.norm(problem.e0_freq) + np.linalg.norm(problem.w_star_freq)
        atol = (t * (4 * d + 4) + t + 4 * d) * u * float(scale)
        np.testing.assert_allclose(split[:, 0], np.broadcast_to(expected, split[:, 0].shape), rtol=0, atol=atol)


def test_segments_do_not_change_random_streams():
    """Online draws split into segments of at most 3 steps (each gap of 7 runs as
    3 + 3 + 1), draw_steps 4: every segment starts a block of draws, so a step's
    batch comes from another block, at another place in it, than in the unsplit
    run (one block per gap); bitwise the same: a step's batch depends on its
    counter only. (128 segments in 64 calls of 2: the compiled program of the
    coarse run of ``test_grid_chunks_and_draw_steps_do_not_change_values``.)"""
    sim = make_simulation(OPTS, _oracle("online-noise"))
    split = np.asarray(simulate(sim, _model(), seed_keys(64), GRID, max_segment=3, draw_steps=4).w_freq)
    np.testing.assert_array_equal(split, _run64("online-noise"))


def test_step_counter_carries_past_2_32():
    """Eleven online steps from ``t = 2^32 - 5`` (draw_steps 4, so one call's draws straddle
    the wrap of the low word) equal the core keyed by
    ``threefry2x32(stream, (t >> 32, t mod 2^32))`` with the counter words
    computed in Python integers (:func:`_core`). The counter ends at ``2^32 + 6``.
    Tolerance :func:`_tolerance` over 11 steps (same batches, float32
    rounding). A counter that did not carry
    would draw the batches of steps ``0, 1, ...`` after the wrap; the step
    keys and the counter words are also checked bit for bit, against JAX's
    threefry on the 64-bit counter and against Python integers."""
    problem, oracle = _model(), _oracle("online-noise")
    sim = make_simulation(OPTS, oracle)
    keys = seed_keys(64)
    t0, steps = 2**32 - 5, 11
    # The engine's compiled chunk as simulate runs it (that of the coarse run of
    # test_grid_chunks_and_draw_steps_do_not_change_values): 11 steps, then an empty segment.
    plan = engine._make_plan(sim, problem, 4)
    comp = engine._compile(plan, tuple(jax.devices()), keys.dtype, tuple(keys.shape[1:]))
    state = comp.init(jax.device_put(keys, comp.sharding))
    state = state._replace(t=jax.device_put(jnp.array([t0 >> 32, t0 & 0xFFFFFFFF], jnp.uint32), state.t.sharding))
    end, rec = comp.advance(state, jnp.array([steps, 0], jnp.int32))  # rec: (2, k, d, seeds) w~
    t_end = t0 + steps
    np.testing.assert_array_equal(np.asarray(end.t), [t_end >> 32, t_end & 0xFFFFFFFF])
    got, after_empty = np.asarray(rec[0]), np.asarray(rec[1])
    np.testing.assert_array_equal(after_empty, got)
    ref = np.asarray(_core_seeds(oracle, tuple(OPTS.values()), keys[:3], (steps,), t0))[:, :, -1]  # (3, k, d)
    got = got[:, :, :3].transpose(2, 0, 1)
    np.testing.assert_allclose(got, ref, rtol=0, atol=_tolerance(got, steps, LR))
    # The keys themselves, bit for bit, against jax's threefry on the 64-bit counter.
    # threefry_2x32 splits its count in halves, his then los: one block (hi_j, lo_j) per step.
    ts = (5, 2**32 - 1, 2**32, 2**32 + 6, 2**40 + 3)
    counters = np.array([[t >> 32 for t in ts], [t & 0xFFFFFFFF for t in ts]], np.uint32)  # (2, 5)

    @jax.jit
    def step_keys(keys):  # (2,) stream words of one seed, (2, 5) its keys of the steps ts
        stream = engine.key_words(jax.vmap(lambda k: jax.random.split(k)[1])(keys))  # (2, 1)
        return stream[:, 0], engine.step_key_words(stream, counters)

    stream, words = step_keys(keys[:1])
    want = threefry_2x32(stream, counters.reshape(-1)).reshape(2, len(ts))
    np.testing.assert_array_equal(np.asarray(words), np.asarray(want))
    counter = engine._advance(jnp.array([0, 2**32 - 2], jnp.uint32)[:, None], jnp.arange(4, dtype=jnp.uint32))
    np.testing.assert_array_equal(np.asarray(counter), [[0, 0, 1, 1], [2**32 - 2, 2**32 - 1, 0, 1]])


def test_auto_draw_steps():
    assert auto_draw_steps(1) == 64 and auto_draw_steps(1024) == 8 and auto_draw_steps(10**6) == 4


def test_float64():
    with jax.enable_x64(True):
        from theory.signal import make_problem

        problem = make_problem(np.array([0.1, 0.05, 0.0]), np.array([5.0, 10.0, 0.0]), np.array([0.01, -0.01, 0.02]))
        for mode in ("population", "online"):
            sim = make_simulation(OPTS, make_oracle(mode, problem.spectrum, 5000))
            w = np.asarray(simulate(sim, problem, seed_keys(4), np.array([0, 100])).w_freq)
            assert w.dtype == np.float64
            # GD never moves it; the record C e + w~* rounds each of its d products and sums at
            # u = 2^-53 relative to the terms' sizes, so allow 4 d u (||e||_1 + ||w~*||_1).
            atol = 4 * 3 * 2.0**-53 * (np.abs(problem.e0_freq).sum() + np.abs(problem.w_star_freq).sum())
            np.testing.assert_allclose(w[:, 0, -1, 2], 0.02, rtol=0, atol=float(atol))
