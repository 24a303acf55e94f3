"""Session-wide test settings, for ``theory/`` and ``tests/`` alike.

hypothesis draws the same examples on every run (profile ``default``); the
profile ``explore`` draws new ones.

A JAX persistent compilation cache shared by the pytest-xdist workers of one
session: the controller makes a temporary directory, hands its path to each
worker and removes it at the end. A program one worker has compiled (the
same jitted function on the same shapes, eager operations included) is then
loaded by the other instead of compiled again; programs with host callbacks
(diffrax's solves) are not cached by JAX and compile as before. Measured on
2 cores: about 17% less CPU time for the engine, sampling and theory
modules. A cache directory chosen by the caller (``JAX_COMPILATION_CACHE_DIR``)
is used as it is and kept. Scripts the tests start in subprocesses do not
inherit it: they run as a user runs them.
"""

import shutil
import tempfile

import jax
import pytest
from hypothesis import settings

# The same examples on every run, so a run's verdict does not depend on the draw;
# ``pytest --hypothesis-profile=explore`` (or ``--hypothesis-seed=N``) searches anew.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("default")

_KEY = "jax_compilation_cache_dir"


def _use_cache(path: str) -> None:
    jax.config.update(_KEY, path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # most programs compile in < 1 s


def pytest_configure(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: the controller's directory
        if workerinput.get(_KEY):
            _use_cache(workerinput[_KEY])
        return
    if jax.config.jax_compilation_cache_dir is None:
        config._jax_cache_dir = tempfile.mkdtemp(prefix="sgd-robustness-jax-cache-")
        _use_cache(config._jax_cache_dir)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput[_KEY] = getattr(node.config, "_jax_cache_dir", None)


def pytest_unconfigure(config):
    path = getattr(config, "_jax_cache_dir", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
