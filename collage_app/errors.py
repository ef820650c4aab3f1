"""The application's exit statuses and the errors its commands print without a traceback."""

from __future__ import annotations

__all__ = ["EXIT_USER_ERROR", "EXIT_INVALID", "UserError", "InvalidWorkflow"]

EXIT_USER_ERROR = 2
EXIT_INVALID = 1  # invalid workflow or failed node


class UserError(Exception):
    """An error in what the user asked for; printed without a traceback."""


class InvalidWorkflow(Exception):
    """The workflow file cannot be read at all."""
