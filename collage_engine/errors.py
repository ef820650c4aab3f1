"""The one error type for a user's mistake in a node input, shared by every front end.

A node raises :class:`NodeInputError` (input name, message, optional hint) when the value given to one of its
inputs is wrong; libraries below the nodes raise plain ``ValueError`` subclasses that carry the argument they
blame, and the node layer maps those once, at its boundary. The engine adds the node (id and type) to the run's
error record (``input_name``, ``hint`` and ``user_error: True``), so the command line, the HTTP server and the
ComfyUI adapter all print the same text for the same mistake — without a traceback, which is for bugs.
"""

from __future__ import annotations

__all__ = ["NodeInputError"]


class NodeInputError(ValueError):
    """A bad value of one node input; ``str(error)`` is the text every front end shows."""

    def __init__(self, input_name: str, message: str, hint: str | None = None) -> None:
        self.input_name = input_name
        self.message = message
        self.hint = hint
        super().__init__(f"input '{input_name}': {message}" + (f" ({hint})" if hint else ""))
