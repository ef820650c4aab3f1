"""Property-based: malformed workflows of any shape never make validate or run raise (or hang)."""

import copy
import json
import math

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import engine_testnodes as tn
from collage_engine import Engine, NodeRegistry, Validation, validate

# Nodes that are quick whatever their inputs (no file reading, no large allocations, no long loops).
SAFE = [tn.MakeNumber, tn.AddNumbers, tn.Scale, tn.ToInt, tn.ShowNumber, tn.TextLength, tn.Fail, tn.Random,
        tn.Passthrough, tn.Checked, tn.RandomDraw]
REG = NodeRegistry(SAFE)
ENGINE = Engine(REG, host_budget=1 << 20)  # shared, so that runs also meet a warm cache
STATUSES = {"success", "invalid", "error"}
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))

TEMPLATE = {
    "1": {"class_type": "MakeNumber", "inputs": {"seed": 3, "scale": 1.5, "mode": "mul"}},
    "2": {"class_type": "Scale", "inputs": {"x": ["1", 0], "factor": 2.0}, "_meta": {"title": "double"}},
    "3": {"class_type": "AddNumbers", "inputs": {"a": ["2", 0], "b": ["1", 0]}},
    "4": {"class_type": "Passthrough", "inputs": {"anything": ["3", 0]}},
    "5": {"class_type": "ShowNumber", "inputs": {"x": ["4", 0], "label": "out", "verbose": True}},
    "6": {"class_type": "Checked", "inputs": {"lo": 0, "hi": 3, "pick": "x"}},
    "7": {"class_type": "ShowNumber", "inputs": {"x": ["6", 0], "label": "checked"}},
    "8": {"class_type": "ToInt", "inputs": {"x": ["3", 0]}},
    "9": {"class_type": "RandomDraw", "inputs": {"seed": ["8", 0]}},
    "10": {"class_type": "ShowNumber", "inputs": {"x": ["9", 0], "label": "r"}},
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
    st.sampled_from([0, 1, -1, 2 ** 63, 2 ** 64, 10 ** 30]), st.builds(lambda: 10 ** 5000),  # too long to repr
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["1", "2", "99", "MakeNumber", "Scale", "ShowNumber", "class_type", "inputs", "x", "seed"]),
)
json_ish = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.tuples(kids, kids),
                           st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(list(TEMPLATE)),
                                                     st.sampled_from(["class_type", "inputs", "_meta", "nodes",
                                                                      "links", "prompt"])), kids, max_size=4),
                           st.dictionaries(st.integers(-3, 12), kids, max_size=3)),
    max_leaves=16,
)
link_like = st.tuples(st.sampled_from(list(TEMPLATE) + ["0", "99", 1, None]),
                      st.sampled_from([0, 1, 2, -1, 2 ** 70, "0", None, True])).map(list)
value_like = st.one_of(json_ish, link_like)


def check(prompt, targets=None):
    """validate and run must return (never raise), with JSON-serialisable errors."""
    v = validate(prompt, REG, targets)
    assert isinstance(v, Validation)
    json.dumps(v.to_dict())
    r = ENGINE.run(prompt, targets)
    assert r.status in STATUSES, r
    if currently_in_test_context():
        event(f"status: {r.status}")
    if r.status == "invalid":
        json.dumps(r.errors)
        assert not v.ok
    return r


@FUZZ
@given(json_ish)
def test_random_structures_never_raise(prompt):
    check(prompt)


@FUZZ
@given(st.data())
def test_mutated_workflows_never_raise(data):
    prompt = copy.deepcopy(TEMPLATE)
    ids = list(prompt)
    for _ in range(data.draw(st.integers(1, 4))):
        nid = data.draw(st.sampled_from(ids))
        op = data.draw(st.sampled_from(["node", "class", "inputs", "drop_input", "value", "extra_input", "delete",
                                        "meta", "cycle", "fine", "fine", "fine"]))
        node = prompt.get(nid)
        if op == "fine":  # a plausible change that keeps the workflow valid (so that runs happen too)
            choice = data.draw(st.sampled_from([
                ("1", "seed", st.integers(0, 2 ** 64 - 1)), ("1", "scale", st.floats(0, 10)),
                ("2", "factor", st.floats(-100, 100)), ("5", "label", st.text(max_size=5)),
                ("6", "hi", st.integers(1, 10)), ("4", "anything", st.sampled_from([["1", 0], ["2", 0]]))]))
            target = prompt.get(choice[0])
            if isinstance(target, dict) and isinstance(target.get("inputs"), dict):
                target["inputs"][choice[1]] = data.draw(choice[2])
        elif op == "node":
            prompt[nid] = data.draw(json_ish)
        elif op == "class" and isinstance(node, dict):
            node["class_type"] = data.draw(st.one_of(st.sampled_from([c.name for c in SAFE]), json_ish))
        elif op == "inputs" and isinstance(node, dict):
            node["inputs"] = data.draw(json_ish)
        elif op == "drop_input" and isinstance(node, dict) and isinstance(node.get("inputs"), dict) \
                and node["inputs"]:
            node["inputs"].pop(data.draw(st.sampled_from(sorted(node["inputs"], key=str))))
        elif op in ("value", "extra_input") and isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            names = sorted(node["inputs"], key=str) if op == "value" and node["inputs"] else ["x", "seed", "zz"]
            node["inputs"][data.draw(st.sampled_from(names))] = data.draw(value_like)
        elif op == "delete":
            prompt.pop(nid, None)
        elif op == "meta" and isinstance(node, dict):
            node["_meta"] = data.draw(json_ish)
        elif op == "cycle" and isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            node["inputs"]["x"] = [data.draw(st.sampled_from(ids)), 0]
    kind = data.draw(st.integers(0, 9))  # mostly the default targets (all output nodes)
    targets = None if kind < 7 else data.draw(st.lists(st.sampled_from(ids + ["nope"]), max_size=3)) \
        if kind < 9 else data.draw(json_ish)
    check(prompt, targets)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({"nodes": st.lists(json_ish, max_size=5), "links": json_ish}, optional={
    "definitions": json_ish, "version": json_ish}))
def test_malformed_ui_workflows_never_raise(ui):
    for node in ui["nodes"]:
        if isinstance(node, dict):
            node.setdefault("type", "MakeNumber")
    check(ui)


def test_deep_and_huge_junk():
    deep = []
    for _ in range(50000):
        deep = [deep]
    deep_dict = {}
    for _ in range(50000):
        deep_dict = {"x": deep_dict}
    cases = [
        deep, deep_dict, {"1": deep}, {"1": {"class_type": "Passthrough", "inputs": {"anything": deep_dict}}},
        {"1": {"class_type": "ShowNumber", "inputs": {"x": deep, "label": deep_dict}}},
        {"1": {"class_type": "MakeNumber", "inputs": {"seed": 10 ** 5000, "scale": math.nan, "mode": deep}}},
        {"nodes": [deep, {"id": 1, "type": "Reroute", "inputs": deep}], "links": deep},
        {str(i): {"class_type": "Scale", "inputs": {"x": [str(i + 1), 0], "factor": 1}} for i in range(3000)},
    ]
    for prompt in cases:
        check(prompt)


# ------------------------------------------------------------------------- probe cases: paths and memory budgets
_SEGMENTS = st.sampled_from(["..", ".", "", "a.txt", "sub", "link", "out.txt", "/", "\\", "C:", "~", "%2e%2e",
                             "\x00", "a.txt/..", "/etc/passwd", "...", "sub/../.."])


def _confined_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("confined")
    (root / "in" / "sub").mkdir(parents=True)
    (root / "in" / "a.txt").write_text("inside")
    (root / "in" / "sub" / "a.txt").write_text("inside too")
    (root / "out.txt").write_text("OUTSIDE")
    (root / "in" / "link").symlink_to(root)
    (root / "in" / "out.txt").symlink_to(root / "out.txt")
    return root


def test_a_confined_policy_never_resolves_outside_its_folder(tmp_path_factory):
    import os

    from collage_engine import PathPolicy, PathRefusedError

    root = _confined_tree(tmp_path_factory)
    policy = PathPolicy({"input": [str(root / "in")]}, confined=True)
    inside = os.path.realpath(root / "in") + os.sep

    @FUZZ
    @given(st.lists(_SEGMENTS, min_size=1, max_size=6), st.sampled_from(["/", "\\"]))
    def check(parts, sep):
        name = sep.join(parts)
        try:
            path = policy.resolve(name, "input")
        except PathRefusedError as e:
            event("refused")
            assert str(root) not in str(e).replace(repr(name), "")
            return
        event("resolved")
        assert path == "" or os.path.realpath(path).startswith(inside), (name, path)

    check()


def test_budgeted_runs_of_random_workflows_never_raise():
    engine = Engine(REG, host_budget=1 << 20, max_memory=1 << 16)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(min_value=0, max_value=2 ** 16))
    def check(seed):
        wf = copy.deepcopy(TEMPLATE)
        wf["1"]["inputs"]["seed"] = seed
        r = engine.run(wf)
        assert r.status in STATUSES

    check()
