"""Shared setup for the theorem checks in ``theory/test_*.py``.

float64 throughout: the checks compare closed forms with iterations to
rounding error, and every rounding tolerance is stated in units of the
float64 unit roundoff ``U = 2^-53`` (``|fl(a op b) - a op b| <= U |a op b|``).
Each test module defines ``U`` itself rather than importing it from here.

x64 is switched on while these modules are imported (module-level constants
and strategies) and around every test here, and nowhere else: ``tests/``
checks the package at its default float32.
"""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _float64_module():
    """float64 for a module's module-scoped fixtures too (set up before any
    function-scoped fixture), whatever ran before in this process."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield
