"""Validation: every error kind is reported, naming the node, its class_type and the input; all at once."""

import json
import math

import pytest

import engine_testnodes as tn
from collage_engine import Engine, ValidationError, format_errors, validate

REG = tn.make_registry()


def errors_of(prompt, targets=None):
    v = validate(prompt, REG, targets)
    assert not v.ok
    json.dumps(v.to_dict())  # always serialisable
    return v


def only_error(prompt, node_id, etype, input_name=None, class_type=None):
    v = errors_of(prompt)
    entry = v.node_errors[node_id]
    types = [e["type"] for e in entry["errors"]]
    assert etype in types, entry
    err = entry["errors"][types.index(etype)]
    if input_name is not None:
        assert err["extra_info"]["input_name"] == input_name
    if class_type is not None:
        assert entry["class_type"] == class_type
    assert set(err) == {"type", "message", "details", "extra_info"}
    assert v.error["type"] == "prompt_outputs_failed_validation"
    return err


def wf(**changes):
    """A valid 3-node chain with some inputs of node "2" (Scale) replaced."""
    api = tn.chain_workflow(1)
    api["2"]["inputs"].update(changes)
    return api


def test_valid_workflow_passes_and_orders_topologically():
    api = tn.chain_workflow(12)
    v = validate(api, REG)
    assert v.ok and v.to_dict() == {"error": None, "node_errors": {}}
    assert v.order == [str(i) for i in range(1, 15)]  # numeric, not lexicographic ("10" after "9")
    assert v.targets == ["14"]


def test_invalid_prompt_shapes():
    for junk in (None, [], "x", 3, [{"class_type": "Scale"}]):
        v = validate(junk, REG)
        assert v.error["type"] == "invalid_prompt"
    v = validate({}, REG)
    assert v.error["type"] == "prompt_no_outputs"


def test_unknown_node_type():
    api = tn.chain_workflow(1)
    api["2"]["class_type"] = "NoSuchNode"
    only_error(api, "2", "missing_node_type", class_type="NoSuchNode")


def test_node_not_an_object_and_missing_class_type_and_bad_inputs():
    api = tn.chain_workflow(1)
    api["7"] = ["Scale"]
    api["8"] = {"inputs": {}}
    api["9"] = {"class_type": "Scale", "inputs": [1, 2]}
    api[10] = {"class_type": "Scale", "inputs": {}}
    v = errors_of(api)
    assert v.node_errors["7"]["errors"][0]["type"] == "invalid_node"
    assert v.node_errors["8"]["errors"][0]["type"] == "invalid_node"
    assert v.node_errors["9"]["errors"][0]["type"] == "invalid_inputs"
    assert v.node_errors["10"]["errors"][0]["type"] == "invalid_node_id"


def test_missing_required_input():
    api = tn.chain_workflow(1)
    del api["2"]["inputs"]["factor"]
    only_error(api, "2", "required_input_missing", "factor", "Scale")


def test_unknown_input():
    err = only_error(wf(facto=2.0), "2", "unknown_input", "facto", "Scale")
    assert err["message"] == "unknown input 'facto' (did you mean 'factor'?)"
    far = only_error(wf(zzzz=2.0), "2", "unknown_input", "zzzz", "Scale")
    assert "did you mean" not in far["message"] and "factor" in far["details"]


def test_unknown_node_type_suggests_the_closest_registered_names():
    api = tn.chain_workflow(1)
    api["2"]["class_type"] = "scal"
    err = only_error(api, "2", "missing_node_type", class_type="scal")
    assert err["message"] == "Node type 'scal' not found (did you mean 'Scale'?)"


def test_a_misspelled_inputs_key_is_named_once():
    """``inptus`` instead of ``inputs``: one error naming the key that is there, not "missing" for every input."""
    api = tn.chain_workflow(1)
    api["2"]["inptus"] = api["2"].pop("inputs")
    v = errors_of(api)
    (err,) = v.node_errors["2"]["errors"]
    assert err["type"] == "unknown_node_key"
    assert err["message"] == "unknown key 'inptus' in the node (did you mean 'inputs'?)"
    assert "3" not in v.node_errors  # its consumer is not blamed for it
    # annotations (_meta, _anything) are no mistake; a stray key beside a good `inputs` is, but inputs still count
    api = tn.chain_workflow(1)
    api["2"]["_meta"], api["2"]["_note"], api["2"]["colour"] = {"title": "x"}, 1, "red"
    del api["2"]["inputs"]["factor"]
    v = errors_of(api)
    assert [e["type"] for e in v.node_errors["2"]["errors"]] == ["unknown_node_key", "required_input_missing"]


@pytest.mark.parametrize("link,etype", [
    (["1"], "bad_linked_input"), (["1", 0, 0], "bad_linked_input"), ([None, 0], "bad_linked_input"),
    (["1", "0"], "bad_linked_input"), (["1", -1], "bad_linked_input"), (["1", True], "bad_linked_input"),
    (["1", 1.0], "bad_linked_input"), (["99", 0], "link_source_missing"), (["1", 1], "link_output_out_of_range"),
])
def test_bad_links(link, etype):
    only_error(wf(x=link), "2", etype, "x", "Scale")


def test_int_source_ids_are_accepted():
    assert validate(wf(x=[1, 0]), REG).ok


def test_type_mismatch_on_link():
    api = tn.chain_workflow(1)
    api["5"] = {"class_type": "ToInt", "inputs": {"x": ["1", 0]}}
    api["2"]["inputs"]["x"] = ["5", 0]  # INT into a NUMBER input
    err = only_error(api, "2", "return_type_mismatch", "x", "Scale")
    assert "INT" in err["details"] and "NUMBER" in err["details"]


def test_wildcard_matches_anything_and_widget_links():
    api = tn.chain_workflow(1)
    api["5"] = {"class_type": "Passthrough", "inputs": {"anything": ["1", 0]}}
    api["6"] = {"class_type": "ToInt", "inputs": {"x": ["5", 0]}}
    api["7"] = {"class_type": "MakeNumber", "inputs": {"seed": ["6", 0], "scale": 1, "mode": "mul"}}  # INT link
    api["8"] = {"class_type": "ShowNumber", "inputs": {"x": ["7", 0], "label": "y"}}
    assert validate(api, REG).ok
    api["7"]["inputs"]["scale"] = ["6", 0]  # INT into FLOAT: ComfyUI does not convert
    only_error(api, "7", "return_type_mismatch", "scale", "MakeNumber")


@pytest.mark.parametrize("field,value,etype", [
    ("seed", "1", "invalid_input_type"), ("seed", 1.5, "invalid_input_type"), ("seed", True, "invalid_input_type"),
    ("seed", None, "invalid_input_type"), ("seed", -1, "value_smaller_than_min"),
    ("seed", 2 ** 64, "value_bigger_than_max"), ("seed", 10 ** 5000, "value_bigger_than_max"),
    ("scale", "x", "invalid_input_type"), ("scale", 10.5, "value_bigger_than_max"),
    ("scale", -0.1, "value_smaller_than_min"), ("scale", math.nan, "value_not_finite"),
    ("scale", math.inf, "value_not_finite"), ("scale", 10 ** 400, "value_not_finite"),
    ("mode", "div", "value_not_in_list"), ("mode", ["add"], "bad_linked_input"), ("mode", {}, "value_not_in_list"),
], ids=lambda p: p if isinstance(p, str) else type(p).__name__)
def test_constant_values(field, value, etype):
    api = tn.chain_workflow(1)
    api["1"]["inputs"][field] = value
    only_error(api, "1", etype, field, "MakeNumber")


def test_string_and_boolean_types():
    api = tn.chain_workflow(1)
    api["3"]["inputs"]["label"] = 5
    api["3"]["inputs"]["verbose"] = "yes"
    v = errors_of(api)
    got = {(e["extra_info"]["input_name"], e["type"]) for e in v.node_errors["3"]["errors"]}
    assert got == {("label", "invalid_input_type"), ("verbose", "invalid_input_type")}


def test_custom_type_needs_a_link():
    only_error(wf(x=3.0), "2", "link_required", "x", "Scale")


def test_int_given_to_float_is_accepted_and_normalised():
    v = validate(wf(factor=3), REG)
    assert v.ok and v.nodes["2"].consts["factor"] == 3.0 and isinstance(v.nodes["2"].consts["factor"], float)


def test_custom_validate_hook_and_callable_choices():
    api = {"1": {"class_type": "Checked", "inputs": {"lo": 5, "hi": 1, "pick": "y"}},
           "2": {"class_type": "ShowNumber", "inputs": {"x": ["1", 0], "label": ""}}}
    err = only_error(api, "1", "custom_validation_failed", class_type="Checked")
    assert "lo (5)" in err["message"]
    api["1"]["inputs"].update(lo=0, pick="z")
    only_error(api, "1", "value_not_in_list", "pick")


def test_cycles_are_reported_on_every_node_of_the_cycle():
    api = tn.chain_workflow(3)
    api["2"]["inputs"]["x"] = ["4", 0]  # 2 -> 3 -> 4 -> 2
    v = errors_of(api)
    for nid in ("2", "3", "4"):
        assert [e["type"] for e in v.node_errors[nid]["errors"]] == ["dependency_cycle"]
        assert v.node_errors[nid]["errors"][0]["extra_info"]["input_name"] == "x"
    assert v.node_errors["2"]["dependent_outputs"] == ["5"]
    api = tn.chain_workflow(1)
    api["2"]["inputs"]["x"] = ["2", 0]  # self-loop
    only_error(api, "2", "dependency_cycle", "x")


def test_no_output_node():
    api = tn.chain_workflow(1)
    del api["3"]
    v = validate(api, REG)
    assert v.error["type"] == "prompt_no_outputs" and not v.node_errors
    assert validate(api, REG, targets=["2"]).ok  # an explicit target is enough
    assert validate(api, REG, targets=["nope"]).error["type"] == "invalid_target"


def test_all_errors_reported_at_once_with_dependent_outputs():
    api = tn.chain_workflow(2)
    api["1"]["inputs"]["scale"] = 99
    api["2"]["inputs"]["factor"] = "x"
    api["3"]["inputs"]["bogus"] = 1
    api["4"]["inputs"]["label"] = None
    api["9"] = {"class_type": "Missing"}
    v = errors_of(api)
    assert set(v.node_errors) == {"1", "2", "3", "4", "9"}
    assert v.node_errors["1"]["dependent_outputs"] == ["4"]
    text = format_errors(v.to_dict())
    assert "node 2 (Scale), input 'factor'" in text and "node 9 (Missing)" in text
    with pytest.raises(ValidationError):
        v.raise_for_errors()


def test_engine_run_returns_validation_errors_without_running():
    tn.CALLS.clear()
    api = tn.chain_workflow(1)
    api["2"]["inputs"]["factor"] = 1000
    r = Engine(REG).run(api)
    assert r.status == "invalid" and not tn.CALLS
    assert r.errors["node_errors"]["2"]["errors"][0]["type"] == "value_bigger_than_max"


def test_validate_hook_results_read_the_same_everywhere():
    from collage_engine import validation_messages

    assert validation_messages(None) == validation_messages(True) == validation_messages([]) == []
    assert validation_messages(False) == [(None, "custom validation failed")]
    assert validation_messages("bad") == [(None, "bad")]
    assert validation_messages(("model", "not found")) == [("model", "not found")]  # one pair, not two messages
    assert validation_messages([("a", "x"), "y"]) == [("a", "x"), (None, "y")]
