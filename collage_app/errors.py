"""The application's errors and its one table from exception type to exit status and message.

Every command raises; :func:`report` (called once, by ``main``) looks the error up in :data:`EXIT_CODES` — the first
rule the error is an instance of wins, so a subclass's rule comes before its base's — prints the rule's message
and returns its status. An error no rule covers is a bug: it propagates with its traceback.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

__all__ = ["EXIT_USER_ERROR", "EXIT_INVALID", "EXIT_INTERRUPTED", "UserError", "InvalidWorkflow", "OverrideError",
           "MapError", "MapSpecError", "ExitRule", "EXIT_CODES", "exit_rule", "report"]

EXIT_USER_ERROR = 2
EXIT_INVALID = 1  # invalid workflow or failed node
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error in what the user asked for; printed without a traceback."""


class InvalidWorkflow(Exception):
    """The workflow file cannot be read at all."""


class OverrideError(UserError, ValueError):
    """A ``--set`` that cannot be applied (bad syntax, unknown node or input): a user error like any other (and a
    ValueError for the Python API)."""


class MapError(ValueError):
    """A map that cannot start (bad workflow, a manifest written for other rows, Ray missing)."""


class MapSpecError(MapError):
    """An ``--over`` spec that cannot be read; the message starts with the spec."""


class ExitRule(NamedTuple):
    """An exception type, the exit status and the message (``{e}``: the error's text; None: print nothing) of a
    command that raised it; ``verbose_traceback``: with ``--verbose`` the error propagates (its traceback shown)."""

    type: type[BaseException]
    status: int
    message: str | None = "error: {e}"
    verbose_traceback: bool = False


#: exception type -> exit status and message; first match wins (subclasses before their bases)
EXIT_CODES: tuple[ExitRule, ...] = (
    ExitRule(KeyboardInterrupt, EXIT_INTERRUPTED, "interrupted"),
    ExitRule(BrokenPipeError, 0, None),  # `neural-collage examples | head`: the reader has gone, which is no error
    ExitRule(InvalidWorkflow, EXIT_INVALID),
    ExitRule(UserError, EXIT_USER_ERROR),
    ExitRule(MapSpecError, EXIT_USER_ERROR),
    ExitRule(MapError, EXIT_INVALID),
    ExitRule(FileNotFoundError, EXIT_USER_ERROR, verbose_traceback=True),
    ExitRule(ValueError, EXIT_USER_ERROR, verbose_traceback=True),
)


def exit_rule(error: BaseException) -> ExitRule | None:
    """The first rule of :data:`EXIT_CODES` that covers ``error``, or None (a bug)."""
    return next((rule for rule in EXIT_CODES if isinstance(error, rule.type)), None)


def report(error: BaseException, verbose: bool = False) -> int:
    """Print what :data:`EXIT_CODES` says for ``error`` (to standard error) and return its exit status; re-raise an
    error no rule covers, or one whose rule shows the traceback under ``--verbose``."""
    rule = exit_rule(error)
    if rule is None or (verbose and rule.verbose_traceback):
        raise error
    if isinstance(error, BrokenPipeError):
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
    if rule.message is not None:
        print(rule.message.format(e=error), file=sys.stderr)
    return rule.status
