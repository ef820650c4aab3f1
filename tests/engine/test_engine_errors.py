"""The error contract: a library names its own parameters, a node declares which input reports each one that its
inputs name otherwise (``error_inputs``), the engine reports a :class:`NodeInputError` on that input."""

import pytest

from collage_engine import DeclarationError, Engine, Float, Node, NodeInputError, NodeRegistry, Output
from collage_engine.errors import as_input_error


class LibraryError(ValueError):
    """What a library below the nodes raises: a ``ValueError`` naming its own parameter."""

    def __init__(self, argument, message):
        super().__init__(message)
        self.argument = argument


class Mapped(Node):
    output_node = True
    inputs = [Float("strength", 0.5), Float("scale", 1.0)]
    outputs = [Output("x", "FLOAT")]
    error_inputs = {"strengths": "strength", "already": "scale"}

    def run(self, ctx, strength, scale):
        if scale == 2:
            raise NodeInputError("already", "named by a node helper")
        raise LibraryError("strengths" if scale == 1 else "scale" if scale == 3 else "elsewhere", "bad value")


def _error(scale):
    r = Engine(NodeRegistry([Mapped])).run({"1": {"class_type": "Mapped", "inputs": {"strength": 0.5, "scale": scale}}})
    assert r.status == "error"
    return r.error


def test_a_declared_parameter_is_reported_on_its_input():
    err = _error(1.0)
    assert err["exception_type"] == "NodeInputError" and err["input_name"] == "strength" and err["user_error"]
    assert err["exception_message"] == "input 'strength': bad value"


def test_an_undeclared_parameter_is_reported_on_the_input_of_its_name():
    err = _error(3.0)
    assert err["input_name"] == "scale" and err["exception_message"] == "input 'scale': bad value"


def test_a_node_input_error_naming_a_parameter_is_renamed():
    err = _error(2.0)
    assert err["input_name"] == "scale" and err["exception_message"] == "input 'scale': named by a node helper"


def test_a_parameter_no_input_has_stays_the_library_error():
    err = _error(4.0)
    assert err["exception_type"] == "LibraryError" and "input_name" not in err


def test_as_input_error_leaves_other_errors():
    assert as_input_error(KeyError("x"), {"x"}, {}) is None
    assert as_input_error(ValueError("plain"), {"x"}, {}) is None
    assert as_input_error(NodeInputError("x", "m"), {"x"}, {}) is None


def test_error_inputs_must_name_inputs():
    with pytest.raises(DeclarationError, match="error_inputs: 'p' maps to 'nope', which is no input"):
        class Wrong(Node):  # noqa: F841
            inputs = [Float("a", 0.0)]
            error_inputs = {"p": "nope"}
