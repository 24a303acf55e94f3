"""The iteration engine: optax optimizers on the linear signal model.

One step, for every optimizer at once (they share the batch, i.e. common
random numbers across optimizers):

    e~   = C w - w~*                          (frequency-coordinate error)
    g~   = oracle gradient at e~ for the step's batch
    g    = C^T g~                             (input-coordinate gradient)
    w    <- w + optimizer.update(g)           (the sign etc. act on g)

Each seed's key splits into ``(data_key, stream_key)``; the batch drawn at
step ``t`` depends only on ``fold_in(stream_key, t)`` (keys of another PRNG
implementation are first mapped to threefry words, see
:func:`sims.linear.sampling.key_words`). So a seed's trajectory does not depend on
how many seeds run beside it, on the record steps, on chunking, on
``draw_steps`` or on the devices the seeds are sharded over: ``tests/test_engine.py``
and ``tests/test_sharding.py`` check this bit for bit. (That needs the same
floating-point operations for every seed count. XLA fuses tiny arrays
differently, and with them which ``a * b + c`` become FMAs, so seeds are
padded to ``SEED_MULTIPLE`` per device; and the per-seed arithmetic avoids
reductions, whose summation order XLA picks by shape, for ``d <= 8``.)

How it runs fast (``benchmarks/bench_engine.py`` has the numbers):

* **Seeds last.** The state of all seeds is one set of arrays with the seed
  axis last and contiguous (``w``: ``k`` arrays of shape ``(d, seeds)``), and
  the small ``d x d`` products are unrolled into element-wise arithmetic, so
  a step is a few element-wise XLA fusions that vectorise over seeds.
  (vmapping the one-seed step instead gives ``(seeds, k, d)`` layouts,
  batched 3x3 matrix products and per-seed scalar work.)
* **Random numbers in blocks.** For oracles with a batched ``draw`` (online
  Wishart), the batches of the next ``draw_steps`` steps of every seed are drawn
  in one vectorised call (threefry written out so XLA fuses it; an exact
  Marsaglia-Tsang chi-square instead of ``jax.random.gamma``'s while loop;
  see :mod:`sims.linear.sampling`), materialised, and consumed by the inner loop.
  Drawing inside the step let XLA fuse the generator into each consumer,
  recomputing it for every optimizer and coordinate.
* **Element-wise optimizers run on the batch directly.** An optimizer
  declared element-wise (``make_simulation(..., elementwise=names)``; by
  default the names of :data:`ELEMENTWISE`, i.e. ``gd``, ``signgd``,
  ``adam`` and ``rmsprop`` of :func:`sims.common.optimizers.make_optimizer`) is
  applied to the ``(d, seeds)`` arrays as they are, with scalar state
  (Adam's step count, identical across seeds) shared, so e.g. Adam's bias
  correction is computed once per step rather than once per seed. Any other
  optimizer is vmapped over seeds. The declaration is a promise: the update
  of a stacked array, with the scalar state shared, equals the vmapped
  update (true of any update built from element-wise operations only).
* **Sharding** is ``shard_map`` over a 1-D mesh of the seed axis: every
  device runs its seeds independently. Seeds are padded to a multiple of the
  device count.
* Compiled functions are cached, so a second :func:`simulate` with the same
  shapes does not compile again.

Steps run between record points inside a ``lax.scan`` over the record
steps, so memory is proportional to their number (plus the state and one call's draws).

Long runs. A gap between record points is run as segments of at most
:data:`MAX_SEGMENT` ``= 2^31 - 1`` steps (the loop counters are int32; see
:func:`split_gaps`), recording only at the record steps. The step counter
is 64 bits, two uint32 words ``(hi, lo)``, and the batch of step ``t`` comes
from the key ``threefry2x32(stream_key, (t >> 32, t & (2^32 - 1)))``, which
is ``fold_in(stream_key, t)`` for ``t < 2^32`` and stays distinct beyond
(threefry is a bijection of the 64-bit counter), so random streams never
repeat for ``t < 2^64``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sims.linear.oracles import GradientOracle
from sims.linear.recording import check_record_steps
from sims.common.optimizers import OPTIMIZERS
from sims.linear.sampling import UNROLL_MAX_ENTRIES, key_words, threefry_slots
from theory.signal import Problem

Array = jax.Array

#: Seeds per device are padded to a multiple of this. XLA compiles arrays of
#: a few elements differently (other fusions, so other FMA contractions), which
#: changed results in the last bit for fewer than 8 seeds; with 16 or more,
#: every seed count gives the same bits (``tests/test_engine.py``).
SEED_MULTIPLE = 16

#: With ``draw_steps=None``, about this many (step, seed) draws are made at once
#: per device: enough to amortise a call's overhead, few enough to stay in
#: cache (measured on a 2-core AMD EPYC: 8 steps at 1024 seeds).
DRAWS_PER_CALL = 8192


#: The longest segment run by one loop: loop counters are int32.
MAX_SEGMENT = 2**31 - 1

#: Optimizer names run on the seed-last batch directly (not vmapped) unless
#: ``make_simulation`` is told otherwise: those of ``make_optimizer``, whose
#: updates (``optax.sgd``, ``sign_sgd``, ``adam``, ``rmsprop``) are element-wise
#: with scalar state shared by all seeds.
ELEMENTWISE = frozenset(OPTIMIZERS)


def auto_draw_steps(seeds_per_device: int) -> int:
    """The default ``draw_steps``: ``DRAWS_PER_CALL / seeds`` rounded to a power of 2 in ``[4, 64]``."""
    b = DRAWS_PER_CALL / max(1, seeds_per_device)
    return int(min(64, max(4, 2 ** round(math.log2(b)))))


class Simulation(NamedTuple):
    """What to simulate: named optax optimizers and a gradient oracle (static).

    ``elementwise[i]`` says that optimizer ``i`` runs on the seed-last batch
    directly; otherwise it is vmapped over seeds.
    """

    names: tuple[str, ...]
    optimizers: tuple[optax.GradientTransformation, ...]
    oracle: GradientOracle
    elementwise: tuple[bool, ...] = ()


class Trajectories(NamedTuple):
    """Recorded weights.

    Attributes:
      names: optimizer names, in the order of axis 1 of ``w_freq``.
      steps: ``(T,)`` the record steps.
      w_freq: ``(seeds, k, T, d)`` weights in frequency coordinates.
    """

    names: tuple[str, ...]
    steps: np.ndarray
    w_freq: Array

    def of(self, name: str) -> Array:
        """``(seeds, T, d)`` weights of one optimizer."""
        return self.w_freq[:, self.names.index(name)]


def make_simulation(
    optimizers: Mapping[str, optax.GradientTransformation],
    oracle: GradientOracle,
    elementwise: Optional[Iterable[str]] = None,
) -> Simulation:
    """Bundles named optimizers and an oracle.

    Args:
      optimizers: name -> optax transformation.
      oracle: the gradient oracle (:mod:`sims.linear.oracles`).
      elementwise: names of the optimizers whose ``init`` and ``update`` are
        element-wise with scalar state shared across seeds, so that they may
        run on the stacked ``(d, seeds)`` arrays directly (faster); every
        other optimizer is vmapped over seeds. Default: the names in
        :data:`ELEMENTWISE` (those of :func:`sims.common.optimizers.make_optimizer`).
        Pass ``()`` for a custom transformation under one of those names.

    Raises:
      ValueError: if ``elementwise`` names an optimizer that is not given.
    """
    names = tuple(optimizers)
    chosen = ELEMENTWISE.intersection(names) if elementwise is None else frozenset(elementwise)
    unknown = chosen.difference(names)
    if unknown:
        raise ValueError(f"elementwise names unknown optimizer(s) {sorted(unknown)}; have {list(names)}")
    return Simulation(names, tuple(optimizers.values()), oracle, tuple(n in chosen for n in names))


def seed_keys(seeds: Sequence[int] | int, base_seed: int = 0) -> Array:
    """Keys ``fold_in(key(base_seed), i)`` for each seed index ``i``.

    ``seeds`` is a count (``range(seeds)``) or an explicit list of indices.
    """
    idx = np.arange(seeds) if isinstance(seeds, (int, np.integer)) else np.asarray(seeds)
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(base_seed), i))(jnp.asarray(idx, jnp.uint32))


# --------------------------------------------------------------------------
# Small constant matrices.


@functools.lru_cache(maxsize=None)
def _dct_basis_np(d: int) -> np.ndarray:
    """Orthonormal DCT-II ``C`` in float64 (as ``theory.signal.dct_basis``),
    with its exact zeros (e.g. ``C[1, 1]`` for ``d = 3``) set to 0."""
    k = np.arange(d)[:, None]
    j = np.arange(d)[None, :]
    c = np.sqrt(2.0 / d) * np.cos(np.pi * k * (2 * j + 1) / (2 * d))
    c[0] /= np.sqrt(2.0)
    c[np.abs(c) < 1e-12] = 0.0
    return c


def _const_matmul(m: np.ndarray, x: Array) -> Array:
    """``m @ x`` for a constant ``(p, d)`` matrix and ``x`` ``(d, *rest)``."""
    p, d = m.shape
    if p * d > UNROLL_MAX_ENTRIES:
        return jnp.tensordot(jnp.asarray(m, x.dtype), x, axes=1)
    rows = []
    for i in range(p):
        terms = [x[j] * np.asarray(m[i, j], x.dtype) for j in range(d) if m[i, j] != 0.0]
        rows.append(sum(terms[1:], terms[0]) if terms else jnp.zeros_like(x[0]))
    return jnp.stack(rows)


# --------------------------------------------------------------------------
# The batched state and step.


class _State(NamedTuple):
    """All seeds (on one device), seed axis last.

    Attributes:
      t: steps taken, shared: ``(2,)`` uint32 words ``(hi, lo)`` of a
        64-bit counter (:func:`_advance`).
      stream: ``(2, seeds)`` threefry words of each seed's stream key.
      data: the oracle's fixed data, leaves ``(..., seeds)``.
      e: ``k`` arrays ``(d, seeds)``: the errors ``w - w*`` in input
        coordinates. The optimizers see ``w = e + w*``; iterating on ``e``
        is the same iteration, but float32 rounds relative to ``|e|``, which
        goes to 0, rather than to ``|w|`` (a GD run would otherwise move the
        irrelevant coordinate by rounding).
      opt: the ``k`` optimizer states (seed axis last, or shared scalars).
    """

    t: Array
    stream: Array
    data: Any
    e: tuple[Array, ...]
    opt: tuple[Any, ...]


class _Plan(NamedTuple):
    sim: Simulation
    d: int
    dtype: Any
    w0_in: tuple[float, ...]
    w_star_in: tuple[float, ...]
    w_star_freq: tuple[float, ...]
    elementwise: tuple[bool, ...]
    draw_steps: int


def _make_plan(sim: Simulation, problem: Problem, draw_steps: int) -> _Plan:
    d, dtype = problem.dim, problem.spectrum.dtype
    c = _dct_basis_np(d)
    w0_in = tuple(float(v) for v in np.asarray(problem.w0_freq, np.float64) @ c)
    elementwise = sim.elementwise or (False,) * len(sim.names)
    w_star_in = tuple(float(v) for v in np.asarray(problem.w_star_freq, np.float64) @ c)
    w_star_freq = tuple(float(v) for v in np.asarray(problem.w_star_freq))
    return _Plan(sim, d, dtype, w0_in, w_star_in, w_star_freq, tuple(elementwise), draw_steps)


def _init(plan: _Plan, keys: Array) -> _State:
    """The state of ``keys`` (``(seeds,)``): every optimizer starts at ``w0``."""
    sim = plan.sim
    data_keys, stream_keys = jax.vmap(lambda k: tuple(jax.random.split(k)))(keys)
    data = jax.vmap(sim.oracle.init, out_axes=-1)(data_keys)
    n = keys.shape[0]
    w0 = jnp.broadcast_to(jnp.asarray(plan.w0_in, plan.dtype)[:, None], (plan.d, n))
    e0_in = np.subtract(plan.w0_in, plan.w_star_in)  # in float64, then rounded once
    e0 = jnp.broadcast_to(jnp.asarray(e0_in, plan.dtype)[:, None], (plan.d, n))
    opt = tuple(
        o.init(w0) if ew else jax.vmap(o.init, in_axes=-1, out_axes=-1)(w0)
        for o, ew in zip(sim.optimizers, plan.elementwise)
    )
    return _State(jnp.zeros((2,), jnp.uint32), key_words(stream_keys), data, (e0,) * len(sim.names), opt)


def _advance(t: Array, n) -> Array:
    """The 64-bit counter ``t`` (words ``(hi, lo)``, leading axis) plus ``n``
    (uint32, broadcasting): ``lo`` wraps modulo ``2^32`` and carries into ``hi``."""
    hi, lo = t[0], t[1]
    new_lo = lo + jnp.asarray(n, jnp.uint32)
    return jnp.stack(jnp.broadcast_arrays(hi + (new_lo < lo).astype(jnp.uint32), new_lo))


def step_key_words(stream: Array, t: Array) -> Array:
    """Key words ``(2, *batch)`` of step ``t``: ``threefry2x32(stream, (hi, lo))``.

    ``stream``: ``(2, *batch)`` key words; ``t``: ``(2, ...)`` counter words
    broadcasting against ``batch``. For ``t < 2^32`` (``hi = 0``) this is
    ``jax.random.fold_in(stream_key, t)``; beyond, the 64-bit counter keeps
    every step's key distinct.
    """
    return jnp.stack(threefry_slots(stream, t[0], t[1]))


def _w_freq(plan: _Plan, e: tuple[Array, ...]) -> Array:
    """``(k, d, seeds)`` weights ``w~ = C e + w~*`` in frequency coordinates."""
    c = _dct_basis_np(plan.d)
    w_star = jnp.asarray(plan.w_star_freq, plan.dtype)[:, None]
    return jnp.stack([_const_matmul(c, ei) + w_star for ei in e])


def _step(plan: _Plan, s: _State, grad_freq: Callable[[Array], Array]) -> _State:
    """One step of every optimizer; ``grad_freq`` maps ``e~`` ``(d, k, seeds)``
    to ``g~`` of the same shape, with the step's batch."""
    c = _dct_basis_np(plan.d)
    w_star = jnp.asarray(plan.w_star_in, plan.dtype)[:, None]
    g_freq = grad_freq(jnp.stack([_const_matmul(c, ei) for ei in s.e], axis=1))
    es, opts = [], []
    for i, (opt, ew) in enumerate(zip(plan.sim.optimizers, plan.elementwise)):
        g = _const_matmul(c.T, g_freq[:, i])
        update = opt.update if ew else jax.vmap(opt.update, in_axes=-1, out_axes=-1)
        upd, st = update(g, s.opt[i], s.e[i] + w_star)  # params: w (unused by sgd, adam, ...)
        es.append(optax.apply_updates(s.e[i], upd))
        opts.append(st)
    return s._replace(t=_advance(s.t, 1), e=tuple(es), opt=tuple(opts))


def _run_steps(plan: _Plan, s: _State, length: Array) -> _State:
    """Runs ``length`` steps (a traced scalar)."""
    oracle = plan.sim.oracle
    if oracle.apply is not None and oracle.draw is None:  # population, fixed: no randomness
        body = lambda _, s: _step(plan, s, lambda e: oracle.apply(s.data, None, e))
        return jax.lax.fori_loop(0, length, body, s)

    if oracle.apply is not None:  # draw the batches of ``draw_steps`` steps at once
        block = plan.draw_steps
        offsets = jnp.arange(block, dtype=jnp.uint32)[:, None]

        def step_keys(s):  # (2, block, seeds): the keys of steps t + b
            return step_key_words(s.stream[:, None, :], _advance(s.t[:, None, None], offsets))

        def run_block(carry):
            s, left, kw = carry
            # Draws (block first, so a step reads one contiguous slab).
            stats = jax.tree.map(lambda x: jnp.moveaxis(x, -2, 0), oracle.draw(kw))
            take = lambda b: jax.tree.map(lambda x: x[b], stats)

            def body(b, carry):
                # The step's draws travel in the carry too: slicing them
                # inside the consumers kept XLA from vectorising those.
                s, cur = carry
                s = _step(plan, s, lambda e: oracle.apply(s.data, cur, e))
                return s, take(jnp.minimum(b + 1, block - 1))

            count = jnp.minimum(left, block)
            s, _ = jax.lax.fori_loop(0, count, body, (s, take(0)))
            # The next block's keys travel in the loop carry, so they are
            # materialised once rather than recomputed inside every consumer.
            return s, left - count, step_keys(s)

        return jax.lax.while_loop(lambda c: c[1] > 0, run_block, (s, length, step_keys(s)))[0]

    # A generic oracle: ``grad`` vmapped over seeds with typed step keys.
    def grad_freq(s, e):
        kw = step_key_words(s.stream, s.t[:, None])
        keys = jax.random.wrap_key_data(kw.T, impl="threefry2x32")
        g = jax.vmap(oracle.grad, in_axes=(-1, 0, 2), out_axes=2)(s.data, keys, jnp.moveaxis(e, 0, 1))
        return jnp.moveaxis(g, 1, 0)

    return jax.lax.fori_loop(0, length, lambda _, s: _step(plan, s, lambda e: grad_freq(s, e)), s)


def _run_chunk(plan: _Plan, s: _State, lengths: Array) -> tuple[_State, Array]:
    """Runs ``lengths[j]`` steps, then records, for each ``j``: ``(J, k, d, seeds)``."""

    def segment(s, length):
        s = _run_steps(plan, s, length)
        return s, _w_freq(plan, s.e)

    return jax.lax.scan(segment, s, lengths)


def _seed_spec(per_seed: bool, ndim: int) -> P:
    return P(*([None] * (ndim - 1) + ["seeds"])) if per_seed else P()


class _Compiled(NamedTuple):
    init: Callable
    advance: Callable
    sharding: Any
    state_specs: Any


@functools.lru_cache(maxsize=32)
def _compile(plan: _Plan, devices: tuple, key_dtype, key_shape: tuple) -> _Compiled:
    mesh = Mesh(np.array(devices), ("seeds",))
    # Which state leaves carry the seed axis: those whose shape changes with it.
    probe = lambda n: jax.eval_shape(lambda k: _init(plan, k), jax.ShapeDtypeStruct((n,) + key_shape, key_dtype))
    one, two = probe(1), probe(2)
    specs = jax.tree.map(lambda a, b: _seed_spec(a.shape != b.shape, len(a.shape)), one, two)
    shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)
    init = jax.jit(lambda keys: _init(plan, keys), out_shardings=shardings)
    rec_spec = P(None, None, None, "seeds")
    chunk = jax.shard_map(
        lambda s, lengths: _run_chunk(plan, s, lengths),
        mesh=mesh,
        in_specs=(specs, P()),
        out_specs=(specs, rec_spec),
        check_vma=False,
    )
    advance = jax.jit(chunk, donate_argnums=0)
    return _Compiled(init, advance, NamedSharding(mesh, P("seeds")), specs)


class Segments(NamedTuple):
    """Record steps as loop segments.

    Attributes:
      lengths: ``(J,)`` int32 steps of each segment, each in ``[1, max_segment]``.
      record: ``(J,)`` bool, whether the segment ends at a record step.
    """

    lengths: np.ndarray
    record: np.ndarray


def split_gaps(record_steps, max_segment: int = MAX_SEGMENT) -> Segments:
    """Splits each gap of ``record_steps`` into segments of at most ``max_segment`` steps.

    A gap ``g`` becomes ``ceil(g / max_segment)`` segments: full ones of
    ``max_segment`` steps, then the rest; only its last segment records.
    E.g. ``2^32 + 5 = 2 (2^31 - 1) + 7`` gives ``[2^31 - 1, 2^31 - 1, 7]``.

    Args:
      record_steps: from :mod:`sims.linear.recording` (:func:`~sims.linear.recording.check_record_steps`).
      max_segment: the longest segment, in ``[1, MAX_SEGMENT]``.
    """
    if not 1 <= max_segment <= MAX_SEGMENT:
        raise ValueError(f"max_segment must be in [1, {MAX_SEGMENT}], got {max_segment}")
    gaps = np.diff(check_record_steps(record_steps))  # int64
    counts = -(-gaps // max_segment)  # ceil
    lengths = np.full(int(counts.sum()), max_segment, np.int64)
    ends = np.cumsum(counts) - 1  # index of each gap's last segment
    lengths[ends] = gaps - (counts - 1) * max_segment
    record = np.zeros(len(lengths), bool)
    record[ends] = True
    return Segments(lengths.astype(np.int32), record)


class SeedsLast(NamedTuple):
    """Recorded weights in the engine's layout, on the devices.

    Attributes:
      names: optimizer names, in the order of axis 1 of ``w_freq``.
      steps: ``(T,)`` the record steps.
      w_freq: ``(T, k, d, seeds_padded)`` weights in frequency coordinates,
        seed axis last and sharded; seeds from ``n_seeds`` on are padding.
      n_seeds: the number of seeds asked for.
    """

    names: tuple[str, ...]
    steps: np.ndarray
    w_freq: Array
    n_seeds: int


def simulate_seeds_last(
    sim: Simulation,
    problem: Problem,
    keys: Array,
    record_steps,
    *,
    chunks: int = 64,
    progress: Optional[Callable[[int, int], None]] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    draw_steps: Optional[int] = None,
    max_segment: int = MAX_SEGMENT,
) -> SeedsLast:
    """:func:`simulate`, returning the records in the engine's seed-last layout
    (no transpose, no copy to the host); arguments as for :func:`simulate`."""
    record_steps = check_record_steps(record_steps)
    if draw_steps is not None and draw_steps < 1:
        raise ValueError(f"draw_steps must be >= 1, got {draw_steps}")
    seg = split_gaps(record_steps, max_segment)
    per_chunk = max(1, math.ceil(len(seg.lengths) / max(1, chunks)))
    n_chunks = math.ceil(len(seg.lengths) / per_chunk)
    padded = np.zeros(n_chunks * per_chunk, np.int32)
    padded[: len(seg.lengths)] = seg.lengths
    record = np.zeros(n_chunks * per_chunk, bool)
    record[: len(seg.record)] = seg.record

    devices = tuple(devices if devices is not None else jax.devices())
    n_seeds = keys.shape[0]
    n_pad = -n_seeds % (len(devices) * SEED_MULTIPLE)
    if n_pad:  # extra seeds, dropped below: every device gets as many, a multiple of SEED_MULTIPLE
        keys = jnp.concatenate([keys, jnp.broadcast_to(keys[-1:], (n_pad,) + keys.shape[1:])])

    if draw_steps is None:
        draw_steps = auto_draw_steps(keys.shape[0] // len(devices))
    plan = _make_plan(sim, problem, draw_steps)
    args = (plan, devices, keys.dtype, tuple(keys.shape[1:]))
    try:
        comp = _compile(*args)
    except TypeError:  # unhashable pieces: compile without the cache
        comp = _compile.__wrapped__(*args)

    if comp.sharding.is_fully_addressable:
        keys = jax.device_put(keys, comp.sharding)
    else:  # several processes (jax.distributed): each places its devices' share of the same keys
        keys = jax.make_array_from_callback(keys.shape, comp.sharding, lambda index: keys[index])
    state = comp.init(keys)
    records = [_w_freq(plan, state.e)[None]]
    total, done = int(record_steps[-1]), 0
    for c in range(n_chunks):
        part = slice(c * per_chunk, (c + 1) * per_chunk)
        state, rec = comp.advance(state, jnp.asarray(padded[part]))
        keep = np.flatnonzero(record[part])
        if len(keep) == per_chunk:
            records.append(rec)
        elif len(keep) and keep[-1] == len(keep) - 1:  # a prefix (the last chunk's padding)
            records.append(rec[: len(keep)])
        elif len(keep):  # segments inside a long gap do not record
            records.append(rec[keep])
        done += int(padded[part].sum(dtype=np.int64))
        if progress is not None:
            jax.block_until_ready(state.e)
            progress(done, total)
    w_freq = jnp.concatenate(records, axis=0) if len(records) > 1 else records[0]  # (T, k, d, seeds)
    return SeedsLast(sim.names, record_steps, w_freq, n_seeds)


def simulate(
    sim: Simulation,
    problem: Problem,
    keys: Array,
    record_steps,
    *,
    chunks: int = 64,
    progress: Optional[Callable[[int, int], None]] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    draw_steps: Optional[int] = None,
    max_segment: int = MAX_SEGMENT,
) -> Trajectories:
    """Runs every seed and optimizer, recording ``w~`` at ``record_steps``.

    Args:
      sim: from :func:`make_simulation`.
      problem: the signal model (shared by all seeds).
      keys: ``(seeds,)`` PRNG keys, e.g. from :func:`seed_keys`.
      record_steps: from :mod:`sims.linear.recording` (starts at 0). Gaps may
        be of any length (:func:`split_gaps`).
      chunks: the compiled scan runs in about this many calls, so that
        ``progress`` can report; results do not depend on it.
      progress: called as ``progress(steps_done, steps_total)`` after each chunk.
      devices: devices to shard the seed axis over (default: all of
        ``jax.devices()``). Seeds are padded to a multiple of
        ``SEED_MULTIPLE`` per device.
      draw_steps: steps whose batches are drawn at once (online Wishart);
        results do not depend on it. Default: :func:`auto_draw_steps`.
      max_segment: the longest run of steps in one loop (default and
        maximum :data:`MAX_SEGMENT`); results do not depend on it.

    Returns:
      :class:`Trajectories` with ``w_freq`` of shape ``(seeds, k, T, d)``.
    """
    out = simulate_seeds_last(sim, problem, keys, record_steps, chunks=chunks, progress=progress, devices=devices,
                              draw_steps=draw_steps, max_segment=max_segment)
    w_freq = jnp.transpose(out.w_freq, (3, 1, 0, 2))[: out.n_seeds]
    return Trajectories(out.names, out.steps, w_freq)
