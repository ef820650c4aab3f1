"""Generated files are current, and every node is fully declared (descriptions, ranges, categories, versions)."""

from __future__ import annotations

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
