"""Every example of README.md and workflows/README.md runs as written.

Fenced ``bash``/``sh`` blocks run line by line in a shell, ``python`` blocks as a script, in a fresh folder where
``workflows/`` and ``tests/`` of this checkout are visible (so ``workflows/...`` paths mean what they mean in a
clone and outputs stay out of the repository). A line may say ``# exits N`` for an expected failure. A marker
comment on the line before a block changes that:

* ``<!-- example: install -->`` — only the ``neural-collage ...`` commands of the block run (the ``pip install``
  and test commands around them are what CI itself runs);
* ``<!-- example: skip (REASON) -->`` — not run; the reason, which the README shows next to the block, names what
  a test machine lacks (real weights, network, ComfyUI, a GPU).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "workflows" / "README.md"]
_BLOCK = re.compile(r"(?:<!-- example: (?P<mark>\w+)(?: \((?P<reason>[^)]*)\))? -->\n)?"
                    r"```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


def examples() -> list:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            lang, mark = m.group("lang"), m.group("mark")
            if lang not in ("bash", "sh", "python"):
                continue
            line = text[:m.start("code")].count("\n") + 1
            out.append(pytest.param(lang, mark, m.group("reason"), m.group("code"),
                                    id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


def test_the_examples_were_found():
    found = examples()
    assert len(found) >= 8, [p.id for p in found]
    marks = {p.values[1] for p in found}
    assert marks <= {None, "install", "skip"}, marks
    assert all(p.values[2] for p in found if p.values[1] == "skip"), "a skipped example must say what it needs"


def _commands(code: str, mark: str | None) -> list[tuple[str, int]]:
    """``(command, expected exit status)`` for each line of a shell block."""
    cmds = []
    for raw in code.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        expect = re.search(r"#\s*exits (\d+)", line)
        if mark == "install":  # the neural-collage parts of an install line
            cmds += [(part.strip(), 0) for part in re.split(r"&&|;|\|\|", line)
                     if part.strip().startswith("neural-collage ")]
        else:
            cmds.append((line, int(expect.group(1)) if expect else 0))
    return cmds


@pytest.fixture
def sandbox(tmp_path):
    for name in ("workflows", "tests"):
        os.symlink(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("lang,mark,reason,code", examples())
def test_example_runs_as_written(lang, mark, reason, code, sandbox):
    if mark == "skip":
        pytest.skip(reason)
    if shutil.which("neural-collage") is None:
        pytest.skip("the neural-collage command is not installed (pip install -e .)")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    if lang == "python":
        r = subprocess.run([sys.executable, "-c", code], cwd=sandbox, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return
    commands = _commands(code, mark)
    if not commands and mark == "install":
        pytest.skip("the install and test command itself: .ci/run runs exactly this line")
    assert commands, "a shell example without commands"
    for cmd, expected in commands:
        r = subprocess.run(["bash", "-c", cmd], cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == expected, f"{cmd}\nexit {r.returncode}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]


def test_links_between_the_documents_resolve():
    docs = DOCS + sorted((ROOT / "docs").glob("*.md"))
    broken = []
    for doc in docs:
        for m in re.finditer(r"\]\(([^)#\s]+)(#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            target = m.group(1)
            if not target.startswith(("http://", "https://")) and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken
