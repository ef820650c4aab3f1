"""A painter stroke through ``serve``: from the queued prompt to its ``execution_success`` event, with workflows in
the worker process (the default) and in the server process (``--in-process``), measured in the same run.

    python benchmarks/serve_stroke.py [--strokes 12] [--rounds 2]

Each stroke changes the Paint Class Map node's ``strokes`` of ``workflows/api/paint_collage.json`` (as the painter
does), queues the prompt over HTTP and waits for its end on the WebSocket, as the editor does; the engine re-runs
the map and the generator from its cache. The two modes alternate round by round on the same warm servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def strokes_through(url: str, wf: dict, paint: str, n: int, offset: int) -> list[float]:
    import aiohttp

    base = json.loads(wf[paint]["inputs"]["strokes"])
    cid = uuid.uuid4().hex
    times = []
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{url}/ws?clientId={cid}") as ws:
        for i in range(n):
            x = 0.2 + 0.6 * ((i + offset) % n) / max(1, n - 1)
            stroke = {**base[0], "points": [[x, 0.3], [x + 0.05, 0.5], [x, 0.7 + 0.001 * offset]]}
            wf[paint]["inputs"]["strokes"] = json.dumps([*base, stroke])
            t0 = time.perf_counter()
            async with s.post(f"{url}/api/prompt", json={"prompt": wf, "client_id": cid}) as r:
                body = await r.json()
                assert r.status == 200, body
            pid = body["prompt_id"]
            while True:
                msg = await ws.receive(timeout=120)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                if m["type"] in ("execution_success", "execution_error") and m["data"].get("prompt_id") == pid:
                    assert m["type"] == "execution_success", m
                    break
            times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strokes", type=int, default=12, help="strokes per round and mode (default 12)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, the modes alternating (default 2)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from collage_app.serve import make_server
    from collage_core.threads import apply_threads, choose_threads
    from collage_engine.server import BackgroundServer

    threads = apply_threads(choose_threads("auto"))
    wf0 = json.loads((ROOT / "workflows" / "api" / "paint_collage.json").read_text())
    paint = next(k for k, v in wf0.items() if v["class_type"] == "PaintClassMap")
    servers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("worker process", "in the server process"):
            server = make_server(os.path.join(tmp, mode.split()[0]), web_root="", examples=True,
                                 isolate=mode == "worker process")
            servers[mode] = (server, BackgroundServer(server, "127.0.0.1", 0).start())
        try:
            for _, bg in servers.values():  # warm: models loaded, the map and generator cached
                asyncio.run(strokes_through(bg.url, json.loads(json.dumps(wf0)), paint, 2, 100))
            got: dict[str, list[float]] = {m: [] for m in servers}
            for r in range(args.rounds):
                for mode, (_, bg) in servers.items():
                    got[mode] += asyncio.run(strokes_through(bg.url, json.loads(json.dumps(wf0)), paint,
                                                             args.strokes, r * args.strokes))
        finally:
            for server, bg in servers.values():
                bg.stop()
                server.close()
    print(f"painter stroke -> picture through serve; torch threads: {threads}; load {os.getloadavg()[0]:.1f}; "
          f"{os.cpu_count()} CPUs")
    print("| mode | strokes | median ms | p90 ms | max ms |\n|---|---:|---:|---:|---:|")
    for mode, t in got.items():
        t = sorted(t)
        print(f"| {mode} | {len(t)} | {1000 * statistics.median(t):.0f} | {1000 * t[int(0.9 * (len(t) - 1))]:.0f} "
              f"| {1000 * t[-1]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
