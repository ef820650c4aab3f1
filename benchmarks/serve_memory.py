"""Hostile workflows against ``neural-collage serve`` inside a memory cgroup (issue 25's cases), default settings.

Starts ``neural-collage serve`` in a fresh memory cgroup (v1 or v2; needs root) of ``--limit`` bytes, queues the
workflows that used to kill the server, and prints for each how it ended (refused at ``/prompt``, failed, or
succeeded), how long it took, the message, and whether the server process still lived; then a normal prompt (the
main job) must succeed. Run::

    sudo python benchmarks/serve_memory.py [--limit 6G] [--big]

``--big`` adds the 100-megapixel cases (two Load Image of a 100 MP RGBA picture, a Poisson composite of 100 MP;
the pictures are written first, which takes a minute).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "workflows" / "api"


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("b").rstrip("i")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def make_cgroup(limit: int) -> tuple[str, str]:
    """A fresh memory cgroup: ``(its folder, its cgroup.procs)``."""
    name = f"neural-collage-bench-{os.getpid()}"
    for root, limit_file in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes"), ("/sys/fs/cgroup", "memory.max")):
        if limit_file == "memory.max" and not os.path.exists(os.path.join(root, "cgroup.controllers")):
            continue
        if not os.path.isdir(root):
            continue
        folder = os.path.join(root, name)
        try:
            os.makedirs(folder, exist_ok=True)
            Path(folder, limit_file).write_text(str(limit))
            return folder, os.path.join(folder, "cgroup.procs")
        except OSError:
            continue
    sys.exit("cannot make a memory cgroup here (run as root on Linux with a cgroup file system)")


def http(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def run_case(url: str, prompt: dict, timeout: float) -> tuple[str, str, float]:
    t0 = time.perf_counter()
    status, body = http(url + "/prompt", "POST", {"prompt": prompt})
    if status != 200:
        err = body.get("error", {})
        nodes = body.get("node_errors", {})
        detail = "; ".join(e.get("message", "") + ": " + e.get("details", "")
                           for n in nodes.values() for e in n.get("errors", []))
        return "refused", (detail or err.get("message", ""))[:160], time.perf_counter() - t0
    pid = body["prompt_id"]
    while time.perf_counter() - t0 < timeout:
        status, hist = http(f"{url}/history/{pid}")
        if status == 200 and pid in hist:
            st = hist[pid]["status"]
            if st["status_str"] == "success":
                return "succeeded", "", time.perf_counter() - t0
            msg = next((m[1] for m in st["messages"] if m[0] in ("execution_error", "execution_interrupted")), {})
            return "failed", str(msg.get("exception_message", ""))[:160], time.perf_counter() - t0
        time.sleep(0.5)
    http(url + "/interrupt", "POST", {})
    return "timeout", f"no end within {timeout:.0f} s (interrupted)", time.perf_counter() - t0


def cases(big_png: str | None) -> list[tuple[str, dict]]:
    collage = json.loads((API / "class_collage.json").read_text())
    photo = json.loads((API / "photo_edit.json").read_text())
    photo["3"]["inputs"]["path"] = "examples/chelsea.png"
    out = []
    wf = copy.deepcopy(collage)  # 2: a megabyte of layer ranges
    wf["20"] = {"class_type": "LayerRangeSweep", "inputs": {"class_map": ["8", 0], "mode": "custom",
                                                           "custom": "0," * 450000}}
    wf["9"]["inputs"]["class_map"] = ["20", 0]
    out.append(("2 LayerRangeSweep custom 1 MB", wf))
    wf = copy.deepcopy(collage)  # 3: 14 doublings of a batch-1024 z
    wf["2"]["inputs"]["batch"] = 1024
    prev = ["2", 0]
    for i in range(14):
        wf[str(30 + i)] = {"class_type": "ConcatZ", "inputs": {"z_a": prev, "z_b": prev}}
        prev = [str(30 + i), 0]
    wf["9"]["inputs"]["z"] = prev
    out.append(("3 ConcatZ x14 of batch 1024", wf))
    wf = copy.deepcopy(collage)  # 4: the ellipse at its declared maximum
    wf["6"]["inputs"].update(width=4096, height=4096)
    out.append(("4 CollageEllipseMask 4096x4096", wf))
    wf = copy.deepcopy(photo)  # 5: a projection of 2,048 candidates
    wf["6"]["inputs"].update(class_name="auto", top_k=32, restarts=64, steps=5000)
    out.append(("5 ProjectImage auto, top_k 32, restarts 64", wf))
    if big_png:
        for i in (1, 2):
            out.append((f"6 Load Image 100 MP RGBA (#{i})", {
                "1": {"class_type": "CollageLoadImage", "inputs": {"path": big_png}},
                "2": {"class_type": "CollageSaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"big{i}",
                                                                   "output_dir": "output"}}}))
        out.append(("7 PoissonComposite 100 MP", {
            "1": {"class_type": "CollageLoadImage", "inputs": {"path": big_png}},
            "2": {"class_type": "CollageEllipseMask", "inputs": {"width": 10000, "height": 10000, "center_x": 0.5,
                                                                "center_y": 0.5, "radius_x": 0.4, "radius_y": 0.4}},
            "3": {"class_type": "PoissonComposite", "inputs": {"source": ["1", 0], "target": ["1", 0],
                                                               "mask": ["2", 0], "mode": "normal"}},
            "4": {"class_type": "CollageSaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "poisson",
                                                               "output_dir": "output"}}}))
    out.append(("normal prompt (the main job)", copy.deepcopy(collage)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", default="6G", help="memory limit of the cgroup (default 6G)")
    ap.add_argument("--big", action="store_true", help="add the 100-megapixel cases")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a case may take (default 600)")
    args = ap.parse_args()
    limit = _size(args.limit)
    work = Path(tempfile.mkdtemp(prefix="serve-memory-"))
    big = None
    if args.big:
        import numpy as np
        from PIL import Image

        (work / "input").mkdir(parents=True)
        big = "big.png"
        Image.fromarray(np.full((10000, 10000, 4), 200, np.uint8), "RGBA").save(work / "input" / big,
                                                                               compress_level=1)
    folder, procs = make_cgroup(limit)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = f'echo $$ > {procs} && exec {sys.executable} -m collage_app.cli serve --dir {work} --port {port}'
    log = open(work / "serve.log", "w")
    server = subprocess.Popen(["sh", "-c", cmd], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if http(url + "/prompt")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            sys.exit("serve did not start: " + (work / "serve.log").read_text()[-2000:])
        print(f"serve in a memory cgroup of {args.limit} ({folder}); threads: serve's default; "
              f"load {os.getloadavg()[0]:.1f}")
        print("| case | outcome | s | server alive | message |\n|---|---|---:|---|---|")
        for name, wf in cases(big):
            outcome, msg, secs = run_case(url, wf, args.timeout)
            alive = server.poll() is None
            print(f"| {name} | {outcome} | {secs:.1f} | {'yes' if alive else 'NO'} | {msg.replace('|', '/')} |",
                  flush=True)
            if not alive:
                break
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        time.sleep(1)
        try:
            os.rmdir(folder)
        except OSError:
            pass
        print("serve log (tail):\n" + "".join((work / "serve.log").read_text().splitlines(True)[-8:]))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
