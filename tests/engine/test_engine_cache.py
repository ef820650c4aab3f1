"""The result cache: size measurement, LRU eviction under host and device budgets, pinning during a run."""

import numpy as np
import pytest

try:  # the engine needs no torch; the tests of torch tensors and modules run where it is installed
    import torch
except ImportError:
    torch = None

import engine_testnodes as tn
from collage_engine import Engine, ResultCache, measure_bytes

REG = tn.make_registry()
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def test_measure_bytes():
    assert measure_bytes(np.zeros(1000, np.float64))[0] == 8000
    a = np.zeros(100, np.float32)
    h, d = measure_bytes((a, [a, {"k": a}]))  # shared array counted once
    assert 400 <= h < 1000 and d == 0
    assert measure_bytes(tn.FakeDeviceTensor(5000))[1] == 5000
    assert measure_bytes(object())[0] <= 64

    class Declared:
        def __collage_nbytes__(self):
            return 10, 20

    assert measure_bytes([Declared()]) == (64 + 10, 20)

    class Holder:
        def __init__(self):
            self.model, self.extra = np.zeros(110, np.float32), "x"

    assert measure_bytes(Holder())[0] >= 440
    deep = []
    for _ in range(100000):
        deep = [deep]
    measure_bytes(deep)  # bounded walk, no recursion error


def test_lru_eviction_host_and_device():
    c = ResultCache(host_budget=1200, device_budget=3000)  # three 400-byte arrays (+ tuples) do not fit
    c.put("a", (np.zeros(400, np.uint8),))
    c.put("b", (np.zeros(400, np.uint8),))
    c.get("a")  # a is now more recently used than b
    c.put("c", (np.zeros(400, np.uint8),))
    assert "b" not in c and "a" in c and "c" in c and c.host_bytes <= 1200
    c.put("d", (tn.FakeDeviceTensor(2000),))
    c.put("e", (tn.FakeDeviceTensor(2000),))
    assert "d" not in c and "e" in c and c.device_bytes == 2000
    assert "a" in c and "c" in c  # device pressure does not evict host entries
    c.pin("a"), c.pin("c")
    c.put("f", (np.zeros(400, np.uint8),))
    assert "a" in c and "c" in c and "f" not in c  # pinned entries stay; the new one goes
    assert "e" in c  # host pressure spared the device entry
    c.unpin_all()
    assert c.host_bytes <= 1200


@pytest.mark.parametrize("where,budget_kw,used", [("host", "host_budget", "host_bytes"),
                                                  ("device", "device_budget", "device_bytes")])
def test_engine_keeps_cache_under_budget(where, budget_kw, used):
    budget = 2500
    eng = Engine(REG, **{budget_kw: budget})
    for tag in range(10):
        api = {"1": {"class_type": "Blob", "inputs": {"size": 1000, "where": where, "tag": tag}},
               "2": {"class_type": "BlobSink", "inputs": {"blob": ["1", 0]}}}
        assert eng.run(api).ok
        assert getattr(eng.cache, used) <= budget
    assert eng.cache.evictions > 0
    # the two most recent blobs are still cached
    tn.CALLS.clear()
    api["1"]["inputs"]["tag"] = 9
    assert eng.run(api).executed == [] and not tn.CALLS


def test_results_needed_by_the_run_are_never_evicted():
    """Five 1000-byte blobs are all made before their sinks run; the budget holds two, yet none is evicted
    while a sink still needs it, and each is released (then evicted) once its sink has run."""
    api = {str(i): {"class_type": "Blob", "inputs": {"size": 1000, "where": "device", "tag": i}} for i in range(1, 6)}
    api.update({str(10 + i): {"class_type": "BlobSink", "inputs": {"blob": [str(i), 0]}} for i in range(1, 6)})
    eng = Engine(REG, device_budget=2000)
    seen = []
    eng.add_listener(lambda e, d: seen.append((d["node"], eng.cache.device_bytes)) if e == "executing" else None)
    r = eng.run(api)
    assert r.ok and r.executed == ["1", "2", "3", "4", "5", "11", "12", "13", "14", "15"]
    held = dict(seen[:-1])
    assert held["11"] == 5000  # all five pinned, over budget, before the first sink
    assert held["13"] == 3000  # blobs 1 and 2 released and evicted once their sinks ran
    assert eng.cache.device_bytes <= 2000


def test_oversized_result_is_still_delivered():
    eng = Engine(REG, host_budget=10)
    api = {"1": {"class_type": "Blob", "inputs": {"size": 1000, "where": "host", "tag": 0}},
           "2": {"class_type": "Passthrough", "inputs": {"anything": ["1", 0]}}}
    r = eng.run(api, targets=["2"])
    assert r.ok and r["2"][0].nbytes == 1000 and eng.cache.host_bytes <= 10


@needs_torch
def test_measure_bytes_of_torch_tensors_and_modules():
    t = torch.zeros(10, 10)  # float32
    assert measure_bytes(t) == (400, 0)
    h, d = measure_bytes((t, [t, {"k": t}]))  # shared tensor counted once
    assert 400 <= h < 1000 and d == 0
    assert measure_bytes(torch.zeros(1000, device="meta")) == (0, 0)
    m = torch.nn.Linear(10, 10)
    assert measure_bytes(m)[0] == (100 + 10) * 4


@pytest.mark.gpu
@pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_cuda_tensors_count_as_device_memory_and_stay_on_device():
    from collage_engine import Input, Int, Node, NodeRegistry, Output

    class OnCuda(Node):
        inputs = [Int("n", 1024, min=1)]
        outputs = [Output("t", "TENSOR")]

        def run(self, ctx, n):
            return (torch.zeros(n, device="cuda"),)

    class Keep(Node):
        output_node = True
        inputs = [Input("t", "TENSOR")]
        outputs = [Output("t", "TENSOR")]

        def run(self, ctx, t):
            return (t,)

    assert measure_bytes(torch.zeros(256, device="cuda")) == (0, 1024)
    eng = Engine(NodeRegistry([OnCuda, Keep]), device_budget=3 * 4096)
    for n in range(1024, 1024 + 5):
        r = eng.run({"1": {"class_type": "OnCuda", "inputs": {"n": n}},
                     "2": {"class_type": "Keep", "inputs": {"t": ["1", 0]}}})
        assert r.ok and r["2"][0].device.type == "cuda"
        assert eng.cache.device_bytes <= 3 * 4096


def test_a_reused_node_counts_one_cache_hit():
    """Each cached result the run uses is looked up once: a whole re-run uses only the output node's (its inputs
    are not needed), a changed output node uses its input's; earlier the same entry was counted up to three times."""
    engine = Engine(REG)
    wf = tn.chain_workflow(3)
    assert engine.run(wf).ok
    before = engine.cache.hits
    again = engine.run(wf)
    assert again.ok and again.executed == [] and again.cached == list(wf)
    assert engine.cache.hits - before == 1
    wf["5"]["inputs"]["label"] = "other"
    before = engine.cache.hits
    changed = engine.run(wf)
    assert changed.ok and changed.executed == ["5"]
    assert engine.cache.hits - before == 1  # node 4's result, once
