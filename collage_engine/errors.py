"""The one error type for a user's mistake in a node input, shared by every front end.

A node raises :class:`NodeInputError` (input name, message, optional hint) when the value given to one of its
inputs is wrong; libraries below the nodes raise plain ``ValueError`` subclasses whose ``argument`` attribute names
the library's own parameter (``collage_core.collage.ArgumentError``). Where a node's input is named otherwise, the node
declares it once (``Node.error_inputs = {"core_parameter": "input"}``) and :func:`as_input_error` — applied by the
engine and the ComfyUI adapter around every ``run`` — reports the error on that input.
The engine adds the node (id and type) to the run's
error record (``input_name``, ``hint`` and ``user_error: True``), so the command line, the HTTP server and the
ComfyUI adapter all print the same text for the same mistake — without a traceback, which is for bugs.
"""

from __future__ import annotations

__all__ = ["NodeInputError", "as_input_error"]


class NodeInputError(ValueError):
    """A bad value of one node input; ``str(error)`` is the text every front end shows."""

    def __init__(self, input_name: str, message: str, hint: str | None = None) -> None:
        self.input_name = input_name
        self.message = message
        self.hint = hint
        super().__init__(f"input '{input_name}': {message}" + (f" ({hint})" if hint else ""))


def as_input_error(error: BaseException, inputs: object, error_inputs: dict[str, str]) -> NodeInputError | None:
    """The :class:`NodeInputError` ``error`` (raised by a node's ``run``) should be reported as, or None to let it
    propagate as it is. A ``NodeInputError`` naming a key of ``error_inputs`` is renamed to that input; another
    ``ValueError`` carrying an ``argument`` (a library's parameter) becomes one for the input ``error_inputs`` maps
    it to, else for the input of the same name, when the node has that input (``inputs``: its input names)."""
    if isinstance(error, NodeInputError):
        mapped = error_inputs.get(error.input_name)
        return NodeInputError(mapped, error.message, error.hint) if mapped else None
    argument = getattr(error, "argument", None)
    if not isinstance(error, ValueError) or not isinstance(argument, str):
        return None
    name = error_inputs.get(argument, argument)
    return NodeInputError(name, str(error)) if name in inputs else None  # type: ignore[operator]
