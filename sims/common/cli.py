"""Command-line plumbing shared by the scripts: parsing, validation, output.

The contract every script keeps:

* **Bad input** gets one line on stderr naming the flag and the problem, and
  exit code 2, before anything is computed or written; that includes runs
  that cannot fit in memory (:func:`require_fits`) or would certainly take
  days (:func:`require_time`).
* **Progress** from the first second: :func:`stage` announces each stage
  (compilation included), :class:`Progress` (tqdm) shows long ones with an
  ETA; ``--quiet`` silences both.
* **Outputs as a set**: a run writes into a temporary folder next to
  ``--out`` (:class:`OutputSet`) and moves its files into place together at
  the end, the summary last; an interrupted or failed run leaves nothing.
* **Interrupts**: Ctrl-C and SIGTERM print one line and exit 130 or 143.
* **JSON** never holds ``inf`` or ``NaN``: :func:`write_json` writes ``null``
  and records why under ``"nonfinite"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
import optax

from sims.common.optimizers import DEFAULT_HYPERPARAMS as OPT_HYPERPARAMS

EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

#: Integer counts above this are refused by the parser (they would overflow
#: int64 step counters long before any run could finish).
MAX_COUNT = 2**53

#: A run whose estimated memory exceeds this fraction of the machine's
#: physical memory is refused before it starts.
MEMORY_FRACTION = 0.5

#: A run whose *lower bound* on run time exceeds this is refused.
TIME_LIMIT_S = 24 * 3600.0

#: Every script's default ``--out``: an untracked folder, so that running a
#: script does not change the committed ``figures/`` (refresh those with
#: ``--out figures``).
DEFAULT_OUT = "results"

_NEGATIVE = re.compile(r"^-(\d|\.\d)")

_PROG = {"name": os.path.basename(sys.argv[0])}


class UsageError(Exception):
    """A bad flag or setting; the message names the flag."""


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread like ``KeyboardInterrupt`` for SIGINT
    (a ``BaseException``, so that no library's ``except Exception`` swallows it)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit code 2.

    Abbreviations are off: ``--lr`` never silently means ``--lr-range``.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102 - argparse API
        fail(message, prog=self.prog)

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        # argparse reads a value such as ``-0.1,0.1`` as an option; glue it to its flag.
        args = list(sys.argv[1:] if args is None else args)
        glued = []
        for tok in args:
            if glued and glued[-1].startswith("--") and "=" not in glued[-1] and _NEGATIVE.match(tok):
                glued[-1] = f"{glued[-1]}={tok}"
            else:
                glued.append(tok)
        return super().parse_known_args(glued, namespace)


def fail(message: str, prog: Optional[str] = None) -> None:
    """Prints ``prog: error: message`` on stderr and exits with code 2."""
    prog = prog or _PROG["name"]
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


#: Signals received by this run. The handler raises at once, but Python may run it inside a
#: callback that discards exceptions (a garbage-collection hook), so the run also checks this
#: record at every stage, progress update and before its outputs are committed.
_SIGNALLED: list = []


def _on_signal(signum, frame):
    _SIGNALLED.append(signum)
    check_interrupted()


def _quiet_interrupts(unraisable) -> None:
    """``sys.unraisablehook`` during a run: an interrupt raised where Python
    discards exceptions (the handler ran inside a garbage-collection hook) is
    already recorded in :data:`_SIGNALLED`, so it is not printed as a traceback."""
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Interrupted)) and _SIGNALLED:
        return
    sys.__unraisablehook__(unraisable)


def check_interrupted() -> None:
    """Raises ``KeyboardInterrupt`` or :class:`Interrupted` if the run has been signalled."""
    if _SIGNALLED:
        raise KeyboardInterrupt() if _SIGNALLED[0] == signal.SIGINT else Interrupted()


def run_script(argv, parser: argparse.ArgumentParser, validate: Callable, run: Callable, prog: str) -> int:
    """The scripts' ``main``: parse, validate, then ``run(args, t_start)``.

    Bad input exits with code 2 before anything is computed; ``--x64``
    switches JAX to float64 before the first array is made. Ctrl-C and
    SIGTERM end the run with one line and exit code 130 or 143; the
    :class:`OutputSet` of the run has then written nothing.
    """
    _PROG["name"] = prog
    args = parser.parse_args(argv)
    try:
        validate(args)
    except UsageError as err:
        fail(str(err), prog=prog)
    t_start = time.perf_counter()
    switch_x64 = getattr(args, "x64", False) and not jax.config.jax_enable_x64
    if switch_x64:  # switched back at the end: ``main`` may be called again in-process
        jax.config.update("jax_enable_x64", True)
    _SIGNALLED.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet_interrupts
    try:
        return run(args, t_start)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing written", file=sys.stderr)
        return EXIT_SIGINT
    except Interrupted:
        print(f"{prog}: terminated; nothing written", file=sys.stderr)
        return EXIT_SIGTERM
    finally:
        if switch_x64:
            jax.config.update("jax_enable_x64", False)
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit(code: int) -> None:
    """A script's exit: after an interrupt, leave at once with ``code``.

    An interrupted run has already removed its outputs, but threads may still
    be inside XLA (the predictions compile beside the simulation), and
    interpreter shutdown under them aborts; ``os._exit`` skips it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if code in (EXIT_SIGINT, EXIT_SIGTERM):
        os._exit(code)
    sys.exit(code)


# --------------------------------------------------------------------------
# Argument types.


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
    """An integer, also written as ``2e5`` or ``200_001``, at most :data:`MAX_COUNT`."""
    try:
        value = int(text)
    except ValueError:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not math.isfinite(x) or x != math.floor(x):
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        value = int(x)
    if abs(value) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most 2^53)")
    return value


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


# --------------------------------------------------------------------------
# Resource guards, checked before any computation.


def memory_limit() -> float:
    """Bytes a run may use: :data:`MEMORY_FRACTION` of physical memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return MEMORY_FRACTION * total


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


def _duration(s: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def require_fits(flag: str, estimate_bytes: float, what: str) -> None:
    """Refuses a run whose memory estimate exceeds :func:`memory_limit`.

    Raises:
      UsageError: naming ``flag``, the estimate and the limit.
    """
    limit = memory_limit()
    if not estimate_bytes <= limit:
        raise UsageError(f"{flag}: {what} needs about {_bytes(estimate_bytes)} of memory, "
                         f"more than the limit of {_bytes(limit)} ({MEMORY_FRACTION:.0%} of this machine's)")


def require_time(flag: str, estimate_s: float, what: str) -> None:
    """Refuses a run whose lower bound on time exceeds :data:`TIME_LIMIT_S`.

    Raises:
      UsageError: naming ``flag``, the estimate and the limit.
    """
    if not estimate_s <= TIME_LIMIT_S:
        raise UsageError(f"{flag}: {what} would take at least {_duration(estimate_s)}, "
                         f"more than the limit of {_duration(TIME_LIMIT_S)}")


def check_out_dir(path: str) -> str:
    """Checks that ``path`` is, or can be created as, a writable folder.

    Nothing is left behind: an existing folder is probed with a temporary
    file that is removed at once.

    Raises:
      UsageError: naming ``--out``.
    """
    if not path or not path.strip():
        raise UsageError("--out: the output folder must not be empty")
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


# --------------------------------------------------------------------------
# Progress.


def stage(message: str, quiet: bool = False) -> None:
    """Announces a stage of the run on stderr (``prog: message``)."""
    check_interrupted()
    if not quiet:
        print(f"{_PROG['name']}: {message}", file=sys.stderr, flush=True)


class _Lines:
    """stderr for tqdm when it is not a terminal: each redraw becomes a whole line."""

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip("\n")
        if text.strip():
            print(text, file=sys.stderr, flush=True)

    def flush(self) -> None:
        sys.stderr.flush()


class Progress:
    """A tqdm bar on stderr for a long stage, with its ETA.

    ``Progress(label, total, quiet)``; ``update(n)`` adds ``n`` units, or call
    it as ``progress(done, total)`` (the engine's callback). A context
    manager; nothing is shown when ``quiet``.
    """

    def __init__(self, label: str, total: int, quiet: bool = False, unit: str = "step"):
        from tqdm.auto import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=f"{_PROG['name']}: {label}", unit=unit, unit_scale=True,
                        disable=quiet, file=sys.stderr if tty else _Lines(), dynamic_ncols=True,
                        leave=True, mininterval=0.5 if tty else 10.0)
        self.done = 0

    def update(self, n: int = 1) -> None:
        check_interrupted()
        self.bar.update(n)
        self.done += n

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        self.update(done - self.done)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # interrupted: drop the bar, the one-line message follows
            self.bar.leave = False
        self.close()


# --------------------------------------------------------------------------
# Outputs.


class OutputSet:
    """A run's output files, written apart and moved into ``out_dir`` together.

    Files are written into a temporary folder next to ``out_dir``
    (``path(name)``). On a normal exit they are moved into ``out_dir`` with
    SIGINT and SIGTERM held back, the summary last, so an interrupt leaves the
    old set or the new one, never a mixture; on an exception or an interrupt
    the temporary folder is removed and nothing is written.

    Use::

        with OutputSet(args.out) as outputs:
            save_figure(fig, outputs.path("risks.png"))
            write_json(outputs.path("summary.json"), {..., "files": outputs.files})
    """

    def __init__(self, out_dir: str):
        self.out_dir = os.path.abspath(out_dir)
        self.files: list[str] = []
        self.tmp: Optional[str] = None

    def __enter__(self) -> "OutputSet":
        parent = os.path.dirname(self.out_dir)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(self.out_dir)}.tmp-")
        return self

    def path(self, name: str) -> str:
        """Where to write output ``name`` (a plain file name)."""
        if os.path.basename(name) != name or not name:
            raise ValueError(f"an output is a plain file name, got {name!r}")
        if name not in self.files:
            self.files.append(name)
        return os.path.join(self.tmp, name)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                check_interrupted()  # a signal whose exception was swallowed: still write nothing
                self._commit()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _commit(self) -> None:
        held = {signal.SIGINT, signal.SIGTERM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            os.makedirs(self.out_dir, exist_ok=True)
            umask = os.umask(0)
            os.umask(umask)
            summaries = [f for f in self.files if f.endswith(".json")]
            for name in [f for f in self.files if f not in summaries] + summaries:
                src = os.path.join(self.tmp, name)
                if os.path.exists(src):
                    os.chmod(src, 0o666 & ~umask)
                    os.replace(src, os.path.join(self.out_dir, name))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _finite_json(data: Any, path: str, nonfinite: dict) -> Any:
    """``data`` with every non-finite float replaced by ``None``; the reason
    (``"inf"``, ``"-inf"`` or ``"nan"``) is recorded under its key path."""
    if isinstance(data, dict):
        return {k: _finite_json(v, f"{path}.{k}" if path else str(k), nonfinite) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_json(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(data)]
    if isinstance(data, (float, np.floating)):
        x = float(data)
        if not math.isfinite(x):
            nonfinite[path] = "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
            return None
        return x
    if isinstance(data, np.integer):
        return int(data)
    if isinstance(data, np.bool_):
        return bool(data)
    return data


def write_json(path: str, data: Any) -> None:
    """Writes ``data`` as sorted, indented JSON.

    JSON has no ``inf`` or ``NaN``: such values are written as ``null`` and
    listed under a top-level ``"nonfinite"`` key, ``{key path: "inf" | "-inf"
    | "nan"}``, so that a ``null`` always has a reason.
    """
    nonfinite: dict = {}
    clean = _finite_json(data, "", nonfinite)
    if nonfinite and isinstance(clean, dict):
        clean["nonfinite"] = nonfinite
    with open(path, "w") as f:
        json.dump(clean, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")


def print_rows(rows: Sequence[Sequence[str]]) -> None:
    """A plain-text table on stdout: the first row is the header, columns left-aligned."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))


def wrote(outputs: OutputSet, t_start: float, quiet: bool) -> None:
    """The closing ``wrote ... in X s`` line."""
    if not quiet:
        print(f"{_PROG['name']}: wrote {', '.join(outputs.files)} to {outputs.out_dir} "
              f"in {time.perf_counter() - t_start:.1f} s", file=sys.stderr)


# --------------------------------------------------------------------------
# Shared flags and config blocks.

DECAYS = ("b1", "b2", "decay")  # exponential-average rates, in [0, 1)


def add_gradient_flags(p: argparse.ArgumentParser, gradients: Sequence[str], samplers: Sequence[str],
                       gradient: str = "online", batch_size: int = 5000) -> None:
    """``--gradient`` (one of ``gradients``: ``sims.linear.oracles.GRADIENTS``), ``--batch-size``,
    ``--sampler`` (one of ``samplers``) and ``--label-noise``."""
    a = p.add_argument
    a("--gradient", choices=tuple(gradients), default=gradient,
      help="'population': the exact expected gradient; 'online': a fresh batch of --batch-size samples every "
      f"step (the paper); 'fixed': one training set of --batch-size samples, reused (default: {gradient})")
    a("--batch-size", type=positive_int, default=batch_size,
      help=f"samples n per batch or training set, for --gradient online or fixed (default: {batch_size})")
    a("--sampler", choices=tuple(samplers), default="wishart",
      help="'wishart' samples the batch's sufficient statistics exactly in O(d^2); "
      "'explicit' draws the n samples (slow; the reference) (default: wishart)")
    a("--label-noise", type=nonnegative_float, default=0.0,
      help="standard deviation of Gaussian label noise, for --gradient online or fixed (default: 0, as in the paper)")


def check_gradient_flags(args) -> None:
    """Label noise needs sampled data; ``--record-points`` >= 2."""
    if args.gradient == "population" and args.label_noise > 0:
        raise UsageError("--label-noise: needs --gradient online or fixed (the population gradient has no noise)")
    if getattr(args, "record_points", 2) < 2:
        raise UsageError("--record-points: must be >= 2")


def add_seed_flags(p: argparse.ArgumentParser, seeds: int) -> None:
    """``--seeds`` (how many) and ``--seed`` (the base seed)."""
    p.add_argument("--seeds", type=positive_int, default=seeds, help=f"number of seeds (default: {seeds})")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="base seed; seed i uses fold_in(key(seed), i) (default: 0)")


def add_optimizer_flags(p: argparse.ArgumentParser, choices: Sequence[str], hparams: bool = True) -> None:
    """``--optimizers`` (a comma list of ``choices``) and, with ``hparams``, ``--hparam``."""
    p.add_argument("--optimizers", type=name_list(choices), default=tuple(choices),
                   help=f"comma list from {','.join(choices)} (default: all)")
    if hparams:
        p.add_argument("--hparam", action="append", default=[], metavar="OPT.NAME=VALUE",
                       help="override an optimizer hyper-parameter, e.g. adam.b1=0 (repeatable); defaults match "
                       "PyTorch: adam b1=0.9 b2=0.999 eps=1e-8, rmsprop decay=0.99 eps=1e-8 (outside the sqrt)")


def add_output_flags(p: argparse.ArgumentParser, summary: str = "summary.json", x64: bool = True) -> None:
    """``--out``, ``--no-plots``, ``--quiet`` and, with ``x64``, ``--x64``."""
    a = p.add_argument
    a("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT}/; the README's outputs are "
      "refreshed with --out figures)")
    a("--no-plots", action="store_true", help=f"write {summary} only")
    a("--quiet", action="store_true", help="no progress or stage lines on stderr")
    if x64:
        a("--x64", action="store_true", help="compute in float64 (default: float32)")


def config_from(cls, args, **values):
    """The frozen dataclass ``cls`` filled from the parsed flags (by field name) and ``values``.

    A script's ``config`` block in its JSON is dumped from this object
    (:func:`config_json`), so it cannot drift from the flags.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**given, **values})


def config_json(config) -> dict:
    """``config`` as a JSON block, with the versions and the device."""
    return {**dataclasses.asdict(config), **environment()}


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
