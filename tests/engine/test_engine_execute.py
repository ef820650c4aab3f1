"""Execution: ancestors only, recursive cache keys, fingerprints, errors, interruption, events."""

import os
import threading
import time

import pytest

import engine_testnodes as tn
from collage_engine import Engine, ExecutionFailed, Graph, Interrupted, Node, NodeRegistry, Output, TqdmReporter

REG = tn.make_registry()


def test_chain_runs_and_returns_outputs():
    r = Engine(REG).run(tn.chain_workflow(3, seed=1))
    assert r.ok and r.status == "success"
    assert r.ui == {"5": {"value": [16.0], "label": ["out"]}}  # (1 + 1) * 2 ** 3
    assert r.executed == ["1", "2", "3", "4", "5"] and r.cached == []
    assert r.outputs == {"5": ()}


def test_only_outputs_and_their_ancestors_run():
    api = tn.chain_workflow(2)
    api["10"] = {"class_type": "MakeNumber", "inputs": {"seed": 3, "scale": 1, "mode": "add"}}  # dangling
    api["11"] = {"class_type": "Scale", "inputs": {"x": ["10", 0], "factor": 1}}
    r = Engine(REG).run(api)
    assert r.ok and "10" not in tn.CALLS and "11" not in tn.CALLS
    r = Engine(REG).run(api, targets=["11"])  # explicit target: only it and its ancestors
    assert r.executed == ["10", "11"] and r["11"] == (4.0,)


def test_identical_rerun_is_cached():
    eng = Engine(REG)
    api = tn.chain_workflow(3)
    eng.run(api)
    tn.CALLS.clear()
    r = eng.run(api)
    assert r.ok and r.executed == [] and not tn.CALLS
    assert r.cached == ["1", "2", "3", "4", "5"]
    assert r.ui["5"]["value"] == [16.0]  # output nodes resend their ui, like ComfyUI


def test_changed_input_reruns_exactly_its_descendants():
    eng = Engine(REG)
    api = tn.chain_workflow(4)
    eng.run(api)
    tn.CALLS.clear()
    api["3"]["inputs"]["factor"] = 3.0
    r = eng.run(api)
    assert dict(tn.CALLS) == {"3": 1, "4": 1, "5": 1, "6": 1}
    assert r.cached == ["1", "2"] and r.executed == ["3", "4", "5", "6"]
    tn.CALLS.clear()
    api["6"]["inputs"]["label"] = "renamed"  # a leaf widget: only the leaf re-runs
    eng.run(api)
    assert dict(tn.CALLS) == {"6": 1}
    tn.CALLS.clear()
    api["3"]["inputs"]["factor"] = 2.0  # back to the first value: still cached from the first run
    eng.run(api)
    assert dict(tn.CALLS) == {"6": 1}


def test_branches_rerun_independently():
    api = {"1": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1, "mode": "add"}},
           "2": {"class_type": "Scale", "inputs": {"x": ["1", 0], "factor": 2}},
           "3": {"class_type": "Scale", "inputs": {"x": ["1", 0], "factor": 3}},
           "4": {"class_type": "AddNumbers", "inputs": {"a": ["2", 0], "b": ["3", 0]}},
           "5": {"class_type": "ShowNumber", "inputs": {"x": ["4", 0], "label": "a"}},
           "6": {"class_type": "ShowNumber", "inputs": {"x": ["3", 0], "label": "b"}}}
    eng = Engine(REG)
    assert eng.run(api).ui["5"]["value"] == [10.0]
    tn.CALLS.clear()
    api["2"]["inputs"]["factor"] = 5
    r = eng.run(api)
    assert dict(tn.CALLS) == {"2": 1, "4": 1, "5": 1} and r.ui["5"]["value"] == [16.0]


def test_identical_nodes_in_one_run_compute_once():
    api = {"1": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1, "mode": "add"}},
           "2": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1, "mode": "add"}},
           "3": {"class_type": "AddNumbers", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
           "4": {"class_type": "ShowNumber", "inputs": {"x": ["3", 0], "label": ""}}}
    r = Engine(REG).run(api)
    assert r.ok and tn.CALLS["1"] + tn.CALLS["2"] == 1 and r.ui["4"]["value"] == [4.0]


def test_changed_file_reruns_its_loader(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    api = {"1": {"class_type": "LoadText", "inputs": {"path": str(path)}},
           "2": {"class_type": "TextLength", "inputs": {"text": ["1", 0]}}}
    eng = Engine(REG)
    assert eng.run(api)["2"] == (5,)
    assert eng.run(api).executed == []
    path.write_text("hello world")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # coarse clocks: make the change visible
    r = eng.run(api)
    assert r.executed == ["1", "2"] and r["2"] == (11,)


def test_custom_fingerprint_and_nan_forces_rerun():
    state = {"fp": 1}

    class Fp(Node):
        name = "FpNode"
        output_node = True
        outputs = [Output("n", "INT")]

        def fingerprint(self, **_):
            return state["fp"]

        def run(self, ctx):
            tn.CALLS[ctx.node_id] += 1
            return (1,)

    reg = NodeRegistry([Fp])
    eng = Engine(reg)
    api = {"1": {"class_type": "FpNode", "inputs": {}}}
    eng.run(api), eng.run(api)
    assert tn.CALLS["1"] == 1
    state["fp"] = 2
    eng.run(api)
    assert tn.CALLS["1"] == 2
    state["fp"] = float("nan")
    eng.run(api), eng.run(api)
    assert tn.CALLS["1"] == 4


def test_always_run_node_and_its_descendants_rerun():
    api = {"1": {"class_type": "Random", "inputs": {}},
           "2": {"class_type": "Scale", "inputs": {"x": ["1", 0], "factor": 1}},
           "3": {"class_type": "ShowNumber", "inputs": {"x": ["2", 0], "label": ""}},
           "4": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1, "mode": "add"}},
           "5": {"class_type": "ShowNumber", "inputs": {"x": ["4", 0], "label": ""}}}
    eng = Engine(REG)
    eng.run(api)
    r = eng.run(api)
    assert r.executed == ["1", "2", "3"] and r.cached == ["4", "5"]
    assert r.ui["3"]["value"] == [2.0]


def test_node_exception_is_reported_and_cache_survives():
    api = tn.chain_workflow(2)
    api["4"]["inputs"]["x"] = ["5", 0]
    api["5"] = {"class_type": "Fail", "inputs": {"x": ["3", 0]}}
    eng = Engine(REG)
    events = []
    eng.add_listener(lambda e, d: events.append((e, d)))
    r = eng.run(api)
    assert r.status == "error" and not r.ok
    assert r.error["node_id"] == "5" and r.error["node_type"] == "Fail"
    assert r.error["exception_type"] == "ZeroDivisionError" and "boom in Fail" in r.error["exception_message"]
    assert r.executed == ["1", "2", "3"]  # nodes that completed
    err = [d for e, d in events if e == "execution_error"][0]
    assert err["node_id"] == "5" and err["node_type"] == "Fail" and "boom" in err["exception_message"]
    with pytest.raises(ExecutionFailed, match=r"node 5 \(Fail\).*boom"):
        r.raise_for_status()
    tn.CALLS.clear()
    api["5"] = {"class_type": "Scale", "inputs": {"x": ["3", 0], "factor": 1}}  # fix the graph
    r = eng.run(api)
    assert r.ok and r.cached == ["1", "2", "3"] and dict(tn.CALLS) == {"5": 1, "4": 1}


def test_bad_return_value_is_a_node_error():
    class Bad(Node):
        output_node = True
        outputs = [Output("a", "INT"), Output("b", "INT")]

        def run(self, ctx):
            return 1

    r = Engine(NodeRegistry([Bad])).run({"1": {"class_type": "Bad", "inputs": {}}})
    assert r.status == "error" and r.error["node_type"] == "Bad" and "tuple of 2" in r.error["exception_message"]


def test_interrupt_stops_the_running_node_cleanly():
    api = tn.chain_workflow(1)
    api["2"] = {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": 100000}}
    eng = Engine(REG)
    events = []
    eng.add_listener(lambda e, d: events.append(e))
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", eng.run(api)))
    th.start()
    assert tn.STARTED.wait(10)
    t0 = time.perf_counter()
    eng.interrupt()
    th.join(10)
    assert not th.is_alive() and time.perf_counter() - t0 < 2
    r = out["r"]
    assert r.status == "interrupted" and r.error["node_id"] == "2" and "3" not in tn.CALLS
    assert "execution_interrupted" in events and "progress" in events
    with pytest.raises(Interrupted):
        r.raise_for_status()
    # the node before the interruption stays cached; the next run is not cancelled by the old interrupt
    api["2"]["inputs"]["steps"] = 3
    r = eng.run(api)
    assert r.ok and r.cached == ["1"]


def test_events_follow_comfyui_names_and_order():
    eng = Engine(REG)
    events = []
    eng.add_listener(lambda e, d: events.append((e, d.get("node"))))
    api = tn.chain_workflow(1)
    api["2"] = {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": 2}}
    api["3"]["inputs"]["x"] = ["2", 0]
    eng.run(api)
    names = [e for e, _ in events]
    assert names == ["execution_start", "execution_cached", "executing", "executing", "progress", "progress",
                     "executing", "executed", "execution_success", "executing"]
    assert [n for e, n in events if e == "executing"] == ["1", "2", "3", None]


def test_listener_errors_do_not_break_runs():
    eng = Engine(REG, listeners=[lambda e, d: 1 / 0])
    assert eng.run(tn.chain_workflow(1)).ok


def test_tqdm_reporter_runs(capsys):
    import io
    buf = io.StringIO()
    api = tn.chain_workflow(1)
    api["2"] = {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": 5}}
    eng = Engine(REG, listeners=[TqdmReporter(file=buf, leave=True)])
    assert eng.run(api).ok
    assert "workflow" in buf.getvalue() and "3/3" in buf.getvalue()


def test_seeded_generator_is_deterministic():
    pytest.importorskip("torch")  # ctx.generator() hands out torch generators; the engine itself needs no torch
    g = Graph(REG)
    a = g.node("RandomDraw", seed=7)
    b = g.node("RandomDraw", seed=8)
    r1 = Engine(REG).run(g, targets=[a, b])
    r2 = Engine(REG).run(g, targets=[a, b])
    assert r1[a] == r2[a] and r1[a] != r1[b]
    g2 = Graph(REG)
    big = g2.node("RandomDraw", seed=2 ** 64 - 1)
    assert Engine(REG).run(g2, targets=[big]).ok


def test_graph_builder_matches_json():
    g = Graph(REG)
    a = g.node("MakeNumber", seed=1)
    s = g.node("Scale", x=a.out("number"), factor=2.0)
    g.add("ShowNumber", {"x": s[0], "label": "out"}, id="9", title="show")
    api = g.to_api()
    assert api == {"1": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1.0, "mode": "add"}},
                   "2": {"class_type": "Scale", "inputs": {"x": ["1", 0], "factor": 2.0}},
                   "9": {"class_type": "ShowNumber", "inputs": {"x": ["2", 0], "label": "out", "verbose": False},
                         "_meta": {"title": "show"}}}
    eng = Engine(REG)
    assert eng.run(g).ui["9"]["value"] == [4.0]
    s.set(factor=3.0)
    tn.CALLS.clear()
    assert eng.run(g).ui["9"]["value"] == [6.0] and dict(tn.CALLS) == {"2": 1, "9": 1}
    with pytest.raises(KeyError):
        g.node("Scale", nope=1)
    with pytest.raises(KeyError):
        g.node("NoSuchType")
