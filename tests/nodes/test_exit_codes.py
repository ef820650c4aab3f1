"""The command line's one table from exception type to exit status and message (collage_app.errors.EXIT_CODES)."""

import pytest

from collage_app import errors as E
from collage_app.batch import MapError as BatchMapError
from collage_app.overrides import OverrideError as SetOverrideError

EXPECTED = [
    (KeyboardInterrupt(), 130, "interrupted"),
    (E.InvalidWorkflow("cannot read workflow x.json"), 1, "error: cannot read workflow x.json"),
    (E.UserError("--data d: no such folder"), 2, "error: --data d: no such folder"),
    (E.OverrideError("no node with id or title 'Nope'"), 2, "error: no node with id or title 'Nope'"),
    (E.MapSpecError("seed=1..: bad range"), 2, "error: seed=1..: bad range"),
    (E.MapError("the manifest was written for other rows"), 1, "error: the manifest was written for other rows"),
    (FileNotFoundError("no such file: a.png"), 2, "error: no such file: a.png"),
    (ValueError("bad value"), 2, "error: bad value"),
]


@pytest.mark.parametrize("error, status, message", EXPECTED, ids=[type(e).__name__ for e, _, _ in EXPECTED])
def test_each_type_has_its_status_and_message(error, status, message, capsys):
    assert E.exit_rule(error).status == status
    assert E.report(error) == status
    assert capsys.readouterr().err == message + "\n"


def test_subclasses_come_before_their_bases():
    """First match wins: no rule is shadowed by an earlier rule for one of its bases."""
    for i, rule in enumerate(E.EXIT_CODES):
        for earlier in E.EXIT_CODES[:i]:
            assert not issubclass(rule.type, earlier.type), f"{rule.type.__name__} is shadowed by " \
                                                            f"{earlier.type.__name__}"
    assert E.exit_rule(E.MapSpecError("x")).type is E.MapSpecError  # not MapError's rule, nor ValueError's
    assert E.exit_rule(E.OverrideError("x")).status == 2


def test_the_old_homes_of_the_types_are_the_same_types():
    assert BatchMapError is E.MapError and SetOverrideError is E.OverrideError


def test_what_no_rule_covers_is_a_bug_and_propagates():
    with pytest.raises(ZeroDivisionError):
        E.report(ZeroDivisionError("boom"))


def test_verbose_shows_the_traceback_of_plain_value_errors_only(capsys):
    with pytest.raises(ValueError):
        E.report(ValueError("bad"), verbose=True)
    assert E.report(E.UserError("mine"), verbose=True) == 2
    assert capsys.readouterr().err == "error: mine\n"
