"""File inputs and the PathPolicy: open (the command line: any path; relative ones next to the workflow first) and
confined (a server: names inside its folders only, one message for missing and refused, no server paths)."""

import os

import pytest

from collage_engine import Engine, PathPolicy, PathRefusedError
from engine_testnodes import make_registry

REG = make_registry()


def text_prompt(path: str) -> dict:
    return {"1": {"class_type": "LoadText", "inputs": {"path": path}},
            "2": {"class_type": "TextLength", "inputs": {"text": ["1", 0]}}}


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "wf").mkdir()
    (tmp_path / "cwd").mkdir()
    (tmp_path / "wf" / "a.txt").write_text("next to the workflow")
    (tmp_path / "cwd" / "a.txt").write_text("in the working folder")
    (tmp_path / "cwd" / "b.txt").write_text("only here")
    return tmp_path


def test_open_policy_looks_next_to_the_workflow_first(tree):
    p = PathPolicy([str(tree / "wf"), str(tree / "cwd")])
    assert p.resolve("a.txt") == str(tree / "wf" / "a.txt")
    assert p.resolve("b.txt") == str(tree / "cwd" / "b.txt")
    assert p.resolve(str(tree / "cwd" / "a.txt")) == str(tree / "cwd" / "a.txt")  # absolute: as given
    assert p.resolve("../cwd/b.txt") == str(tree / "cwd" / "b.txt")  # the user owns the machine
    with pytest.raises(PathRefusedError) as e:
        p.resolve("c.txt")
    assert str(tree / "wf" / "c.txt") in str(e.value) and str(tree / "cwd" / "c.txt") in str(e.value)
    assert e.value.status == 404  # one refusal type for the engine and the server: the HTTP status it answers


def test_the_server_refuses_paths_with_the_same_type(tmp_path):
    pytest.importorskip("aiohttp")
    from collage_engine.server import PathRefused, safe_join

    assert PathRefused is PathRefusedError
    with pytest.raises(PathRefusedError) as e:
        safe_join(str(tmp_path), "..")
    assert e.value.status == 400


def test_confined_policy(tree):
    os.symlink(tree / "cwd" / "b.txt", tree / "wf" / "link.txt")
    p = PathPolicy({"input": [str(tree / "wf")]}, confined=True, known_name=lambda v, k: v == "builtin")
    assert p.resolve("a.txt") == str(tree / "wf" / "a.txt")
    assert p.resolve(p.resolve("a.txt")) == str(tree / "wf" / "a.txt")  # resolving twice changes nothing
    assert p.resolve("builtin") == "builtin"
    messages = set()
    for bad in ["../cwd/b.txt", str(tree / "cwd" / "b.txt"), "link.txt", "c.txt", "/etc/passwd", "x\x00.txt"]:
        with pytest.raises(PathRefusedError) as e:
            p.resolve(bad)
        message = str(e.value).replace(repr(bad), "NAME")  # the name as the client gave it, and nothing else
        assert str(tree) not in message
        messages.add(message)
    assert len(messages) == 1  # missing and refused read the same: no existence oracle
    allowed = PathPolicy({"input": [str(tree / "wf")]}, confined=True, allow=[str(tree / "cwd")])
    assert allowed.resolve(str(tree / "cwd" / "b.txt")) == str(tree / "cwd" / "b.txt")


def test_the_engine_resolves_and_reports_file_inputs(tree):
    engine = Engine(REG, paths=PathPolicy([str(tree / "wf"), str(tree / "cwd")]))
    prompt = text_prompt("b.txt")
    r = engine.run(prompt)
    assert r.ok and prompt["1"]["inputs"]["path"] == "b.txt"  # the caller's workflow is not changed
    v = engine.validate(text_prompt("nothing.txt"))
    (err,) = v.node_errors["1"]["errors"]
    assert err["type"] == "file_not_found" and err["extra_info"] == {"input_name": "path"}
    assert "looked for" in err["message"] and not v.ok and v.order == []
