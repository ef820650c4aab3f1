"""The memory budget: workflows whose estimated results pass it are refused before running (a node error naming
the node); nodes that go past it while running fail cleanly (the engine keeps working); nothing is lost."""

import numpy as np
import pytest

from collage_engine import Engine, Estimate, Input, Int, Node, NodeOutput, NodeRegistry, Output, format_bytes
from collage_engine.memory import plan_memory

MiB = 1 << 20


class Zeros(Node):
    """n MiB of zeros; says so before running."""
    inputs = [Int("mib", 1, min=0, max=1 << 20)]
    outputs = [Output("array", "ARRAY")]

    def estimate(self, mib):
        return (Estimate((mib * MiB,), 1),)

    def run(self, ctx, mib):
        return (np.zeros(mib * MiB, np.uint8),)


class Double(Node):
    """Two copies joined; estimates from its input."""
    inputs = [Input("array", "ARRAY")]
    outputs = [Output("array", "ARRAY")]

    def estimate(self, array=None):
        return None if array is None else (Estimate((2 * array.shape[0],), array.itemsize),)

    def run(self, ctx, array):
        ctx.reserve(2 * array.nbytes, "the doubled array")
        return (np.concatenate([array, array]),)


class Secret(Node):
    """Doubles without telling anyone (no estimate, no reserve): only the engine's measurement catches it."""
    inputs = [Input("array", "ARRAY")]
    outputs = [Output("array", "ARRAY")]

    def run(self, ctx, array):
        return (np.concatenate([array, array]),)


class ShownDouble(Double):
    """Doubles and is an output node too (like Paint Class Map): the executor keeps its result to the end."""
    output_node = True

    def run(self, ctx, array):
        return NodeOutput(np.concatenate([array, array]), ui={"bytes": [int(2 * array.nbytes)]})


class Size(Node):
    output_node = True
    inputs = [Input("array", "ARRAY")]

    def run(self, ctx, array):
        return NodeOutput(ui={"bytes": [int(array.nbytes)]})


REG = NodeRegistry()
for cls in (Zeros, Double, Secret, ShownDouble, Size):
    REG.register(cls)


def bomb(doublings: int, node: str = "Double", mib: int = 1) -> dict:
    wf = {"1": {"class_type": "Zeros", "inputs": {"mib": mib}}}
    for i in range(doublings):
        wf[str(i + 2)] = {"class_type": node, "inputs": {"array": [str(i + 1), 0]}}
    wf["99"] = {"class_type": "Size", "inputs": {"array": [str(doublings + 1), 0]}}
    return wf


def test_the_plan_refuses_a_doubling_bomb_and_names_the_node():
    engine = Engine(REG, max_memory=64 * MiB)
    v = engine.validate(bomb(20))
    assert not v.ok and list(v.node_errors) == ["7"]  # 32 MiB + its 64 MiB output: the first past 64 MiB
    err = v.node_errors["7"]["errors"][0]
    assert err["type"] == "memory_budget_exceeded" and "64.0 MiB" in err["message"]
    assert err["extra_info"]["max_memory"] == 64 * MiB and err["extra_info"]["output_bytes"] == 64 * MiB
    r = engine.run(bomb(20))
    assert r.status == "invalid" and r.executed == []  # nothing ran
    assert engine.run(bomb(3)).ui["99"] == {"bytes": [8 * MiB]}  # and the engine still works


def test_the_plan_frees_results_after_their_last_consumer():
    # a chain holds at most two results at once: 16 + 32 MiB fits 48 MiB although the chain made 63 MiB in all
    assert Engine(REG, max_memory=48 * MiB).validate(bomb(5)).ok
    assert not Engine(REG, max_memory=47 * MiB).validate(bomb(5)).ok


def test_the_plan_keeps_output_nodes_results_to_the_end():
    """An output node's result is held until the run ends (the executor keeps targets): 8 + 16 (shown) + 32 + 64 MiB
    holds 16 + 32 + 64 = 112 MiB when the last doubling finishes, not 96."""
    wf = bomb(3, mib=8)
    wf["2"]["class_type"] = "ShownDouble"
    assert not Engine(REG, max_memory=111 * MiB).validate(wf).ok
    assert Engine(REG, max_memory=112 * MiB).validate(wf).ok
    assert Engine(REG, max_memory=113 * MiB).run(wf).ok  # the run holds that much (plus a few bytes it measures)
    assert Engine(REG, max_memory=100 * MiB).run(wf).status == "invalid"  # refused before, not failed while running


def test_no_budget_no_check():
    assert Engine(REG).validate(bomb(40)).ok  # never run: 1 TiB


def test_a_node_that_reserves_too_much_fails_cleanly():
    engine = Engine(REG, max_memory=64 * MiB)
    wf = bomb(20)
    wf["1"]["class_type"] = "Secret"  # makes the plan blind: no estimates downstream
    wf["1"]["inputs"] = {"array": ["0", 0]}
    wf["0"] = {"class_type": "Zeros", "inputs": {"mib": 1}}  # 1 MiB, then 2 after Secret: node 6 makes 64 MiB
    v = engine.validate(wf)
    assert v.ok, v.node_errors
    r = engine.run(wf)
    assert r.status == "error" and r.error["exception_type"] == "MemoryBudgetError"
    assert r.error["node_id"] == "6" and "the doubled array would take 64.0 MiB" in r.error["exception_message"]
    assert engine.cache.host_bytes <= 64 * MiB
    assert engine.run(bomb(2)).ok


def test_a_node_that_outgrows_the_budget_silently_fails_after_it_ran():
    engine = Engine(REG, max_memory=64 * MiB)
    r = engine.run(bomb(20, node="Secret"))
    assert r.status == "error" and r.error["exception_type"] == "MemoryBudgetError"
    assert r.error["node_id"] == "7" and format_bytes(64 * MiB) in r.error["exception_message"]
    assert all(e.host_bytes < 64 * MiB for e in engine.cache._entries.values())  # the culprit is not cached
    assert engine.run(bomb(2, node="Secret")).ok


def test_results_larger_than_the_cache_budget_are_not_kept():
    engine = Engine(REG, host_budget=4 * MiB)
    r = engine.run(bomb(3))  # 1, 2, 4, 8 MiB
    assert r.ok and engine.cache.host_bytes <= 4 * MiB
    assert all(e.host_bytes <= 4 * MiB for e in engine.cache._entries.values())


@pytest.mark.parametrize("broken", [ValueError("no"), "not a tuple"])
def test_a_broken_estimate_is_ignored(broken):
    class Broken(Zeros):
        name = "Broken"

        def estimate(self, mib):
            if isinstance(broken, Exception):
                raise broken
            return broken

    reg = NodeRegistry()
    for cls in (Broken, Size):
        reg.register(cls)
    wf = {"1": {"class_type": "Broken", "inputs": {"mib": 1}},
          "2": {"class_type": "Size", "inputs": {"array": ["1", 0]}}}
    v = Engine(reg, max_memory=MiB).validate(wf)
    assert v.ok
    assert plan_memory(v.order, v.nodes, lambda c: c(), MiB) is None


# ------------------------------------------------------------------------------------ limits that know the machine
def _fake_cgroups(tmp_path, v1_limit=None, v2_limit=None, parent_limit=None):
    from pathlib import Path

    root = Path(tmp_path) / "sys"
    lines = []
    if v1_limit is not None:
        leaf = root / "memory" / "docker" / "abc"
        leaf.mkdir(parents=True)
        (leaf / "memory.limit_in_bytes").write_text(str(v1_limit))
        (leaf / "memory.usage_in_bytes").write_text(str(100 * MiB))
        (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712")  # v1's "no limit"
        if parent_limit is not None:
            (root / "memory" / "docker" / "memory.limit_in_bytes").write_text(str(parent_limit))
            (root / "memory" / "docker" / "memory.usage_in_bytes").write_text(str(100 * MiB))
        lines.append("4:memory:/docker/abc")
    if v2_limit is not None:
        leaf = root / "user.slice" / "job"
        leaf.mkdir(parents=True)
        (leaf / "memory.max").write_text(v2_limit)
        (leaf / "memory.current").write_text(str(200 * MiB))
        lines.append("0::/user.slice/job")
    proc = Path(tmp_path) / "cgroup"
    proc.write_text("\n".join(lines + ["1:cpu:/"]) + "\n")
    return str(proc), str(root)


def test_cgroup_v1_limit_is_read_and_the_tightest_ancestor_binds(tmp_path):
    from collage_engine.memory import cgroup_memory

    assert cgroup_memory(*_fake_cgroups(tmp_path / "a", v1_limit=6 << 30)) == (6 << 30, 100 * MiB)
    assert cgroup_memory(*_fake_cgroups(tmp_path / "b", v1_limit=6 << 30, parent_limit=2 << 30)) == \
        (2 << 30, 100 * MiB)


def test_cgroup_v2_limit_and_no_limit(tmp_path):
    from collage_engine.memory import cgroup_memory

    assert cgroup_memory(*_fake_cgroups(tmp_path / "a", v2_limit=str(6 << 30))) == (6 << 30, 200 * MiB)
    assert cgroup_memory(*_fake_cgroups(tmp_path / "b", v2_limit="max")) is None
    assert cgroup_memory(str(tmp_path / "missing"), str(tmp_path)) is None


def test_the_default_budget_is_half_the_cgroups_room_when_that_is_smaller(monkeypatch):
    import collage_engine.memory as memory

    monkeypatch.setattr(memory, "cgroup_memory", lambda: (6 << 30, 1 << 30))
    assert memory.available_memory() <= 5 << 30
    assert memory.default_max_memory() <= (5 << 30) // 2
    monkeypatch.setattr(memory, "cgroup_memory", lambda: None)
    assert memory.default_max_memory() > 0


def test_the_result_cache_lives_inside_the_budget():
    """Cached results nobody holds give way to a run that needs the room; the cache never holds more than the
    budget (the default cache budget of 4 GiB does not sit on top of a smaller --max-memory)."""
    engine = Engine(REG, max_memory=40 * MiB)
    assert engine.cache.host_budget == 40 * MiB
    for tag in range(3):  # three different 10 MiB results, all cached (30 MiB)
        assert engine.run({"1": {"class_type": "Zeros", "inputs": {"mib": 10 + tag}},
                           "9": {"class_type": "Size", "inputs": {"array": ["1", 0]}}}).ok
    assert engine.cache.host_bytes >= 33 * MiB
    r = engine.run({"1": {"class_type": "Zeros", "inputs": {"mib": 30}},
                    "9": {"class_type": "Size", "inputs": {"array": ["1", 0]}}})
    assert r.ok, r.error
    assert engine.cache.host_bytes <= 40 * MiB + MiB  # older results were dropped to make room
    assert engine.cache.evictions >= 2
