"""The PRNG streams of the studies besides the seeds', each a ``fold_in`` index of the base key.

Seed ``i`` of a run draws everything from ``fold_in(key(seed), i)``
(:func:`sims.linear.engine.seed_keys`; the deep study's training seeds likewise),
``i = 0, ..., seeds - 1``. The
other streams take indices at the top of the ``fold_in`` range, counted down
from ``2^31 - 1``. For a fixed key, ``fold_in`` is injective in the index
(threefry is a block cipher: a permutation of its counter block for a fixed
key), so distinct indices give distinct keys, and a stream is disjoint from
every seed's as long as ``seeds <= FIRST_RESERVED`` (the scripts refuse more;
their memory guards refuse far fewer already).
"""

from __future__ import annotations

#: The test data of the main job's empirical adversarial risk: sample ``j`` of
#: :func:`sims.linear.seed_stats.attack_check` uses ``fold_in(fold_in(key(seed), TEST_STREAM), j)``.
TEST_STREAM = 2**31 - 1
#: The spectrum sweep's targets: target ``j`` uses ``fold_in(fold_in(key(seed), TARGET_STREAM), j)``.
TARGET_STREAM = 2**31 - 2
#: The deep study's evaluation key (noise draws, PGD starts, power iterations),
#: shared by all optimizers: ``fold_in(key(seed), EVAL_STREAM)``.
EVAL_STREAM = 2**31 - 1
#: The lowest reserved index: seed indices stay below it.
FIRST_RESERVED = TARGET_STREAM
