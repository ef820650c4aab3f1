"""Load on the server over loopback: 50 prompts from 5 concurrent editor-like clients (each with its WebSocket).
Every prompt completes exactly once, its events reach only its own client, the queue order (the numbers the server
hands out) is the execution order, the history stays capped and resident memory stays bounded."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from collage_engine.server import PromptServer  # noqa: E402
from engine_testnodes import make_registry  # noqa: E402
from serve_support import Client, get_json, rss_bytes, start  # noqa: E402

CLIENTS, PER_CLIENT, HISTORY = 5, 10, 20


def prompt(seed: int, steps: int = 10) -> dict:
    """seed -> (seed + 1) * 3, through a node that loops ``steps`` times (about a millisecond each)."""
    return {"1": {"class_type": "MakeNumber", "inputs": {"seed": seed, "scale": 1.0, "mode": "add"}},
            "2": {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": steps}},
            "3": {"class_type": "Scale", "inputs": {"x": ["2", 0], "factor": 3.0}},
            "4": {"class_type": "ShowNumber", "inputs": {"x": ["3", 0], "label": f"s{seed}"}}}


async def client_session(url: str, k: int, first_seed: int, sent: list, latencies: list) -> Client:
    c = Client(url, f"client-{k}")
    await c.__aenter__()
    mine = []
    for i in range(PER_CLIENT):
        seed = first_seed + k * 1000 + i
        t0 = time.perf_counter()
        status, body = await c.queue(prompt(seed))
        assert status == 200, body
        mine.append((body["prompt_id"], body["number"], seed, t0))
        sent.append((body["prompt_id"], body["number"], k, seed))
    for pid, _, _seed, t0 in mine:
        end = await c.done(pid, timeout=120)
        assert end["type"] == "execution_success", end
        latencies.append(time.perf_counter() - t0)
    c.mine = mine  # type: ignore[attr-defined]
    return c


async def one_round(url: str, first_seed: int) -> tuple[list, list, list]:
    sent: list = []
    latencies: list = []
    clients = await asyncio.gather(*(client_session(url, k, first_seed, sent, latencies) for k in range(CLIENTS)))
    for c in clients:
        await c.__aexit__(None, None, None)
    return clients, sent, latencies


def test_fifty_prompts_from_five_clients(tmp_path):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path), max_history=HISTORY, max_queue=100)
    order: list[str] = []
    server.engine.add_listener(lambda ev, d: order.append(d["prompt_id"]) if ev == "execution_start" else None)
    bg = start(server)
    try:
        asyncio.run(one_round(bg.url, 0))  # warm-up: imports, first allocations
        gc.collect()
        rss_before = rss_bytes()
        order.clear()
        t0 = time.perf_counter()
        clients, sent, latencies = asyncio.run(one_round(bg.url, 10 ** 6))
        wall = time.perf_counter() - t0
        gc.collect()
        rss_after = rss_bytes()

        # nothing lost or duplicated
        ids = [pid for pid, *_ in sent]
        assert len(ids) == len(set(ids)) == CLIENTS * PER_CLIENT
        assert len({n for _, n, *_ in sent}) == len(ids)
        assert sorted(order) == sorted(ids)  # each ran exactly once
        # queue order kept: execution order is the order of the numbers handed out
        number = {pid: n for pid, n, *_ in sent}
        assert [number[p] for p in order] == sorted(number.values())
        for c in clients:
            mine = [pid for pid, *_ in c.mine]
            ends = [m["data"]["prompt_id"] for m in c.messages if m["type"] == "execution_success"]
            assert ends == mine  # its own prompts only, once each, in the order it sent them
            for pid, _, seed, _ in c.mine:
                out = [m["data"]["output"] for m in c.of(pid, "executed")]
                assert out == [{"value": [(seed + 1) * 3.0], "label": [f"s{seed}"]}]
            foreign = {m["data"].get("prompt_id") for m in c.messages if isinstance(m.get("data"), dict)} - \
                set(mine) - {None}
            assert not foreign
        # bounded state
        hist = get_json(bg.url, "/api/history")[1]
        assert list(hist) == order[-HISTORY:]
        assert get_json(bg.url, "/api/queue")[1] == {"queue_running": [], "queue_pending": []}
        assert len(server.queue._known_ids) == HISTORY and not server.events._sockets
        growth = rss_after - rss_before
        lat = sorted(latencies)
        print(f"\nload: {len(ids)} prompts from {CLIENTS} clients in {wall:.2f} s ({len(ids) / wall:.1f}/s); "
              f"latency submit->success median {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms; "
              f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB ({growth / 2**20:+.1f})")
        assert growth < 40 << 20, f"resident memory grew by {growth / 2**20:.1f} MiB"
        assert wall < 60
    finally:
        bg.stop()
