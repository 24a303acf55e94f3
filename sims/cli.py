"""Command-line plumbing shared by the scripts: parsing, validation, output.

Bad input gets one line on stderr naming the flag and the problem, and exit
code 2, before anything is computed or written. Outputs are written
atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
import optax

from sims.optimizers import DEFAULT_HYPERPARAMS as OPT_HYPERPARAMS

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad flag or setting; the message names the flag."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        fail(message, prog=self.prog)


def fail(message: str, prog: Optional[str] = None) -> None:
    """Prints ``prog: error: message`` on stderr and exits with code 2."""
    prog = prog or os.path.basename(sys.argv[0])
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def run_script(argv, parser: argparse.ArgumentParser, validate: Callable, run: Callable, prog: str) -> int:
    """The scripts' ``main``: parse, validate, then ``run(args, t_start)``.

    Bad input exits with code 2 before anything is computed; ``--x64``
    switches JAX to float64 before the first array is made.
    """
    args = parser.parse_args(argv)
    try:
        validate(args)
    except UsageError as err:
        fail(str(err), prog=prog)
    t_start = time.perf_counter()
    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)
    return run(args, t_start)


def finite_float(text: str) -> float:
    """A finite float (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def nonnegative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def float_list(text: str) -> tuple[float, ...]:
    """A comma-separated list of finite floats, e.g. ``0.1,0.05,0``."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers")
    return tuple(finite_float(p) for p in parts)


def name_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of names from ``choices``, without repeats."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(p.strip() for p in text.split(","))
        for n in names:
            if n not in choices:
                raise argparse.ArgumentTypeError(f"unknown name {n!r}; choose from {', '.join(choices)}")
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"{text!r} repeats a name")
        return names

    return parse


def check_out_dir(path: str) -> str:
    """Checks that ``path`` is, or can be created as, a writable folder.

    Nothing is left behind: an existing folder is probed with a temporary
    file that is removed at once.

    Raises:
      UsageError: naming ``--out``.
    """
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise UsageError(f"--out: {path!r} is not a folder ({probe!r} is a file)")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UsageError(f"--out: {path!r} is not writable ({err.strerror})") from None
    return path


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp_path)`` then renames ``tmp_path`` to ``path``.

    An interrupted run leaves either the old file or the new one, never half
    of one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the mode open() would
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str, data: Any) -> None:
    """Writes ``data`` as sorted, indented JSON, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, allow_nan=False)
            f.write("\n")

    atomic_write(path, write)


class Progress:
    """A one-line progress report with ETA on stderr.

    On a terminal the line is redrawn in place; otherwise a line is printed
    about every 10%. Nothing is printed when ``quiet``, nor for runs that end
    within ``delay`` seconds.
    """

    def __init__(self, label: str, quiet: bool = False, delay: float = 2.0):
        self.label, self.quiet, self.delay = label, quiet, delay
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.shown = False
        self.next_decile = 1

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed < self.delay and done < total:
            return
        frac = done / total if total else 1.0
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        line = f"{self.label}: {100 * frac:5.1f}% ({done}/{total} steps), {elapsed:.1f} s elapsed, ETA {eta:.1f} s"
        if self.tty:
            print("\r" + line, end="\n" if done >= total else "", file=sys.stderr, flush=True)
            self.shown = True
        elif frac * 10 >= self.next_decile or done >= total:
            if self.shown or done < total or elapsed >= self.delay:
                print(line, file=sys.stderr, flush=True)
                self.shown = True
            self.next_decile = int(frac * 10) + 1


# --------------------------------------------------------------------------
# Shared flags and config blocks.

DECAYS = ("b1", "b2", "decay")  # exponential-average rates, in [0, 1)


def check_gradient_flags(args) -> None:
    """``--mode fixed`` needs ``--batch-size > 0``; ``--record-points`` >= 2."""
    if args.batch_size == 0 and args.mode == "fixed":
        raise UsageError("--mode: 'fixed' needs --batch-size > 0 (0 means the population gradient)")
    if args.record_points < 2:
        raise UsageError("--record-points: must be >= 2")


def parse_hparams(items: Sequence[str], optimizers: Sequence[str]) -> dict:
    """``["adam.b1=0", ...]`` -> ``{"adam": {"b1": 0.0}}``, validated."""
    out: dict = {name: {} for name in optimizers}
    for item in items:
        key, sep, value = item.partition("=")
        opt, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--hparam: {item!r} is not of the form OPT.NAME=VALUE")
        if opt not in OPT_HYPERPARAMS:
            raise UsageError(f"--hparam: unknown optimizer {opt!r}")
        if opt not in optimizers:
            raise UsageError(f"--hparam: {opt} is not among --optimizers")
        if name not in OPT_HYPERPARAMS[opt]:
            known = ", ".join(OPT_HYPERPARAMS[opt]) or "none"
            raise UsageError(f"--hparam: {opt} has no hyper-parameter {name!r} (known: {known})")
        try:
            v = nonnegative_float(value)
        except Exception as err:
            raise UsageError(f"--hparam: {item!r}: {err}") from None
        if name in DECAYS and v >= 1:
            raise UsageError(f"--hparam: {item!r}: a decay rate must be in [0, 1)")
        out[opt][name] = v
    return out


def environment() -> dict:
    """``{"versions": ..., "device": ...}`` for a summary's config block."""
    dev = jax.devices()
    return {
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "device": {"platform": dev[0].platform, "kind": dev[0].device_kind, "count": len(dev)},
    }
