"""Exit codes and error reporting shared by the command-line tools (``evo2kit.tutorial.runner``, ``evo2kit-embed``,
``evo2kit-vep``).

A user error prints one line, ``<prog>: error: <message>``, and exits with its code
(:data:`USER_ERRORS`: 64 usage, 65 bad data, 66 missing input, 75 busy); ``--debug`` shows the
traceback instead. 0 is success; the runner adds 1 (a notebook failed) and 2 (a metric out of
range or missing); an unexpected error exits 1 with its traceback. The Python API raises
exceptions; only ``main()`` turns them into exit codes (:func:`run_main`).
"""

from __future__ import annotations

import argparse
import sys

EX_OK, EX_FAILED, EX_METRICS = 0, 1, 2
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL = 64, 65, 66, 75

USER_ERRORS = {
    EX_USAGE: "usage error (unknown option, profile, notebook, parameter or layer; bad value)",
    EX_DATAERR: "bad data (a store made by another call or damaged, a file failing its check)",
    EX_NOINPUT: "missing input (a file or dataset not found)",
    EX_TEMPFAIL: "the store is in use by another running process (try again later)",
}


def exit_status_help(own: dict[int, str]) -> str:
    """The ``exit status:`` paragraph of a tool's --help: its own codes, then the user errors'."""
    lines = [f"  {code:<3} {text}" for code, text in sorted(({EX_OK: "success"} | own | USER_ERRORS).items())]
    return "\n".join(["exit status:", *lines, "  --debug shows an error's traceback instead of its one line."])


def few(items: list[str], k: int = 5) -> str:
    """The first ``k`` of ``items`` joined by '; ', and how many more there are: an error message's list."""
    return "; ".join(items[:k]) + (f"; ... ({len(items) - k} more)" if len(items) > k else "")


class UsageError(ValueError):
    """The command or call asks for something that does not exist or cannot be (exit status 64)."""


class DataError(ValueError):
    """Data on disk is not what it should be: a damaged or foreign store, a failed checksum (exit status 65)."""


class BusyError(RuntimeError):
    """A resource (an embedding store) is held by another running process (exit status 75)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors exiting 64 (argparse's own 2 is the runner's "metric out of range")."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def exit_code(e: BaseException) -> int | None:
    """The exit status of a user error, or None for an unexpected one (shown with its traceback)."""
    if isinstance(e, DataError):
        return EX_DATAERR
    if isinstance(e, BusyError):
        return EX_TEMPFAIL
    if isinstance(e, FileNotFoundError):
        return EX_NOINPUT
    if isinstance(e, (ValueError, KeyError, TypeError)):  # UsageError, and the API's argument checks
        return EX_USAGE
    return None


def run_main(prog: str, body, debug: bool) -> int:
    """``body()``'s exit status; a user error becomes one line on stderr and its code (see the
    module docstring), unless ``debug``, which re-raises it."""
    try:
        return body() or EX_OK
    except Exception as e:  # noqa: BLE001 (classified below; anything else keeps its traceback)
        code = exit_code(e)
        if debug or code is None:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError quotes its text
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code
