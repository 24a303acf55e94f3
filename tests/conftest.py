"""``tests/`` runs at JAX's default float32, whatever ran before it.

``theory/conftest.py`` switches x64 on for the theorem checks (globally, since
pytest loads every conftest before it imports any test module); this fixture
puts every software test back on float32, the precision users get by default.
Test modules here therefore keep JAX arrays out of module scope.
"""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _float32_module():
    """float32 for a module's own module-scoped fixtures too (they are set up
    before any function-scoped one): a script run once per module would
    otherwise see the global x64 of ``theory/conftest.py``."""
    with jax.enable_x64(False):
        yield


@pytest.fixture(autouse=True)
def _float32():
    with jax.enable_x64(False):
        yield


@pytest.fixture
def run_cli(capsys):
    """Runs a script's ``main(argv)`` in-process: ``(exit code, stdout, stderr)``."""

    def run(main, argv):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def assert_refused(run_cli, tmp_path):
    """Checks the bad-input contract: one line on stderr naming ``flag``,
    exit code 2, no traceback, nothing on stdout and no output folder."""

    def check(main, argv, flag):
        out = tmp_path / "out"
        code, stdout, stderr = run_cli(main, argv + ["--out", str(out)])
        assert code == 2
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert flag in lines[0] and "error" in lines[0]
        assert "Traceback" not in stderr and stdout == ""
        assert not out.exists()

    return check


@pytest.fixture
def assert_out_refused(run_cli, tmp_path):
    """``--out`` under a regular file: one line naming ``--out``, exit 2, the file untouched."""

    def check(main):
        blocker = tmp_path / "file"
        blocker.write_text("keep me")
        code, _, stderr = run_cli(main, ["--out", str(blocker / "sub")])
        assert code == 2 and "--out" in stderr and len(stderr.strip().splitlines()) == 1
        assert blocker.read_text() == "keep me"

    return check
