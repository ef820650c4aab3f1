"""Workflow formats: UI -> API conversion (reroutes, primitives, control values, muted/bypassed nodes), the
reverse conversion, loading files, and the declaration-derived listings."""

import json
from pathlib import Path

import pytest

import engine_testnodes as tn
from collage_engine import (
    DeclarationError,
    Engine,
    Graph,
    Input,
    Int,
    Node,
    NodeRegistry,
    Output,
    api_to_ui,
    is_ui_format,
    load_workflow,
    ui_to_api,
)
from collage_engine.workflow import WorkflowError

REG = tn.make_registry()
FIXTURES = Path(__file__).parents[1] / "fixtures"
UI_PATH, API_PATH = FIXTURES / "engine_workflow_ui.json", FIXTURES / "engine_workflow_api.json"


def test_ui_and_api_fixtures_convert_to_the_same_prompt():
    api, meta = load_workflow(UI_PATH, REG)
    expected, meta_api = load_workflow(API_PATH, REG)
    assert meta["format"] == "ui" and meta_api["format"] == "api" and meta["warnings"] == []
    assert api == expected  # titles included
    assert meta["titles"]["7"] == "Result"


def test_ui_and_api_fixtures_give_the_same_result():
    r_ui = Engine(REG).run(str(UI_PATH))
    r_api = Engine(REG).run(json.loads(API_PATH.read_text()))
    assert r_ui.ok and r_api.ok
    assert r_ui.ui == r_api.ui == {"7": {"value": [137.0], "label": ["result"]},
                                   "13": {"value": [5.5], "label": ["bypassed"]}}


def test_control_values_and_unused_widgets():
    ui = json.loads(UI_PATH.read_text())
    node3 = next(n for n in ui["nodes"] if n["id"] == 3)
    node3["widgets_values"] = [42, 1.5, "mul"]  # older files have no control value
    assert ui_to_api(ui, REG)["3"]["inputs"] == {"seed": 42, "scale": 1.5, "mode": "mul"}
    node3["widgets_values"] = [42, "increment", 1.5, "mul", "stray"]
    warnings = []
    assert ui_to_api(ui, REG, warnings)["3"]["inputs"] == {"seed": 42, "scale": 1.5, "mode": "mul"}
    assert warnings == ["MakeNumber: 1 unused widget value(s)"]
    node3["widgets_values"] = {"seed": 7, "scale": 2.0, "mode": "add"}  # by-name widgets
    assert ui_to_api(ui, REG)["3"]["inputs"] == {"seed": 7, "scale": 2.0, "mode": "add"}


def test_reroute_chains_and_loops_are_followed_safely():
    ui = json.loads(UI_PATH.read_text())
    # insert a second reroute between 11 and 5, and a reroute loop feeding nothing useful
    ui["nodes"].append({"id": 20, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 4}],
                        "outputs": [{"name": "", "type": "NUMBER", "links": [30]}]})
    ui["links"] = [l for l in ui["links"] if l[0] != 4] + [[4, 11, 0, 20, 0, "NUMBER"], [30, 20, 0, 5, 0, "NUMBER"]]
    next(n for n in ui["nodes"] if n["id"] == 5)["inputs"][0]["link"] = 30
    ui["nodes"] += [{"id": 21, "type": "Reroute", "inputs": [{"name": "", "link": 31}], "outputs": []},
                    {"id": 22, "type": "Reroute", "inputs": [{"name": "", "link": 32}], "outputs": []},
                    {"id": 23, "type": "ShowNumber", "inputs": [{"name": "x", "type": "NUMBER", "link": 33}],
                     "widgets_values": ["loop", False]}]
    ui["links"] += [[31, 22, 0, 21, 0, "*"], [32, 21, 0, 22, 0, "*"], [33, 21, 0, 23, 0, "*"]]
    api = ui_to_api(ui, REG)
    assert api["5"]["inputs"]["a"] == ["3", 0]
    assert "x" not in api["23"]["inputs"]  # the loop leads nowhere: the input is missing, validation says so
    v = Engine(REG).validate(api)
    assert v.node_errors["23"]["errors"][0]["type"] == "required_input_missing"


def test_api_to_ui_round_trip_and_layout():
    api = json.loads(API_PATH.read_text())
    ui = api_to_ui(api, REG)
    assert is_ui_format(ui) and ui["version"] == 0.4
    json.dumps(ui)
    back = ui_to_api(ui, REG)
    assert back == api
    pos = {n["id"]: n["pos"] for n in ui["nodes"]}
    assert pos[3][0] < pos[5][0] < pos[6][0] < pos[7][0]  # left to right by depth
    assert pos[3][0] == pos[4][0] and pos[3][1] != pos[4][1]
    node3 = next(n for n in ui["nodes"] if n["id"] == 3)
    assert node3["widgets_values"] == [42, "fixed", 1.5, "mul"]
    assert ui["last_link_id"] == len(ui["links"]) == 5


def test_api_to_ui_without_schemas_and_with_odd_ids():
    api = {"a": {"class_type": "Unknown", "inputs": {"k": 1}},
           "b": {"class_type": "Unknown", "inputs": {"x": ["a", 0]}}}
    ui = api_to_ui(api)
    assert [n["id"] for n in ui["nodes"]] == [1, 2] and ui["links"] == [[1, 1, 0, 2, 0, "*"]]
    json.dumps(ui)


def test_graph_round_trips_through_ui():
    g = Graph(REG)
    a = g.node("MakeNumber", seed=3)
    g.node("ShowNumber", x=g.node("Scale", x=a, factor=-1.0), label="neg")
    api = g.to_api()
    assert ui_to_api(api_to_ui(api, REG), REG) == {
        k: {**v, "_meta": {"title": REG.get(v["class_type"]).display_name}} for k, v in api.items()}


def test_load_workflow_errors(tmp_path):
    with pytest.raises(WorkflowError):
        load_workflow(tmp_path / "missing.json", REG)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WorkflowError):
        load_workflow(bad, REG)
    r = Engine(REG).run(str(bad))
    assert r.status == "invalid" and r.errors["error"]["type"] == "invalid_prompt"
    api, meta = load_workflow('{"prompt": {"1": {"class_type": "Random", "inputs": {}}}, "client_id": "x"}', REG)
    assert api == {"1": {"class_type": "Random", "inputs": {}}}


def test_object_info_shape():
    info = REG.object_info()["MakeNumber"]
    assert info["input"]["required"]["seed"] == ["INT", {"default": 0, "min": 0, "max": 2 ** 64 - 1,
                                                          "tooltip": "any seed", "control_after_generate": True}]
    assert info["input"]["required"]["mode"] == [["add", "mul"], {"default": "add"}]
    assert info["input_order"] == {"required": ["seed", "scale", "mode"], "optional": []}
    assert info["output"] == ["NUMBER"] and info["output_name"] == ["number"] and info["output_is_list"] == [False]
    assert info["name"] == "MakeNumber" and info["display_name"] == "Make Number"
    assert info["description"] == "A number from a seed, scaled." and info["category"] == "test"
    assert info["output_node"] is False
    show = REG.object_info()["ShowNumber"]
    assert show["output_node"] is True and show["input"]["optional"] == {"verbose": ["BOOLEAN", {"default": False}]}
    assert REG.object_info()["Checked"]["input"]["required"]["pick"][0] == ["x", "y"]  # callable choices
    json.dumps(REG.object_info())


def test_markdown_docs():
    md = REG.markdown()
    assert "### Make Number (`MakeNumber`)" in md and "| seed | INT | `0` | 0 … 18446744073709551615" in md
    assert "one of `add`, `mul`" in md and "output node" in md and "file path" in md


def test_declaration_errors():
    with pytest.raises(DeclarationError, match="UPPERCASE"):
        class BadType(Node):
            inputs = [Input("x", "number")]
    with pytest.raises(DeclarationError, match="unique"):
        class Dup(Node):
            inputs = [Int("x"), Int("x")]
    with pytest.raises(DeclarationError, match="default"):
        class BadDefault(Node):
            inputs = [Int("x", 5, max=3)]
    with pytest.raises(DeclarationError, match="COMBO needs choices"):
        class NoChoices(Node):
            inputs = [Input("x", "COMBO")]

    class NoRun(Node):
        outputs = [Output("x", "INT")]

    reg = NodeRegistry()
    with pytest.raises(DeclarationError, match="run"):
        reg.register(NoRun)

    class A(Node):
        name = "Same"

        def run(self, ctx):
            return ()

    class B(A):
        name = "Same"

    reg.register(A)
    reg.register(A)  # idempotent
    with pytest.raises(DeclarationError, match="already registered"):
        reg.register(B)


def test_add_module_registers_node_classes():
    reg = NodeRegistry()
    found = reg.add_module(tn)
    assert {c.name for c in found} == {c.name for c in tn.NODES} and len(reg) == len(tn.NODES)
