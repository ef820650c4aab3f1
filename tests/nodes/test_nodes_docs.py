"""Generated files are current (docs/nodes.md, the help pages nodes/web/docs/<NODE>.md, the editor-format workflows),
and every node is fully declared (descriptions, ranges, categories, versions)."""

from __future__ import annotations

import json

import collage_nodes
from collage_app import docs
from collage_engine import Node
from nodes_support import ROOT


def test_generated_docs_and_ui_workflows_are_current():
    stale = docs.stale_files(ROOT)
    assert not stale, f"stale generated files {stale}: run python -m collage_app.docs"


def test_docs_cover_every_node_and_input():
    text = (ROOT / "docs" / "nodes.md").read_text()
    for cls in collage_nodes.registry():
        assert f"(`{cls.name}`)" in text
        for i in cls.inputs:
            assert i.description.replace("|", "\\|") in text


def test_every_node_has_a_help_page_in_comfyuis_place():
    """``WEB_DIRECTORY/docs/<class_type>.md`` (ComfyUI's node-help convention; WEB_DIRECTORY is nodes/web), no page
    without a node, each with the description, every input (type, default, range or choices, description), every
    output and the example workflows that use the node."""
    import tomllib

    from collage_engine import MISSING
    from collage_engine.registry import input_constraints, markdown_cell

    reg = collage_nodes.registry()
    pages = ROOT / "nodes" / "web" / "docs"
    assert {p.stem for p in pages.glob("*.md")} == set(reg.names())
    uses: dict[str, set[str]] = {}
    for wf in (ROOT / "workflows" / "api").glob("*.json"):
        for node in json.loads(wf.read_text()).values():
            uses.setdefault(node["class_type"], set()).add(wf.name)
    for cls in reg:
        text = (pages / f"{cls.name}.md").read_text()
        assert text.count(f"# {cls.display_name}\n") == 1 and cls.description in text, cls.name
        for i in cls.inputs:
            row = next(line for line in text.splitlines() if line.startswith(f"| {i.name} |")
                       or line.startswith(f"| {i.name} (optional) |"))
            assert f" {i.type}" in row and markdown_cell(i.description) in row, (cls.name, i.name)
            assert markdown_cell(input_constraints(i)) in row, (cls.name, i.name)
            if i.default is not MISSING and not isinstance(i.default, str):
                assert f"`{json.dumps(i.default)}`" in row, (cls.name, i.name)
        for o in cls.outputs:
            assert f"| {o.name} | {o.type} | {markdown_cell(o.description)} |" in text, (cls.name, o.name)
        for wf in uses.get(cls.name, ()):
            assert f"- `{wf}`, node " in text, (cls.name, wf)
    # the pages install with the package (ComfyUI serves WEB_DIRECTORY; so does neural-collage serve)
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "web/docs/*.md" in data["collage_nodes"]


def test_every_node_is_fully_declared():
    reg = collage_nodes.registry()
    assert len(reg) >= 20
    for cls in reg:
        assert issubclass(cls, Node)
        assert cls.category.startswith("neural-collage/"), cls.name
        assert cls.display_name and cls.description and cls.version == 1, cls.name
        for i in cls.inputs:
            assert i.description, (cls.name, i.name)
            if i.type in ("INT", "FLOAT"):
                assert i.min is not None and i.max is not None, (cls.name, i.name)
            if i.type == "FLOAT":
                assert i.step is not None, (cls.name, i.name)
        for o in cls.outputs:
            assert o.description, (cls.name, o.name)


def test_check_mode_detects_staleness(tmp_path):
    (tmp_path / "workflows" / "api").mkdir(parents=True)
    (tmp_path / "workflows" / "api" / "x.json").write_text('{"1": {"class_type": "SampleZ", "inputs": {}}}')
    assert docs.main(["--root", str(tmp_path), "--check"]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "docs" / "nodes.md").write_text("old")
    assert docs.main(["--root", str(tmp_path), "--check"]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0
    help_dir = tmp_path / "nodes" / "web" / "docs"
    page = help_dir / "SampleZ.md"
    assert "`x.json`, node 1" in page.read_text()  # where the node is used
    page.unlink()  # a missing help page
    assert docs.main(["--root", str(tmp_path), "--check"]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0 and page.is_file()
    page.write_text(page.read_text().replace("Sample", "Smaple"))  # a stale one
    assert docs.main(["--root", str(tmp_path), "--check"]) == 1
    (help_dir / "GoneNode.md").write_text("# a node that no longer exists")
    assert docs.main(["--root", str(tmp_path)]) == 0 and not (help_dir / "GoneNode.md").exists()
    assert docs.main(["--root", str(tmp_path), "--check"]) == 0
