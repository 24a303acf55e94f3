"""The deep-network study: small networks on scikit-learn's digits, trained with (mini-batch) GD, Adam and RMSProp.

Modules: :mod:`digits` (data and 2-D DCT), :mod:`networks`, :mod:`training`,
:mod:`robustness` (noise, PGD, Lipschitz bounds), :mod:`stats` (intervals,
Pareto fronts, comparisons), :mod:`study` (the run), :mod:`report` (tables
and the README block) and :mod:`figures`. Nothing here imports the linear
engine.
"""
