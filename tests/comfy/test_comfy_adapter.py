"""The ComfyUI adapter (``collage_nodes.comfy`` and the repository root's ``__init__.py``) without ComfyUI installed.

The generated classes are checked against ComfyUI's (v1) node conventions, and nodes are run through the adapter
with stand-ins for ``comfy.utils`` (ProgressBar), ``comfy.model_management`` (interruption), ``folder_paths`` and
``comfy_execution.utils``. ``tests/comfy/test_comfy_integration.py`` runs the same classes inside a real ComfyUI.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import math
import os
import re
import subprocess
import sys
import types
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import collage_nodes
from collage_engine import Graph, Node
from collage_nodes import comfy
from nodes_support import TINY

ROOT = Path(__file__).resolve().parents[2]
REG = collage_nodes.registry()
CLASSES = comfy.NODE_CLASS_MAPPINGS
NAMES = comfy.NODE_DISPLAY_NAME_MAPPINGS

# ComfyUI v0.33's conventions (comfy/comfy_types/node_typing.py: InputTypeOptions, HiddenInputTypeDict, IO)
OPTION_KEYS = {"default", "defaultInput", "forceInput", "lazy", "rawLink", "tooltip", "socketless", "widgetType",
               "min", "max", "step", "round", "display", "label_on", "label_off", "multiline", "placeholder",
               "dynamicPrompts", "image_upload", "image_folder", "remote", "control_after_generate", "options",
               "multi_select", "advanced"}
HIDDEN_TYPES = {"PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
CORE_TYPES = {"IMAGE", "MASK", "LATENT", "CONDITIONING", "MODEL", "CLIP", "VAE", "*"}
TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


# ------------------------------------------------------------------------------------------------ stand-ins
class InterruptProcessingException(BaseException):
    """ComfyUI's (a BaseException since v0.3x, so `except Exception` in node code cannot swallow it)."""


@pytest.fixture
def comfy_stubs(tmp_path, monkeypatch):
    """Stand-ins for the ComfyUI modules the adapter uses; ``state`` records progress bars and drives interrupts."""
    state = SimpleNamespace(bars=[], interrupt=False, output=tmp_path / "output", input=tmp_path / "input")
    state.output.mkdir()
    state.input.mkdir()

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total, self.node_id, self.updates = total, node_id, []
            state.bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            self.updates.append((value, total))

    def throw_exception_if_processing_interrupted():
        if state.interrupt:
            state.interrupt = False
            raise InterruptProcessingException()

    mm = types.ModuleType("comfy.model_management")
    mm.InterruptProcessingException = InterruptProcessingException
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.processing_interrupted = lambda: state.interrupt
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    comfy_pkg = types.ModuleType("comfy")
    comfy_pkg.__path__ = []
    comfy_pkg.utils, comfy_pkg.model_management = utils, mm
    fp = types.ModuleType("folder_paths")
    fp.get_output_directory = lambda: str(state.output)
    fp.get_input_directory = lambda: str(state.input)
    exe = types.ModuleType("comfy_execution")
    exe.__path__ = []
    exe_utils = types.ModuleType("comfy_execution.utils")
    exe_utils.get_executing_context = lambda: SimpleNamespace(prompt_id="prompt-1", node_id="x", list_index=None)
    for name, mod in {"comfy": comfy_pkg, "comfy.utils": utils, "comfy.model_management": mm, "folder_paths": fp,
                      "comfy_execution": exe, "comfy_execution.utils": exe_utils}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    comfy.clear_loaded()
    yield state
    comfy.clear_loaded()


def run_node(class_type: str, unique_id: str = "1", prompt=None, extra_pnginfo=None, **inputs):
    """Call a generated class the way ComfyUI does: a fresh instance, FUNCTION with inputs and hidden values, inside
    ``torch.inference_mode()`` (ComfyUI's execution.py runs every node in it)."""
    cls = CLASSES[class_type]
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(prompt=prompt, extra_pnginfo=extra_pnginfo, unique_id=unique_id, **inputs)


def widget_defaults(class_type: str) -> dict:
    """The default of every widget input (what the editor fills in)."""
    types_ = CLASSES[class_type].INPUT_TYPES()
    return {name: opts["default"] for cat in ("required", "optional") for name, (_, opts) in
            types_.get(cat, {}).items() if "default" in opts}


# --------------------------------------------------------------------------------------------- conventions
def test_every_node_is_exposed_under_its_name_with_a_display_name():
    assert set(CLASSES) == set(REG.names()) and set(NAMES) == set(CLASSES)
    for name, cls in CLASSES.items():
        assert cls.__name__ == name and cls.NODE is REG[name]
        assert isinstance(NAMES[name], str) and NAMES[name].strip() == NAMES[name] != ""
    assert len(set(NAMES.values())) == len(NAMES), "display names must be unique within the pack"
    # names that ComfyUI's own nodes use are marked as ours
    assert not set(NAMES.values()) & comfy.COMFY_DISPLAY_NAMES
    assert NAMES["CollageLoadImage"] == "Load Image (Collage)" and NAMES["Generate"] == REG["Generate"].display_name


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_input_types_follow_comfyui_conventions(name):
    cls = CLASSES[name]
    types_ = cls.INPUT_TYPES()
    assert isinstance(types_, dict) and "required" in types_
    assert set(types_) <= {"required", "optional", "hidden"}
    seen: set[str] = set()
    for cat in ("required", "optional"):
        for inp_name, entry in types_.get(cat, {}).items():
            assert inp_name.isidentifier() and inp_name not in seen
            seen.add(inp_name)
            assert isinstance(entry, tuple) and len(entry) in (1, 2), (inp_name, entry)
            kind, opts = entry[0], (entry[1] if len(entry) == 2 else {})
            assert isinstance(opts, dict)
            assert set(opts) <= OPTION_KEYS, (inp_name, set(opts) - OPTION_KEYS)
            if "tooltip" in opts:
                assert isinstance(opts["tooltip"], str) and opts["tooltip"]
            for flag in ("forceInput", "multiline", "control_after_generate", "lazy"):
                assert isinstance(opts.get(flag, False), bool)
            if isinstance(kind, list):  # COMBO: the list of choices
                # an image picker lists the input folder, which may be empty (as ComfyUI's own Load Image)
                assert kind or opts.get("image_upload"), (inp_name, entry)
                assert all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in kind)
                assert len(set(kind)) == len(kind)
                assert not kind or opts.get("default", kind[0]) in kind
                assert not ({"min", "max", "step"} & set(opts))
                continue
            assert isinstance(kind, str) and (kind == "*" or TYPE_RE.match(kind)), kind
            if kind in ("INT", "FLOAT"):
                lo, hi = opts.get("min", -math.inf), opts.get("max", math.inf)
                assert lo <= hi
                if "step" in opts:
                    assert opts["step"] > 0
                if "default" in opts:
                    d = opts["default"]
                    assert isinstance(d, int if kind == "INT" else (int, float)) and not isinstance(d, bool)
                    assert lo <= d <= hi
                if kind == "INT":
                    assert all(isinstance(opts[k], int) for k in ("min", "max", "step") if k in opts)
            elif kind == "STRING":
                assert isinstance(opts.get("default", ""), str)
            elif kind == "BOOLEAN":
                assert isinstance(opts.get("default", False), bool)
            else:  # link-only types: no widget options
                assert not ({"default", "min", "max", "step", "multiline"} & set(opts)), (inp_name, opts)
            if opts.get("control_after_generate"):
                assert kind == "INT"
    hidden = types_["hidden"]
    assert set(hidden.values()) <= HIDDEN_TYPES
    assert {"PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID"} <= set(hidden.values())
    assert not (set(hidden) & seen)
    # ... and exactly the declaration's inputs, less the output folder (ComfyUI's own folder is used)
    declared = [i.name for i in cls.NODE.inputs if i.name != "output_dir"]
    assert list(types_["required"]) + list(types_.get("optional", {})) == \
        [n for n in declared if not cls.NODE.input_map[n].optional] + \
        [n for n in declared if cls.NODE.input_map[n].optional]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_outputs_function_category_and_flags(name):
    cls, node = CLASSES[name], REG[name]
    assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) and TYPE_RE.match(t)
                                                       for t in cls.RETURN_TYPES)
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert cls.RETURN_TYPES == tuple(o.type for o in node.outputs)
    assert isinstance(cls.FUNCTION, str) and callable(getattr(cls, cls.FUNCTION))
    sig = inspect.signature(getattr(cls(), cls.FUNCTION))
    takes_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for n in list(cls.INPUT_TYPES()["required"]) + list(cls.INPUT_TYPES().get("optional", {})) + \
            list(cls.INPUT_TYPES()["hidden"]):
        assert takes_all or n in sig.parameters
    assert isinstance(cls.CATEGORY, str) and cls.CATEGORY.startswith("neural-collage")
    assert not cls.CATEGORY.endswith("/") and "//" not in cls.CATEGORY
    assert cls.OUTPUT_NODE is bool(node.output_node)
    assert cls.OUTPUT_NODE or cls.RETURN_TYPES, "a node without outputs must be an output node"
    assert isinstance(cls.DESCRIPTION, str) and cls.DESCRIPTION
    for hook in ("IS_CHANGED", "VALIDATE_INPUTS"):
        if hasattr(cls, hook):
            assert inspect.ismethod(getattr(cls, hook)) and getattr(cls, hook).__self__ is cls  # classmethod


def test_every_input_type_is_produced_by_some_node():
    produced = {t for cls in CLASSES.values() for t in cls.RETURN_TYPES}
    for name, cls in CLASSES.items():
        for cat in ("required", "optional"):
            for inp_name, (kind, *_) in cls.INPUT_TYPES().get(cat, {}).items():
                if isinstance(kind, str) and kind not in WIDGET_TYPES:
                    assert kind in produced or kind in CORE_TYPES, f"{name}.{inp_name}: nothing outputs {kind}"


def test_savers_are_output_nodes_without_an_output_folder_widget():
    savers = [n for n in REG if "output_dir" in n.input_map]
    assert {n.name for n in savers} >= {"CollageSaveImage", "SaveZ"}
    for node in savers:
        assert CLASSES[node.name].OUTPUT_NODE is True
        assert "output_dir" not in CLASSES[node.name].INPUT_TYPES()["required"]


def test_hooks_exist_where_the_declarations_have_them():
    for name, cls in CLASSES.items():
        node = REG[name]
        reads_files = any(i.file for i in node.inputs)
        own_fingerprint = node.fingerprint is not Node.fingerprint
        assert hasattr(cls, "IS_CHANGED") == (reads_files or node.always_run or own_fingerprint)
        assert hasattr(cls, "VALIDATE_INPUTS") == (node.validate is not Node.validate)


def test_validate_inputs_names_exactly_the_inputs_its_hook_checks():
    spec = inspect.getfullargspec(CLASSES["LoadGenerator"].VALIDATE_INPUTS)  # what ComfyUI reads
    assert spec.args == ["cls", "model", "device"] and spec.varkw is None
    spec = inspect.getfullargspec(CLASSES["CollageLoadMask"].VALIDATE_INPUTS)
    assert spec.args == ["cls", "path"] and spec.varkw is None


def test_no_top_level_package_named_nodes():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "nodes" not in cfg["packages"] and cfg["package-dir"]["collage_nodes"] == "nodes"
    src = (ROOT / "__init__.py").read_text()
    assert "from .nodes import comfy" in src and "sys.path" not in src.replace("``sys.path``", "")


# ----------------------------------------------------------------------------------------- loading in ComfyUI
def _load_like_comfyui(folder: Path):
    """What ComfyUI's nodes.load_custom_node does with a folder in custom_nodes: import it as a package, then
    ``hasattr``/``getattr`` its mappings (which builds them: the folder's ``__init__`` makes them on first access)."""
    name = str(folder).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        for attr in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
            assert hasattr(module, attr) and getattr(module, attr) is not None
        assert not hasattr(module, "comfy_entrypoint")  # ComfyUI's V3 check must see plain absence
    finally:
        sys.modules.pop(name, None)
        for sub in [m for m in sys.modules if m.startswith(name + ".")]:
            sys.modules.pop(sub)
    return module


def test_the_folder_loads_as_a_custom_node_package_without_side_effects(monkeypatch):
    fake_comfy_nodes = types.ModuleType("nodes")  # ComfyUI's own top-level module of that name
    monkeypatch.setitem(sys.modules, "nodes", fake_comfy_nodes)
    path_before = list(sys.path)
    out = io.StringIO()
    with redirect_stdout(out):
        module = _load_like_comfyui(ROOT)
    assert out.getvalue() == "" and sys.path == path_before
    assert sys.modules["nodes"] is fake_comfy_nodes
    assert set(module.NODE_CLASS_MAPPINGS) == set(REG.names())
    assert module.NODE_DISPLAY_NAME_MAPPINGS == NAMES
    for name, cls in module.NODE_CLASS_MAPPINGS.items():
        assert cls.INPUT_TYPES() == CLASSES[name].INPUT_TYPES()


def _pictures_the_templates_name() -> set[str]:
    """Every ``examples/...`` picture a saved workflow's widgets name (what Load Image previews from the input
    folder)."""
    names = set()
    for path in (ROOT / "workflows").glob("*.json"):
        for node in json.loads(path.read_text())["nodes"]:
            names |= {v for v in node.get("widgets_values") or [] if isinstance(v, str) and v.startswith("examples/")}
    return names


def test_loading_in_comfyui_copies_the_example_pictures_into_its_input_folder(comfy_stubs, monkeypatch):
    """photo_edit's Load Image names examples/chelsea.png: after the pack loads, ComfyUI's input folder has every
    picture the templates name; a file that was there already (the user's) is kept as it was."""
    names = _pictures_the_templates_name()
    assert "examples/chelsea.png" in names, names
    mine = comfy_stubs.input / "examples" / "openmoji_dog.png"
    mine.parent.mkdir()
    mine.write_bytes(b"the user's own picture")
    monkeypatch.setitem(sys.modules, "nodes", types.ModuleType("nodes"))  # ComfyUI's own top-level module
    _load_like_comfyui(ROOT)
    for name in names:
        copied, src = comfy_stubs.input / name, ROOT / "workflows" / name
        assert copied.is_file(), name
        if copied != mine:
            assert copied.read_bytes() == src.read_bytes(), name
    assert mine.read_bytes() == b"the user's own picture"
    assert sorted(p.name for p in (comfy_stubs.input / "examples").iterdir()) == \
        sorted(p.name for p in (ROOT / "workflows" / "examples").iterdir())


def test_an_input_folder_that_cannot_be_written_does_not_stop_the_pack(comfy_stubs, monkeypatch, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where ComfyUI's input folder should be")
    sys.modules["folder_paths"].get_input_directory = lambda: str(blocker)
    monkeypatch.setitem(sys.modules, "nodes", types.ModuleType("nodes"))
    caplog.set_level("WARNING", logger="neural-collage")
    module = _load_like_comfyui(ROOT)
    assert set(module.NODE_CLASS_MAPPINGS) == set(REG.names())
    assert "example pictures were not copied into ComfyUI's input folder" in caplog.text


def test_serve_and_comfyui_copy_the_example_pictures_with_one_function(tmp_path):
    from collage_app import serve
    from collage_nodes.example_inputs import copy_example_inputs

    src = tmp_path / "examples"
    src.mkdir()
    (src / "a.png").write_bytes(b"a")
    (src / "notes.md").write_text("where a.png comes from")
    (src / "script.py").write_text("not a picture")
    server = SimpleNamespace(input_dir=str(tmp_path / "input"))
    assert serve.seed_example_inputs(server, src) == [str(tmp_path / "input" / "examples" / n)
                                                      for n in ("a.png", "notes.md")]
    assert copy_example_inputs(src, tmp_path / "input") == []  # nothing twice, nothing replaced
    assert not (tmp_path / "input" / "examples" / "script.py").exists()


_FALLBACK = r"""
import importlib.util, json, sys
# drop the editable install's finder: collage_core / collage_engine / collage_nodes are "not installed"
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                    and "editable" not in getattr(f, "__name__", "").lower()]
assert importlib.util.find_spec("collage_engine") is None, "could not hide the installed package"
root = sys.argv[1]
spec = importlib.util.spec_from_file_location(root.replace(".", "_x_"), root + "/__init__.py")
m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)
n = len(m.NODE_CLASS_MAPPINGS)  # what ComfyUI reads right after the import; it loads the libraries
import collage_engine, collage_core
print(json.dumps({"n": n, "engine": collage_engine.__file__, "core": collage_core.__file__,
                  "collage_nodes": "collage_nodes" in sys.modules}))
"""


def test_the_folder_loads_without_the_package_installed(tmp_path):
    """A folder installed by ComfyUI-Manager / the Registry (requirements only): the libraries come from it."""
    res = subprocess.run([sys.executable, "-c", _FALLBACK, str(ROOT)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if "could not hide the installed package" in res.stderr:
        pytest.skip("the package is installed in a way this test cannot hide (not an editable install)")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["n"] == len(REG)
    assert Path(info["engine"]).resolve().is_relative_to(ROOT) and Path(info["core"]).resolve().is_relative_to(ROOT)
    assert info["collage_nodes"] is False  # the folder's nodes/ is used, as a sub-package


# ------------------------------------------------------------------------------------------- running nodes
def _collage(stubs, prompt=None, extra=None, dtype="float32"):
    g = run_node("LoadGenerator", "1", model=str(TINY), device="cpu", dtype=dtype)[0]
    z = run_node("SampleZ", "2", generator=g, seed=7, batch=2, truncation=0.0)[0]
    cmap = run_node("ClassMap", "3", generator=g, base_class="dog", layer_start=0, layer_end=-1)[0]
    mask = run_node("CollageEllipseMask", "6", **widget_defaults("CollageEllipseMask"))[0]
    cmap = run_node("PaintClass", "8", class_map=cmap, mask=mask, class_name="cat", strength=1.0)[0]
    images = run_node("Generate", "9", generator=g, z=z, class_map=cmap, combine="pairwise")[0]
    saved = run_node("CollageSaveImage", "10", prompt=prompt, extra_pnginfo=extra, images=images,
                     filename_prefix="collage/test")
    return g, images, saved


def test_a_collage_runs_through_the_adapter_like_in_the_engine(comfy_stubs):
    prompt = {"10": {"class_type": "CollageSaveImage", "inputs": {"filename_prefix": "collage/test"}}}
    extra = {"workflow": {"nodes": [], "links": [], "version": 0.4}}
    g, images, saved = _collage(comfy_stubs, prompt, extra)
    assert images.device.type == "cpu" and images.dtype == torch.float32 and images.shape == (2, 64, 64, 3)
    # the same graph in our engine gives the same pixels
    gr = Graph(REG)
    G = gr.node("LoadGenerator", model=str(TINY), device="cpu", dtype="float32")
    cmap = gr.node("PaintClass", class_map=gr.node("ClassMap", generator=G, base_class="dog"),
                   mask=gr.node("CollageEllipseMask"), class_name="cat", strength=1.0)
    img = gr.node("Generate", generator=G, z=gr.node("SampleZ", generator=G, seed=7, batch=2), class_map=cmap)
    res = collage_nodes.engine().run(gr, targets=[img])
    assert res.ok, res.error
    # ComfyUI runs nodes under torch.inference_mode(), our engine does not: kernels may round differently (seen
    # once in a full run: 1.4e-5), so the same pixels within 1e-4 (0.03 grey levels)
    torch.testing.assert_close(res[img][0].cpu(), images, atol=1e-4, rtol=0)
    # the saver writes into ComfyUI's output folder and returns ComfyUI's ui entries
    assert set(saved) == {"ui", "result"} and saved["result"] == ()
    entries = saved["ui"]["images"]
    assert [e["filename"] for e in entries] == ["test_00001.png", "test_00002.png"]
    assert all(e == {"filename": e["filename"], "subfolder": "collage", "type": "output"} for e in entries)
    png = Image.open(comfy_stubs.output / "collage" / "test_00001.png")
    assert json.loads(png.text["prompt"]) == prompt and json.loads(png.text["workflow"]) == extra["workflow"]
    assert np.array_equal(np.asarray(png), (images[0].numpy() * 255).round().astype(np.uint8)) or \
        np.abs(np.asarray(png).astype(int) - images[0].numpy() * 255).max() <= 1


def test_progress_reaches_comfyui_progress_bars(comfy_stubs):
    _collage(comfy_stubs)
    bars = [b for b in comfy_stubs.bars if b.node_id == "9"]  # Generate reports per rendered chunk
    assert bars and bars[0].updates and bars[0].updates[-1][0] == bars[0].updates[-1][1] == bars[0].total


def test_cancel_in_comfyui_interrupts_a_running_node(comfy_stubs):
    g = run_node("LoadGenerator", model=str(TINY), device="cpu", dtype="float32")[0]
    z = run_node("SampleZ", generator=g, seed=1, batch=1, truncation=0.0)[0]
    cmap = run_node("ClassMap", generator=g, base_class="dog", layer_start=0, layer_end=-1)[0]
    comfy_stubs.interrupt = True
    with pytest.raises(InterruptProcessingException):
        run_node("Generate", "9", generator=g, z=z, class_map=cmap, combine="pairwise")
    assert comfy_stubs.interrupt is False  # ComfyUI's flag was consumed, as in ComfyUI
    ctx = comfy.ComfyContext("5", "Test")
    comfy_stubs.interrupt = True
    with pytest.raises(InterruptProcessingException):
        list(ctx.iterate(range(3)))


def test_node_errors_name_the_input(comfy_stubs):
    g = run_node("LoadGenerator", model=str(TINY), device="cpu", dtype="float32")[0]
    with pytest.raises(ValueError, match=r"^input 'base_class': .*giraffe"):
        run_node("ClassMap", generator=g, base_class="giraffe", layer_start=0, layer_end=-1)
    with pytest.raises(ValueError, match=r"^input 'model': "):
        run_node("LoadGenerator", model=str(ROOT / "README.md"), device="cpu", dtype="float32")


def test_the_same_mistake_reads_the_same_in_comfyui_and_on_the_command_line(comfy_stubs, tmp_path, capsys):
    """One user-error type: ComfyUI shows the exception's text, the CLI prints it after naming the node."""
    from collage_app.cli import main
    from collage_engine import NodeInputError

    g = run_node("LoadGenerator", model=str(TINY), device="cpu", dtype="float32")[0]
    with pytest.raises(NodeInputError) as raised:
        run_node("ClassMap", generator=g, base_class="giraffe", layer_start=0, layer_end=-1)
    assert raised.value.input_name == "base_class" and "Traceback" not in str(raised.value)
    wf = ROOT / "workflows" / "class_collage.json"
    code = main(["run", str(wf), "--set", f"Generator.model={TINY}", "--set", "Base class.base_class=giraffe",
                 "--out", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    # the command line now finds it before running (the model's labels are read from its header): same words
    assert code == 1 and f"input 'base_class': {raised.value.message}" in err, err


def test_nodes_run_outside_comfyuis_inference_mode(comfy_stubs):
    """Our weight caches need version counters and projection needs autograd; inputs from ComfyUI's own nodes are
    inference tensors, copied before use."""
    g = run_node("LoadGenerator", model=str(TINY), device="cpu", dtype="float32")[0]
    assert not any(p.is_inference() for p in g.parameters())
    with torch.inference_mode():
        comfy_mask = torch.zeros(1, 8, 8)  # e.g. from ComfyUI's LoadImage
        comfy_image = torch.rand(1, 8, 8, 3)
    assert comfy_mask.is_inference()
    inverted = run_node("CollageInvertMask", mask=comfy_mask)[0]
    assert torch.equal(inverted, torch.ones(1, 8, 8)) and comfy_mask.abs().sum() == 0
    batch = run_node("CollageImageBatch", image_a=comfy_image, image_b=comfy_image)[0]
    assert batch.shape == (2, 8, 8, 3)


def test_images_and_masks_leave_as_float32_on_the_cpu(comfy_stubs):
    _, images, _ = _collage(comfy_stubs, dtype="bfloat16")
    assert images.dtype == torch.float32 and images.device.type == "cpu"
    assert comfy._to_comfy("MASK", torch.ones(1, 4, 4, dtype=torch.float64)).dtype == torch.float32
    marker = object()
    assert comfy._to_comfy("GENERATOR", marker) is marker


def test_generators_are_kept_across_prompts_until_the_file_changes(comfy_stubs, tmp_path):
    model = tmp_path / "g.safetensors"
    model.write_bytes(TINY.read_bytes())
    a = run_node("LoadGenerator", model=str(model), device="cpu", dtype="float32")[0]
    assert run_node("LoadGenerator", "other", model=str(model), device="cpu", dtype="float32")[0] is a
    assert run_node("LoadGenerator", model=str(model), device="cpu", dtype="bfloat16")[0] is not a
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    b = run_node("LoadGenerator", model=str(model), device="cpu", dtype="float32")[0]
    assert b is not a
    comfy.clear_loaded()
    assert run_node("LoadGenerator", model=str(model), device="cpu", dtype="float32")[0] is not b


def test_a_kept_biggan_keeps_the_truncation_it_was_asked_for(comfy_stubs, tmp_path):
    """BigGAN holds its truncation on the loaded model: 0.4 then 0.9 are two models, each with its own value."""
    from biggan_support import make_ours
    from collage_core import save_generator

    model = save_generator(make_ours(128, ch=4, seed=1, z_dim=16), tmp_path / "bg.safetensors")
    a = run_node("LoadGenerator", model=str(model), device="cpu", dtype="float32", truncation=0.4)[0]
    b = run_node("LoadGenerator", model=str(model), device="cpu", dtype="float32", truncation=0.9)[0]
    assert b is not a and (a.truncation, b.truncation) == (0.4, 0.9)
    assert run_node("LoadGenerator", model=str(model), device="cpu", dtype="float32", truncation=0.4)[0] is a


def test_is_changed_follows_files_and_fingerprints(comfy_stubs, tmp_path):
    mask = tmp_path / "m.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(mask)
    cls = CLASSES["CollageLoadMask"]
    kw = dict(path=str(mask), channel="luminance", invert=False, threshold=0.0,
              prompt={}, extra_pnginfo=None, unique_id="4")  # ComfyUI passes the hidden values too
    first = cls.IS_CHANGED(**kw)
    assert first == cls.IS_CHANGED(**kw) and isinstance(first, str)
    st = mask.stat()
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert cls.IS_CHANGED(**kw) != first
    # a relative path is found in ComfyUI's input folder
    Image.fromarray(np.full((8, 8), 255, np.uint8), "L").save(comfy_stubs.input / "rel.png")
    assert cls.IS_CHANGED(**{**kw, "path": "rel.png"}) != cls.IS_CHANGED(**{**kw, "path": "missing.png"})
    m = run_node("CollageLoadMask", path="rel.png", channel="luminance", invert=False, threshold=0.0)[0]
    assert m.shape == (1, 8, 8) and float(m.min()) == 1.0
    # Load Generator's own fingerprint hook (size and mtime of the checkpoint it names)
    g = CLASSES["LoadGenerator"]
    assert g.IS_CHANGED(model=str(TINY), device="cpu", dtype="float32") != \
        g.IS_CHANGED(model=str(tmp_path / "none.safetensors"), device="cpu", dtype="float32")


def refusal(hook, **given) -> str:
    """The message a validation hook refuses ``given`` with, as ComfyUI gets it: returned when ComfyUI passed one
    input (its error then names that input), raised as ``InputsRefused`` when it passed several (a returned message
    would come back once per input)."""
    if len(given) == 1:
        msg = hook(**given)
        assert isinstance(msg, str), msg
        return msg
    with pytest.raises(comfy.InputsRefused) as e:
        hook(**given)
    return str(e.value)


def test_validate_inputs_runs_the_declared_checks(comfy_stubs):
    v = CLASSES["LoadGenerator"].VALIDATE_INPUTS
    assert v(model=str(TINY), device="cpu") is True
    assert v(model=None, device=None) is True  # linked inputs reach VALIDATE_INPUTS as None
    assert refusal(v, model="no-such-model", device="cpu").startswith("input 'model':")
    msg = refusal(v, model=str(TINY), device="tpu")  # ComfyUI skips its list check for inputs VALIDATE_INPUTS takes
    assert msg.startswith("input 'device':") and "not in" in msg
    layer = CLASSES["LayerRangeSweep"].VALIDATE_INPUTS
    assert layer(mode="custom", custom="0-1, 2-3") is True
    assert refusal(layer, mode="custom", custom="banana").startswith("input 'custom':")
    assert CLASSES["CollageLoadMask"].VALIDATE_INPUTS(path="nothing-here.png").startswith("input 'path':")


def test_outside_comfyui_the_classes_still_run(tmp_path, monkeypatch):
    """No ComfyUI modules: progress goes nowhere, savers use their declared folder."""
    for name in ("comfy", "comfy.utils", "comfy.model_management", "folder_paths", "comfy_execution.utils"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.chdir(tmp_path)
    image = torch.zeros(1, 8, 8, 3)
    saved = run_node("CollageSaveImage", images=image, filename_prefix="x")
    assert (tmp_path / "output" / "x_00001.png").is_file() and saved["ui"]["images"][0]["filename"] == "x_00001.png"


# --------------------------------------------------------------------------------- model dropdowns (V1 and V3)
@pytest.fixture
def model_folder(comfy_stubs, tmp_path, monkeypatch):
    """ComfyUI's ``folder_paths`` model-folder functions over ``tmp/models``, with a generator under
    ``neural_collage/sub``, a discriminator, a BigGAN reference folder and a file of another extension."""
    fp = sys.modules["folder_paths"]
    models = tmp_path / "models"
    folder = models / "neural_collage"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "g.safetensors").write_bytes(TINY.read_bytes())
    (folder / "d.safetensors").write_bytes((TINY.parent / "tiny_discriminator.safetensors").read_bytes())
    (folder / "notes.txt").write_text("not a checkpoint")
    (folder / "biggan" / "ref").mkdir(parents=True)
    (folder / "biggan" / "ref" / "config.json").write_text("{}")
    (folder / "biggan" / "ref" / "pytorch_model.bin").write_bytes(b"")
    extra = tmp_path / "extra"  # a folder extra_model_paths.yaml listed under neural_collage: before us
    fp.models_dir = str(models)
    fp.folder_names_and_paths = {"neural_collage": ([str(extra)], set())}

    def files(name):
        paths, exts = fp.folder_names_and_paths[name]
        out = []
        for root in paths:
            for current, _dirs, names in os.walk(root):
                out += [os.path.relpath(os.path.join(current, n), root) for n in names
                        if not exts or os.path.splitext(n)[1] in exts]
        return sorted(out)

    def full_path(name, filename):
        for root in fp.folder_names_and_paths[name][0]:
            if os.path.isfile(os.path.join(root, filename)):
                return os.path.join(root, filename)
        return None

    fp.get_filename_list = files
    fp.get_full_path = full_path
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[name][0])
    return SimpleNamespace(fp=fp, folder=folder, extra=extra)


def test_model_inputs_are_dropdowns_of_embedded_models_and_the_model_folder(model_folder):
    from collage_core.models import list_embedded_models

    gen = CLASSES["LoadGenerator"].INPUT_TYPES()["required"]["model"]
    disc = CLASSES["LoadDiscriminator"].INPUT_TYPES()["required"]["model"]
    enc = CLASSES["LoadEncoder"].INPUT_TYPES()["required"]["model"]
    embedded = list_embedded_models()
    assert gen[0][:1 + len(embedded)][0] == gen[1]["default"] == "emoji-animals" and set(embedded) <= set(gen[0])
    assert {"biggan-deep-256", "sub/g.safetensors", "biggan/ref"} <= set(gen[0])
    assert "d.safetensors" not in gen[0] and "notes.txt" not in gen[0]  # another kind; not a checkpoint
    assert "d.safetensors" in disc[0] and "sub/g.safetensors" not in disc[0] and "biggan/ref" not in disc[0]
    assert not {"d.safetensors", "sub/g.safetensors", "biggan-deep-256"} & set(enc[0])
    assert "models/neural_collage" in gen[1]["tooltip"]
    # the folder is registered first, the one extra_model_paths.yaml gave is kept, our extensions are set
    paths, exts = model_folder.fp.folder_names_and_paths["neural_collage"]
    assert paths == [str(model_folder.folder), str(model_folder.extra)] and {".safetensors", ".npz"} <= exts


def test_a_dropdown_name_resolves_into_the_model_folder_and_typed_paths_still_pass(model_folder, tmp_path):
    v = CLASSES["LoadGenerator"].VALIDATE_INPUTS
    assert v(model="sub/g.safetensors", device="cpu") is True
    assert v(model=str(TINY), device="cpu") is True  # not in the list: the node validates it (ComfyUI skips)
    assert v(model="emoji-animals", device="cpu") is True
    msg = refusal(v, model="sub/none.safetensors", device="cpu")
    assert msg.startswith("input 'model':") and "sub/none.safetensors" in msg
    assert not Path("sub/g.safetensors").exists()  # only the model folder has it
    g = run_node("LoadGenerator", model="sub/g.safetensors", device="cpu", dtype="float32")[0]
    assert g.class_names and [key[2] for key in comfy._loaded] == [str(model_folder.folder / "sub" / "g.safetensors")]
    d = run_node("LoadDiscriminator", model="d.safetensors", device="cpu", dtype="float32")[0]
    assert d is not None
    fp_a = CLASSES["LoadGenerator"].IS_CHANGED(model="sub/g.safetensors", device="cpu", dtype="float32")
    assert fp_a == CLASSES["LoadGenerator"].IS_CHANGED(model=str(model_folder.folder / "sub" / "g.safetensors"),
                                                        device="cpu", dtype="float32")
    # the painter's labels route resolves the same names
    from collage_nodes.comfy_models import resolve_model

    assert resolve_model("biggan/ref") == str(model_folder.folder / "biggan" / "ref")
    assert resolve_model("emoji-animals") == "emoji-animals" and resolve_model("nothing") == "nothing"


# ------------------------------------------------------------------------------------------ ComfyUI's V3 API
def _signature(*names):
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("id", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    return inspect.Signature(params)


def _fake_v3_api(fail: bool = False):
    """A stand-in for ``comfy_api.latest`` (its ``io`` and ``ComfyExtension``), enough to build and call our classes:
    inputs record their keywords; ``v1()`` gives the entry ComfyUI's listing would hold."""
    import enum

    io_mod = types.ModuleType("comfy_api.latest.io")
    v1_names = {"force_input": "forceInput"}

    class Hidden(str, enum.Enum):
        unique_id = "UNIQUE_ID"
        prompt = "PROMPT"
        extra_pnginfo = "EXTRA_PNGINFO"
        dynprompt = "DYNPROMPT"

    class UploadType(str, enum.Enum):
        image = "image_upload"

    def comfy_type(io_type, *keywords):
        class In:
            def __init__(self, id, **kw):
                self.id, self.optional, self.io_type = id, kw.pop("optional", False), io_type
                self.kw = {k: v for k, v in kw.items() if v is not None}
                self.extra_dict = {}

            def v1(self):
                opts = {v1_names.get(k, k): v for k, v in self.kw.items() if k not in ("options", "upload")}
                if "upload" in self.kw:
                    opts[self.kw["upload"].value] = True
                opts.update(self.extra_dict)
                return (list(self.kw["options"]) if io_type == "COMBO" else io_type), opts

        In.__init__.__signature__ = _signature("optional", "tooltip", "lazy", *keywords)

        class Out:
            def __init__(self, id=None, display_name=None, tooltip=None):
                self.id, self.display_name, self.tooltip, self.io_type = id, display_name, tooltip, io_type

        return SimpleNamespace(Input=In, Output=Out, io_type=io_type)

    io_mod.Int = comfy_type("INT", "default", "min", "max", "step", "control_after_generate", "force_input")
    io_mod.Float = comfy_type("FLOAT", "default", "min", "max", "step", "round", "force_input")
    io_mod.String = comfy_type("STRING", "default", "multiline", "placeholder", "force_input")
    io_mod.Boolean = comfy_type("BOOLEAN", "default", "label_on", "label_off", "force_input")
    io_mod.Combo = comfy_type("COMBO", "options", "default", "control_after_generate", "upload")
    io_mod.Image, io_mod.Mask, io_mod.AnyType = comfy_type("IMAGE"), comfy_type("MASK"), comfy_type("*")
    io_mod.Custom = lambda name: comfy_type(name)
    io_mod.Hidden, io_mod.UploadType = Hidden, UploadType

    class Schema(SimpleNamespace):
        def __init__(self, **kw):
            if fail:
                raise ValueError("schema refused")
            super().__init__(**kw)

    class NodeOutput:
        def __init__(self, *args, ui=None):
            self.args, self.ui = args, ui

    class ComfyNode:
        hidden = None

        @classmethod
        def GET_SCHEMA(cls):
            return cls.define_schema()

    class ComfyExtension:
        async def get_node_list(self):
            raise NotImplementedError

    io_mod.Schema, io_mod.NodeOutput, io_mod.ComfyNode = Schema, NodeOutput, ComfyNode
    latest = types.ModuleType("comfy_api.latest")
    latest.io, latest.ComfyExtension = io_mod, ComfyExtension
    return latest


@pytest.fixture
def v3_api(monkeypatch):
    """``comfy_api.latest`` importable (the stand-in above), as in ComfyUI >= v0.3.47."""
    latest = _fake_v3_api()
    pkg = types.ModuleType("comfy_api")
    pkg.__path__ = []
    pkg.latest = latest
    monkeypatch.setitem(sys.modules, "comfy_api", pkg)
    monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
    monkeypatch.delenv("NEURAL_COLLAGE_COMFYUI_API", raising=False)
    return latest


def _v3_classes(io_mod) -> dict:
    from collage_nodes.comfy_v3 import v3_node_list

    return {cls.__name__: cls for cls in v3_node_list(REG, io_mod)}


def _run_v3(cls, unique_id="1", prompt=None, extra_pnginfo=None, **inputs):
    """Call a V3 class as ComfyUI does: on a clone whose ``hidden`` holds the hidden values, in inference mode."""
    clone = type(cls.__name__, (cls,), {"hidden": SimpleNamespace(prompt=prompt, extra_pnginfo=extra_pnginfo,
                                                                  unique_id=unique_id)})
    with torch.inference_mode():
        return clone.execute(**inputs)


def test_v3_schemas_declare_what_the_v1_classes_declare(v3_api):
    v3 = _v3_classes(v3_api.io)
    assert set(v3) == set(CLASSES)
    for name, cls in v3.items():
        v1, node = CLASSES[name], REG[name]
        schema = cls.define_schema()
        assert issubclass(cls, v3_api.io.ComfyNode) and cls.NODE is node
        assert (schema.node_id, schema.display_name, schema.category, schema.description) == \
            (name, NAMES[name], v1.CATEGORY, v1.DESCRIPTION)
        assert schema.is_output_node is v1.OUTPUT_NODE and schema.not_idempotent is bool(node.always_run)
        assert [h.value for h in schema.hidden] == list(v1.INPUT_TYPES()["hidden"].values())
        types_ = v1.INPUT_TYPES()
        for cat, optional in (("required", False), ("optional", True)):
            mine = [i for i in schema.inputs if i.optional is optional]
            assert [i.id for i in mine] == list(types_.get(cat, {})), name
            for inp in mine:  # same type (a COMBO's choices), same widget options
                assert inp.v1() == types_[cat][inp.id], (name, inp.id)
        assert [o.io_type for o in schema.outputs] == list(v1.RETURN_TYPES)
        assert [o.display_name for o in schema.outputs] == list(v1.RETURN_NAMES)
        assert [o.tooltip or "" for o in schema.outputs] == list(v1.OUTPUT_TOOLTIPS)
        ids = [i.id for i in schema.inputs] + [o.id for o in schema.outputs]
        assert len(ids) == len(set(ids)), f"{name}: V3 ids must be unique across inputs and outputs"
        assert hasattr(cls, "fingerprint_inputs") == hasattr(v1, "IS_CHANGED")
    # custom types are made once per class; IMAGE and MASK are ComfyUI's own
    gen = v3["Generate"].define_schema()
    assert gen.outputs[0].io_type == "IMAGE" and {i.io_type for i in gen.inputs} >= {"GENERATOR", "LATENT_Z"}


def test_v3_validate_inputs_takes_the_hook_inputs_models_and_every_combo(v3_api, comfy_stubs):
    v3 = _v3_classes(v3_api.io)
    spec = inspect.getfullargspec(v3["LoadGenerator"].validate_inputs)  # what ComfyUI reads
    assert spec.args == ["cls", "model", "device", "dtype"] and spec.varkw is None
    v = v3["LoadGenerator"].validate_inputs
    assert v(model=str(TINY), device="cpu", dtype="float32") is True
    assert v(model=None, device=None, dtype=None) is True  # linked inputs arrive as None
    # the same texts as V1, and a COMBO value outside its options (ComfyUI does not check V3 COMBOs)
    assert refusal(v, model="no-such-model", device="cpu") == refusal(CLASSES["LoadGenerator"].VALIDATE_INPUTS,
                                                                      model="no-such-model", device="cpu")
    msg = refusal(v, model=str(TINY), device="cpu", dtype="float64")
    assert msg.startswith("input 'dtype':") and "float32" in msg
    msg = refusal(v, model=str(TINY), device="tpu", dtype="float64")  # every bad value it took, in one message
    assert "input 'device':" in msg and "input 'dtype':" in msg
    # a node without a validate hook but with COMBOs gets one; a node with neither gets none
    assert inspect.getfullargspec(v3["Generate"].validate_inputs).args == ["cls", "combine"]
    assert v3["Generate"].validate_inputs(combine="sideways").startswith("input 'combine':")
    assert not hasattr(v3["CollageInvertMask"], "validate_inputs")


def _comfyui_node_errors(hook, prompt_inputs: dict) -> list[tuple[str | None, str]]:
    """A stand-in for how ComfyUI (``execution.validate_inputs``, v0.3.64; V1 and V3 alike) reports a node's
    validation hook: the hook gets the prompt's inputs that its signature names (links as None); an answer other
    than True becomes one error per input passed, an exception one error for the node. ``validate_prompt`` then logs
    one line per error. Returns ``(input_name or None, details)`` per error."""
    passed = {k: v for k, v in prompt_inputs.items() if k in inspect.getfullargspec(hook).args}
    try:
        answer = hook(**passed)
    except Exception as e:  # noqa: BLE001 - ComfyUI catches everything here
        return [(None, str(e))]
    return [] if answer is True else [(name, f"{name} - {answer}") for name in passed]


def test_one_bad_input_is_one_error_and_one_log_line(v3_api, comfy_stubs):
    """Under V3 a bad model on Load Generator came back as three errors (the hook takes model, device and dtype),
    so ComfyUI logged it three times; now once, through V3 and V1."""
    v3 = _v3_classes(v3_api.io)
    bad = {"model": "no-such-model", "device": "cpu", "dtype": "float32"}
    for hook in (v3["LoadGenerator"].validate_inputs, CLASSES["LoadGenerator"].VALIDATE_INPUTS):
        assert len([n for n in bad if n in inspect.getfullargspec(hook).args]) >= 2  # ComfyUI passes several
        errors = _comfyui_node_errors(hook, bad)
        assert len(errors) == 1 and errors[0][1].startswith("input 'model':"), errors
        assert _comfyui_node_errors(hook, {**bad, "model": str(TINY)}) == []
        assert _comfyui_node_errors(hook, {**bad, "model": None}) == []  # a link reaches the hook as None
    # a hook that takes one input still answers with a message, so ComfyUI's error names that input
    errors = _comfyui_node_errors(v3["Generate"].validate_inputs, {"combine": "sideways", "seed": 1})
    assert len(errors) == 1 and errors[0][0] == "combine" and "input 'combine':" in errors[0][1]


def test_v3_fingerprints_equal_v1s(v3_api, comfy_stubs, tmp_path):
    v3 = _v3_classes(v3_api.io)
    mask = tmp_path / "m.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(mask)
    kw = dict(path=str(mask), channel="luminance", invert=False, threshold=0.0)
    assert v3["CollageLoadMask"].fingerprint_inputs(**kw) == CLASSES["CollageLoadMask"].IS_CHANGED(**kw)
    g = dict(model=str(TINY), device="cpu", dtype="float32")
    assert v3["LoadGenerator"].fingerprint_inputs(**g) == CLASSES["LoadGenerator"].IS_CHANGED(**g)
    always = [n for n in REG if n.always_run]
    for node in always:
        assert math.isnan(v3[node.name].fingerprint_inputs())


def test_v3_classes_run_like_the_v1_classes(v3_api, comfy_stubs):
    v3 = _v3_classes(v3_api.io)
    prompt = {"10": {"class_type": "CollageSaveImage", "inputs": {"filename_prefix": "v3/test"}}}
    extra = {"workflow": {"nodes": [], "links": [], "version": 0.4}}
    g = _run_v3(v3["LoadGenerator"], model=str(TINY), device="cpu", dtype="float32").args[0]
    z = _run_v3(v3["SampleZ"], generator=g, seed=7, batch=2, truncation=0.0).args[0]
    cmap = _run_v3(v3["ClassMap"], generator=g, base_class="dog", layer_start=0, layer_end=-1).args[0]
    images = _run_v3(v3["Generate"], "9", generator=g, z=z, class_map=cmap, combine="pairwise").args[0]
    assert images.dtype == torch.float32 and images.device.type == "cpu"
    assert any(b.node_id == "9" and b.updates for b in comfy_stubs.bars)  # progress bars on the node
    assert torch.equal(images, run_node("Generate", generator=g, z=z, class_map=cmap, combine="pairwise")[0])
    saved = _run_v3(v3["CollageSaveImage"], "10", prompt=prompt, extra_pnginfo=extra, images=images,
                    filename_prefix="v3/test")
    assert saved.args == () and [e["filename"] for e in saved.ui["images"]] == ["test_00001.png", "test_00002.png"]
    png = Image.open(comfy_stubs.output / "v3" / "test_00001.png")
    assert json.loads(png.text["prompt"]) == prompt and json.loads(png.text["workflow"]) == extra["workflow"]
    # the same error texts and Cancel
    with pytest.raises(ValueError, match=r"^input 'base_class': .*giraffe"):
        _run_v3(v3["ClassMap"], generator=g, base_class="giraffe", layer_start=0, layer_end=-1)
    comfy_stubs.interrupt = True
    with pytest.raises(InterruptProcessingException):
        _run_v3(v3["Generate"], generator=g, z=z, class_map=cmap, combine="pairwise")


def _load_folder(monkeypatch):
    """Import the repository folder as ComfyUI does; the module and what ComfyUI's checks see."""
    import asyncio

    monkeypatch.setitem(sys.modules, "nodes", types.ModuleType("nodes"))  # ComfyUI's own top-level module
    name = str(ROOT).replace(".", "_x_") + "_v3"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    seen = {"v1": hasattr(module, "NODE_CLASS_MAPPINGS"), "v3": hasattr(module, "comfy_entrypoint")}
    if seen["v3"]:
        assert inspect.iscoroutinefunction(module.comfy_entrypoint)
        extension = asyncio.run(module.comfy_entrypoint())
        seen["classes"] = asyncio.run(extension.get_node_list())
        seen["extension"] = extension
    for sub in [m for m in sys.modules if m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, sub)
    return module, seen


def test_the_folder_exports_v3_only_where_comfy_api_latest_imports(v3_api, monkeypatch, caplog):
    caplog.set_level("INFO", logger="neural-collage")
    module, seen = _load_folder(monkeypatch)
    assert seen["v3"] and not seen["v1"]  # ComfyUI would read NODE_CLASS_MAPPINGS first: it must be absent
    assert not hasattr(module, "NODE_DISPLAY_NAME_MAPPINGS")
    assert isinstance(seen["extension"], v3_api.ComfyExtension)
    assert sorted(c.__name__ for c in seen["classes"]) == sorted(REG.names())
    assert f"{len(REG)} nodes through ComfyUI's V3 node API" in caplog.text
    # forced back to V1
    monkeypatch.setenv("NEURAL_COLLAGE_COMFYUI_API", "v1")
    _, seen = _load_folder(monkeypatch)
    assert seen["v1"] and not seen["v3"]


def test_a_v3_api_that_refuses_our_schemas_falls_back_to_v1(monkeypatch, caplog):
    latest = _fake_v3_api(fail=True)
    pkg = types.ModuleType("comfy_api")
    pkg.__path__ = []
    monkeypatch.setitem(sys.modules, "comfy_api", pkg)
    monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
    monkeypatch.delenv("NEURAL_COLLAGE_COMFYUI_API", raising=False)
    _, seen = _load_folder(monkeypatch)
    assert seen["v1"] and not seen["v3"] and "schema refused" in caplog.text
    monkeypatch.setenv("NEURAL_COLLAGE_COMFYUI_API", "v3")  # forced: the failure is not hidden
    with pytest.raises(ValueError, match="schema refused"):
        _load_folder(monkeypatch)


def test_picture_inputs_are_comfyuis_image_pickers_that_take_any_path(comfy_stubs, tmp_path):
    """Load Image (Collage) / Load Mask: a COMBO of ComfyUI's input folder with its upload button and preview;
    the node validates the value itself, so a typed path or a picture next to the pack's workflows still runs."""
    from PIL import Image

    Image.new("RGB", (4, 4)).save(comfy_stubs.input / "up.png")
    for name in ("CollageLoadImage", "CollageLoadMask"):
        choices, opts = CLASSES[name].INPUT_TYPES()["required"]["path"]
        assert "up.png" in choices and opts.get("image_upload") is True, (name, choices, opts)
        assert "path" in inspect.getfullargspec(CLASSES[name].VALIDATE_INPUTS).args
    v = CLASSES["CollageLoadImage"].VALIDATE_INPUTS
    assert v(path="up.png") is True
    assert v(path=str(ROOT / "workflows" / "examples" / "chelsea.png")) is True  # not in the list: still fine
    assert v(path="examples/chelsea.png") is True  # found next to the pack's workflows
    assert v(path="nothing.png").startswith("input 'path':")
