"""The node pack inside a real ComfyUI server: every workflow of ``workflows/`` through ``POST /prompt`` gives the
images of our command line.

Runs only when ``COMFYUI_DIR`` names a ComfyUI checkout (the folder with ``main.py``); ``COMFYUI_PYTHON`` is the
interpreter with ComfyUI's requirements (default: this one). The pack is installed the way a user does it, as a
folder in ``custom_nodes`` (a symlink to this repository inside a temporary ``--base-directory``, so ComfyUI's own
folders are not touched). The package does not need to be installed in ComfyUI's Python: the folder brings
``collage_core`` / ``collage_engine`` along (see the repository's ``__init__.py``). So that ComfyUI runs this
checkout's libraries even where its Python has another copy of the package installed, its ``PYTHONPATH`` starts
with a folder linking to this checkout's ``collage_core`` and ``collage_engine`` (only those: ComfyUI's own
top-level ``nodes`` module must stay visible). Where ComfyUI has ``comfy_api.latest`` the pack is loaded through
ComfyUI's V3 node API, and ``models/neural_collage`` holds two test checkpoints for the model dropdowns::

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python \
        python -m pytest -q -s tests/comfy/test_comfy_integration.py

The workflows name the embedded model ``emoji-animals``; while it is not installed, every Load Generator / Load
Discriminator is pointed at the tiny test checkpoints in ``tests/fixtures`` (on both sides alike).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import collage_nodes
from collage_core.models import embedded_model_path
from collage_nodes.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
WORKFLOWS = sorted(p.stem for p in (ROOT / "workflows" / "api").glob("*.json") if not p.stem.startswith("biggan_"))
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON") or sys.executable
START_TIMEOUT = float(os.environ.get("COMFYUI_START_TIMEOUT", "240"))
RUN_TIMEOUT = float(os.environ.get("COMFYUI_RUN_TIMEOUT", "900"))
EMBEDDED = "emoji-animals"
MODEL_LOADERS = ("LoadGenerator", "LoadDiscriminator", "LoadEncoder")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not COMFYUI_DIR or not (Path(COMFYUI_DIR) / "main.py").is_file(),
                       reason="needs a real ComfyUI: set COMFYUI_DIR to a ComfyUI checkout (the folder with main.py) "
                              "and COMFYUI_PYTHON to a Python with its requirements"),
]


# ----------------------------------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 30) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def _post(url: str, body: dict, timeout: float = 60) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"POST {url} -> {e.code}: {e.read().decode(errors='replace')[:4000]}") from None
    return json.loads(text) if text.strip() else {}


class Server:
    def __init__(self, base: Path) -> None:
        self.base, self.port = base, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = base / "output"
        self.log_path = base / "comfyui.log"
        (base / "custom_nodes").mkdir(parents=True)
        (base / "custom_nodes" / "neural-collage").symlink_to(ROOT, target_is_directory=True)
        self.pylib = base / "pylib"  # this checkout's libraries first on ComfyUI's path
        self.pylib.mkdir()
        for lib in ("collage_core", "collage_engine"):
            (self.pylib / lib).symlink_to(ROOT / lib, target_is_directory=True)
        models = base / "models" / "neural_collage"  # ComfyUI's model folder of the pack (the loaders' dropdowns)
        (models / "sub").mkdir(parents=True)
        for kind, dest in (("generator", models / "sub" / "tiny-g.safetensors"),
                           ("discriminator", models / "tiny-d.safetensors")):
            dest.write_bytes((FIXTURES / f"tiny_{kind}.safetensors").read_bytes())
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:"]
        self._log = open(self.log_path, "w")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(self.pylib),
                                                                       os.environ.get("PYTHONPATH", "")) if p)}
        env.pop("NEURAL_COLLAGE_COMFYUI_API", None)
        self.proc = subprocess.Popen(cmd, cwd=COMFYUI_DIR, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                _get(self.url + "/system_stats", timeout=5)
                return
            except (OSError, ValueError):
                time.sleep(1)
        raise AssertionError(f"ComfyUI did not answer within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        if getattr(self, "_log", None):
            self._log.close()

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def run(self, prompt: dict, extra_pnginfo: dict | None = None, timeout: float = RUN_TIMEOUT) -> dict:
        """Queue a prompt, poll /history until it is done; return its history entry."""
        body = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        if extra_pnginfo is not None:
            body["extra_data"] = {"extra_pnginfo": extra_pnginfo}
        res = _post(self.url + "/prompt", body)
        assert not res.get("node_errors"), res
        return self.wait(res["prompt_id"], timeout)

    def wait(self, prompt_id: str, timeout: float = RUN_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = _get(f"{self.url}/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            if self.proc.poll() is not None:
                raise AssertionError(f"ComfyUI died:\n{self.log_tail()}")
            time.sleep(0.5)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("comfyui"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------------- the workflows
def _with_models(prompt: dict) -> tuple[dict, list[str]]:
    """The workflow as it runs here: the embedded model if it is installed, else the tiny test checkpoints."""
    notes = []
    for nid, node in prompt.items():
        kind = {"LoadGenerator": "generator", "LoadDiscriminator": "discriminator",
                "LoadEncoder": "encoder"}.get(node["class_type"])
        if kind and node["inputs"].get("model") == EMBEDDED and embedded_model_path(EMBEDDED, kind) is None:
            node["inputs"]["model"] = str(FIXTURES / f"tiny_{kind}.safetensors")
            notes.append(f"node {nid}: {EMBEDDED} {kind} not installed, using tests/fixtures/tiny_{kind}.safetensors")
    return prompt, notes


def _absolute_files(prompt: dict) -> dict:
    """The API workflow with its relative picture paths (``../examples/...``, relative to ``workflows/api/``) made
    absolute, so the CLI reads the same files from a copy saved elsewhere."""
    for node in prompt.values():
        path = node["inputs"].get("path")
        if isinstance(path, str) and path.startswith("../"):
            node["inputs"]["path"] = str((ROOT / "workflows" / "api" / path).resolve())
    return prompt


def _cli_images(prompt: dict, tmp: Path) -> dict[str, np.ndarray]:
    """Run the workflow with ``neural-collage run``; its PNGs by path relative to the output folder."""
    wf, out = tmp / "workflow.json", tmp / "cli"
    wf.write_text(json.dumps(prompt))
    res = subprocess.run([sys.executable, "-m", "collage_app.cli", "run", str(wf), "--out", str(out), "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert res.returncode == 0, res.stderr
    paths = [Path(line) for line in res.stdout.splitlines() if line.endswith(".png")]
    assert paths, res.stdout
    return {p.relative_to(out).as_posix(): np.asarray(Image.open(p)) for p in paths}


def _ui_copy(name: str, prompt: dict, original: dict) -> dict | None:
    """The editor JSON to embed (``workflows/NAME.json``) when the workflow runs unchanged."""
    path = ROOT / "workflows" / f"{name}.json"
    return json.loads(path.read_text()) if prompt == original and path.is_file() else None


def _has_v3() -> bool:
    """Whether the ComfyUI under test has the V3 node API (comfy_api/latest)."""
    return (Path(COMFYUI_DIR) / "comfy_api" / "latest" / "__init__.py").is_file()


def _kind(entry: list) -> object:
    """An /object_info input's type as V1 writes it: V3 COMBOs (``["COMBO", {"options": [...]}]``) as the list."""
    kind, opts = entry[0], (entry[1] if len(entry) > 1 else {})
    return list(opts.get("options", [])) if kind == "COMBO" else kind


def test_the_pack_is_listed_by_comfyui_as_declared(server):
    info = _get(server.url + "/object_info")
    log = server.log_path.read_text(errors="replace")
    assert "IMPORT FAILED" not in "\n".join(line for line in log.splitlines() if "neural-collage" in line), log
    reg = collage_nodes.registry()
    ours = {name for name, entry in info.items() if entry.get("python_module", "").startswith("custom_nodes.")}
    assert set(reg.names()) <= ours, f"missing or shadowed by ComfyUI's own nodes: {set(reg.names()) - ours}"
    for name, cls in NODE_CLASS_MAPPINGS.items():
        entry, types_ = info[name], cls.INPUT_TYPES()
        assert entry["python_module"] == "custom_nodes.neural-collage"
        assert entry["display_name"] == NODE_DISPLAY_NAME_MAPPINGS[name]
        assert entry["category"] == cls.CATEGORY and entry["output_node"] is cls.OUTPUT_NODE
        assert entry["output"] == list(cls.RETURN_TYPES) and entry["output_name"] == list(cls.RETURN_NAMES)
        assert entry["description"] == cls.DESCRIPTION
        for cat in ("required", "optional"):
            assert list(entry["input"].get(cat, {})) == list(types_.get(cat, {}))
            for inp, (kind, *opts) in types_.get(cat, {}).items():
                if name in MODEL_LOADERS and inp == "model":
                    continue  # this server's model folder adds files (test_model_dropdowns_...)
                assert _kind(entry["input"][cat][inp]) == kind, (name, inp)
                for key in ("default", "min", "max", "step", "tooltip", "control_after_generate"):
                    assert entry["input"][cat][inp][1].get(key) == (opts[0] if opts else {}).get(key), (name, inp, key)
        # hidden inputs: V1 writes {"prompt": "PROMPT"}, V3 {"prompt": ["PROMPT"]}
        hidden = {k: v[0] if isinstance(v, list) else v for k, v in entry["input"]["hidden"].items()}
        assert hidden == types_["hidden"]
    # our display names do not repeat those of ComfyUI's own nodes
    theirs = {e["display_name"] for n, e in info.items() if n not in ours}
    assert not {NODE_DISPLAY_NAME_MAPPINGS[n] for n in reg.names()} & theirs


def test_requires_comfyui_admits_this_comfyui(server):
    """pyproject's ``[tool.comfy] requires-comfyui`` (what the Registry and ComfyUI-Manager read) admits the ComfyUI
    this run checked (versions compare per part: ``>=0.33.0`` excluded 0.3.64)."""
    import tomllib
    from packaging.specifiers import SpecifierSet

    version = _get(server.url + "/system_stats")["system"]["comfyui_version"]
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    print(f"ComfyUI {version}; requires-comfyui {spec}")
    assert version in SpecifierSet(spec), (version, spec)


def test_help_pages_are_served_where_comfyuis_editor_looks(server):
    """ComfyUI serves the pack's WEB_DIRECTORY at /extensions/neural-collage/, so each node's help page
    (``docs/<NODE>.md``, what the editor's node library fetches for a custom node) comes back as Markdown."""
    for name in collage_nodes.registry().names():
        with urllib.request.urlopen(f"{server.url}/extensions/neural-collage/docs/{name}.md", timeout=30) as r:
            assert "text/html" not in r.headers.get("Content-Type", ""), (name, r.headers.get("Content-Type"))
            assert r.read() == (ROOT / "nodes" / "web" / "docs" / f"{name}.md").read_bytes(), name


def test_the_pack_is_loaded_through_comfyuis_v3_api(server):
    """Where ComfyUI has ``comfy_api.latest`` the folder exports ``comfy_entrypoint`` only, and ComfyUI builds the
    listing from our V3 schemas: COMBOs as ``["COMBO", {"options": [...]}]`` and ``not_idempotent`` / output flags."""
    if not _has_v3():
        pytest.skip("this ComfyUI has no comfy_api.latest: the pack is loaded through V1")
    log = server.log_path.read_text(errors="replace")
    # ... with this checkout's libraries (the log names where collage_core / collage_engine came from)
    line = f"neural-collage: {len(NODE_CLASS_MAPPINGS)} nodes through ComfyUI's V3 node API (comfy_api.latest); " \
           f"libraries from {ROOT}"
    assert line in log.splitlines(), log[-4000:]
    info = _get(server.url + "/object_info")
    device = info["LoadGenerator"]["input"]["required"]["device"]
    assert device[0] == "COMBO" and device[1]["options"] == ["auto", "cpu", "cuda", "mps"]
    assert info["CollageSaveImage"]["input"]["hidden"] == {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"],
                                                           "unique_id": ["UNIQUE_ID"]}
    # V3 listings carry these flags for every node; V1 listings of ours do not
    assert all("deprecated" in info[name] and "api_node" in info[name] for name in NODE_CLASS_MAPPINGS)
    # a V3 COMBO value outside its options is refused before anything runs, naming the input (our validate_inputs),
    # once: the hook takes model, device and dtype, so it raises its refusal (ComfyUI would repeat a returned one
    # per input; a raised one is ComfyUI's "Exception when validating inner node", on the node, not on the widget)
    prompt, _ = _with_models(json.loads((ROOT / "workflows" / "api" / "class_collage.json").read_text()))
    prompt["1"]["inputs"]["dtype"] = "float64"
    errors = _refused(server, prompt)
    assert [err["details"][:len("input 'dtype':")] for err in errors["1"]["errors"]] == ["input 'dtype':"], errors


def test_model_dropdowns_list_embedded_models_and_the_model_folder(server):
    """Load Generator / Discriminator / Encoder offer the embedded models and the checkpoints of
    ``models/neural_collage`` (by kind); a name picked there runs, and a typed path still passes validation."""
    info = _get(server.url + "/object_info")

    def choices(node: str) -> list:
        return _kind(info[node]["input"]["required"]["model"])

    gen, disc, enc = choices("LoadGenerator"), choices("LoadDiscriminator"), choices("LoadEncoder")
    assert gen[0] == EMBEDDED and EMBEDDED in disc and EMBEDDED in enc
    assert "sub/tiny-g.safetensors" in gen and "tiny-d.safetensors" not in gen
    assert "tiny-d.safetensors" in disc and "sub/tiny-g.safetensors" not in disc
    assert not {"sub/tiny-g.safetensors", "tiny-d.safetensors"} & set(enc)
    print(f"\nLoad Generator's model dropdown: {gen}")
    prompt = {
        "1": {"class_type": "LoadGenerator", "inputs": {"model": "sub/tiny-g.safetensors", "device": "cpu",
                                                        "dtype": "float32"}},
        "2": {"class_type": "SampleZ", "inputs": {"generator": ["1", 0], "seed": 3, "batch": 1, "truncation": 0.0}},
        "3": {"class_type": "ClassSelect", "inputs": {"generator": ["1", 0], "class_name": "dog"}},
        "4": {"class_type": "Generate", "inputs": {"generator": ["1", 0], "z": ["2", 0], "classes": ["3", 0],
                                                   "combine": "pairwise"}},
        "5": {"class_type": "CollageSaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "dropdown"}},
        "6": {"class_type": "LoadDiscriminator", "inputs": {"model": "tiny-d.safetensors", "device": "cpu",
                                                            "dtype": "float32"}},
    }
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    # a path that is not in the list is validated by the node itself (not refused as "value not in list")
    typed = json.loads(json.dumps(prompt))
    typed["1"]["inputs"]["model"] = str(FIXTURES / "tiny_generator.safetensors")
    typed["5"]["inputs"]["filename_prefix"] = "typed"
    assert server.run(typed)["status"]["status_str"] == "success"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_in_comfyui_gives_the_cli_images(server, name, tmp_path):
    original = json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text())
    prompt, notes = _with_models(json.loads(json.dumps(original)))
    for note in notes:
        print(f"[{name}] {note}")
    expected = _cli_images(_absolute_files(json.loads(json.dumps(prompt))), tmp_path)
    ui = _ui_copy(name, prompt, original)
    t0 = time.perf_counter()
    entry = server.run(prompt, {"workflow": ui} if ui is not None else None)
    status = entry["status"]
    assert status["status_str"] == "success", json.dumps(status["messages"], indent=1)[-6000:]
    got: dict[str, np.ndarray] = {}
    for out in entry["outputs"].values():
        for item in out.get("images", []):
            assert item["type"] == "output" and set(item) == {"filename", "subfolder", "type"}
            rel = "/".join(p for p in (item["subfolder"], item["filename"]) if p)
            path = server.output / rel
            got[rel] = np.asarray(Image.open(path))
            text = Image.open(path).text
            sent = json.loads(text["prompt"])
            assert {k: v["class_type"] for k, v in sent.items()} == {k: v["class_type"] for k, v in prompt.items()}
            if ui is not None:
                assert json.loads(text["workflow"]) == ui  # ComfyUI's EXTRA_PNGINFO reached the saver
    assert sorted(got) == sorted(expected)
    worst = 0
    for rel, pixels in expected.items():
        assert got[rel].shape == pixels.shape, rel
        diff = int(np.abs(got[rel].astype(int) - pixels.astype(int)).max())
        worst = max(worst, diff)
        assert diff <= 1, f"{rel}: differs from the CLI by {diff}/255"
    print(f"[{name}] {len(got)} image(s), ComfyUI {time.perf_counter() - t0:.1f} s, "
          f"{'bit-equal to' if worst == 0 else f'within {worst}/255 of'} the CLI")


def test_every_template_opens_a_graph_of_our_nodes(server):
    """ComfyUI's template browser: Templates > neural-collage lists every workflow, each file is an editor graph
    whose nodes ComfyUI knows, and each has its .jpg card."""
    listing = _get(server.url + "/workflow_templates")
    names = sorted(listing.get("neural-collage", []))
    assert names == sorted(p.stem for p in (ROOT / "workflows").glob("*.json")), listing
    known = set(_get(server.url + "/object_info"))
    for name in names:
        ui = _get(f"{server.url}/api/workflow_templates/neural-collage/{name}.json")
        types = {n["type"] for n in ui["nodes"]}
        assert types and types <= known, (name, types - known)
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/neural-collage/{name}.jpg", timeout=30) as r:
            assert r.status == 200 and r.read(3) == b"\xff\xd8\xff"  # a JPEG


def test_the_painter_works_in_comfyuis_editor(server, tmp_path):
    """The class-map painter in a real ComfyUI: the pack's extension loads (WEB_DIRECTORY), the labels route
    answers, the paint_collage template opens as a graph, strokes painted with the mouse re-run the graph."""
    cdp = pytest.importorskip("cdp")
    if cdp.find_chromium() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    import asyncio

    from editor_session import paint_session

    report = asyncio.run(paint_session(server.url, server.output, tmp_path / "painter-comfyui.png",
                                       open_via="template"))
    print("\npainter in ComfyUI:", json.dumps(report, indent=1))
    assert len(report["stroke_to_picture_ms"]) == 3


def test_an_identical_prompt_is_served_from_comfyuis_cache(server):
    prompt, _ = _with_models(json.loads((ROOT / "workflows" / "api" / "class_collage.json").read_text()))
    server.run(prompt)
    again = server.run(prompt)
    cached = [m for m in again["status"]["messages"] if m[0] == "execution_cached"]
    assert cached and set(cached[0][1]["nodes"]) == set(prompt)


def test_validation_errors_come_back_per_node_naming_the_input(server):
    prompt, _ = _with_models(json.loads((ROOT / "workflows" / "api" / "class_collage.json").read_text()))
    bad = json.loads(json.dumps(prompt))
    bad["1"]["inputs"]["model"] = "no-such-model"
    bad["8"]["inputs"]["strength"] = 7.0
    errors = _refused(server, bad)
    assert any("input 'model'" in err["details"] for err in errors["1"]["errors"])  # our validate hook
    # one bad input is one error and one line of ComfyUI's log (not one per input the hook takes)
    assert len(errors["1"]["errors"]) == 1, errors["1"]
    logged = [line for line in server.log_path.read_text(errors="replace").splitlines() if "no-such-model" in line]
    assert len(logged) == 1, logged
    assert any(err["type"] == "value_bigger_than_max" and err["extra_info"]["input_name"] == "strength"
               for err in errors["8"]["errors"])
    # a runtime error names the node and the input
    bad = json.loads(json.dumps(prompt))
    bad["8"]["inputs"]["class_name"] = "giraffe"
    entry = server.run(bad)
    err = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert err["node_id"] == "8" and err["node_type"] == "PaintClass"
    assert err["exception_message"].startswith("input 'class_name':")


def _refused(server, prompt: dict) -> dict:
    """POST a prompt ComfyUI must refuse before running it; its ``node_errors``."""
    req = urllib.request.Request(server.url + "/prompt", json.dumps({"prompt": prompt}).encode(),
                                 {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    return json.loads(e.value.read())["node_errors"]


def test_progress_and_cancel_reach_a_running_node(server):
    """A long manifold projection reports progress over ComfyUI's websocket and stops on /interrupt."""
    aiohttp = pytest.importorskip("aiohttp")
    if "ProjectImage" not in NODE_CLASS_MAPPINGS:
        pytest.skip("no long-running node in this pack")
    import asyncio

    tiny_g, tiny_d = str(FIXTURES / "tiny_generator.safetensors"), str(FIXTURES / "tiny_discriminator.safetensors")
    prompt = {
        "1": {"class_type": "LoadGenerator", "inputs": {"model": tiny_g, "device": "cpu", "dtype": "float32"}},
        "2": {"class_type": "SampleZ", "inputs": {"generator": ["1", 0], "seed": 3, "batch": 1, "truncation": 0.0}},
        "3": {"class_type": "ClassSelect", "inputs": {"generator": ["1", 0], "class_name": "dog"}},
        "4": {"class_type": "Generate", "inputs": {"generator": ["1", 0], "z": ["2", 0], "classes": ["3", 0],
                                                   "combine": "pairwise"}},
        "5": {"class_type": "ProjectImage", "inputs": {"generator": ["1", 0], "image": ["4", 0], "class_name": "dog",
                                                       "top_k": 1, "steps": 5000, "restarts": 8, "init_samples": 0,
                                                       "lr": 0.075, "pixel_weight": 0.2, "patience": 0, "seed": 0}},
        "6": {"class_type": "CollageSaveImage", "inputs": {"images": ["5", 1], "filename_prefix": "interrupted"}},
    }
    if Path(tiny_d).is_file() and "discriminator" in NODE_CLASS_MAPPINGS["ProjectImage"].INPUT_TYPES().get(
            "optional", {}):
        prompt["7"] = {"class_type": "LoadDiscriminator", "inputs": {"model": tiny_d, "device": "cpu",
                                                                     "dtype": "float32"}}
        prompt["5"]["inputs"]["discriminator"] = ["7", 0]

    async def session() -> tuple[list, list, float]:
        client = uuid.uuid4().hex
        events, progress = [], []
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url.replace('http', 'ws')}/ws?clientId={client}") as ws:
                async with http.post(server.url + "/prompt", json={"prompt": prompt, "client_id": client}) as r:
                    assert r.status == 200, await r.text()
                interrupted_at = None
                deadline = time.monotonic() + RUN_TIMEOUT
                while time.monotonic() < deadline:
                    msg = await ws.receive(timeout=RUN_TIMEOUT)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    data = json.loads(msg.data)
                    events.append(data["type"])
                    if data["type"] == "progress" and data["data"].get("node") == "5":
                        progress.append(data["data"]["value"])
                        if len(progress) == 3 and interrupted_at is None:
                            interrupted_at = time.monotonic()
                            async with http.post(server.url + "/interrupt", json={}) as r:
                                assert r.status == 200
                    if data["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                        return events, progress, time.monotonic() - (interrupted_at or time.monotonic())
        raise AssertionError("no end of execution")

    events, progress, after = asyncio.run(session())
    assert len(progress) >= 3 and progress == sorted(progress)
    assert events[-1] == "execution_interrupted", events[-12:]
    assert after < 30, f"the node stopped {after:.1f} s after /interrupt"
