"""The saved workflows that ship with the package: where they are, running one by name, and ``neural-collage
examples``.

In a clone they are the folder ``workflows/``; installed (a wheel, or ``pip install -e .``) the same folder is the
package ``collage_workflows``. ``api/NAME.json`` is a workflow's source (API format), ``NAME.json`` and ``NAME.jpg``
its editor format and card, ``examples/`` the pictures they read (named relative to the workflow file).

    neural-collage run class_collage --out out     # a bundled workflow by name, from any folder
    neural-collage examples                        # their names and what they show
    neural-collage examples my-workflows           # copy them out to edit (--force overwrites)
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
import textwrap
from pathlib import Path

HELP = "list the bundled workflows, or copy them (both formats, cards, pictures) to a folder to edit"


def workflows_folder() -> Path:
    """The bundled workflows' folder: the installed package ``collage_workflows``, else (a clone that was not
    installed, or installed before the workflows were packaged) ``workflows/`` beside ``collage_app``. It may be
    missing (a broken install): callers check ``is_dir()``."""
    try:
        import collage_workflows
    except ImportError:
        return Path(__file__).resolve().parent.parent / "workflows"
    return Path(collage_workflows.__file__).resolve().parent


def bundled_names(folder: Path | None = None) -> list[str]:
    """The names ``neural-collage run NAME`` accepts: one per API-format source ``api/NAME.json``."""
    return sorted(p.stem for p in ((folder or workflows_folder()) / "api").glob("*.json"))


def resolve_workflow(value: str) -> str:
    """The workflow argument of ``run``, ``validate`` and ``map`` as a file to read: a file that exists (or ``-``)
    as it is, else a bundled workflow's name (``class_collage`` or ``class_collage.json``) as the path of its
    API-format source ``api/NAME.json`` (whose pictures are found next to it). Anything else raises
    :class:`FileNotFoundError` saying so; for a bare name, with the closest bundled name and the list."""
    if value == "-" or Path(value).is_file():
        return value
    folder = workflows_folder()
    names = bundled_names(folder)
    bare = "/" not in value and "\\" not in value
    stem = Path(value[:-5] if value.endswith(".json") else value).name
    if bare and stem in names:  # even where a folder of that name (a run's output folder) exists
        return str(folder / "api" / f"{stem}.json")
    if Path(value).exists():  # a folder: reading it says why it is no workflow
        return value
    if not bare:
        hint = f" (the bundled workflow of that name is named without a folder: {stem})" if stem in names else ""
        raise FileNotFoundError(f"{value}: no such file{hint}")
    if not names:
        raise FileNotFoundError(f"{value}: no such file, and no bundled workflows in {folder} (reinstall "
                                "neural-collage)")
    close = difflib.get_close_matches(stem, names, n=1)
    raise FileNotFoundError(f"{value}: no such file or bundled workflow" + (f"; did you mean {close[0]!r}?" if close
                            else "") + f" (bundled: {', '.join(names)})")


def descriptions(folder: Path | None = None) -> dict[str, str]:
    """``{name: what it shows}`` from the table of the bundle's README.md (rows ``| `NAME.json` | text | ... |``)."""
    readme = (folder or workflows_folder()) / "README.md"
    if not readme.is_file():
        return {}
    rows = re.finditer(r"^\|\s*`([\w.-]+)\.json`\s*\|([^|]*)\|", readme.read_text(encoding="utf-8"), re.M)
    return {m.group(1): " ".join(m.group(2).replace("`", "").split()) for m in rows}


def bundle_files(folder: Path) -> list[Path]:
    """Every file of the bundle (workflows in both formats, cards, pictures and their licences, README), relative
    to ``folder``; the package's ``__init__.py`` and caches are not part of it."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != "__init__.py"
                  and "__pycache__" not in p.parts and p.suffix != ".pyc")


def copy_examples(dest: Path, force: bool = False, folder: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Copy the bundle into ``dest`` keeping its layout (so relative picture paths still resolve); returns
    ``(written, kept)``: files that already existed are kept unless ``force``."""
    folder = folder or workflows_folder()
    written, kept = [], []
    for rel in bundle_files(folder):
        target = dest / rel
        if target.exists() and not force:
            kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / rel, target)
        written.append(target)
    return written, kept


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("examples", help=HELP, description="Without DIR: the bundled workflows, each runnable by name "
                       "(`neural-collage run NAME`). With DIR: copy them there (editor format NAME.json with its "
                       "card NAME.jpg, API format api/NAME.json, the pictures examples/*), printing each file "
                       "written; existing files are kept unless --force.")
    p.add_argument("dir", nargs="?", help="folder to copy the workflows to (created if needed)")
    p.add_argument("--force", action="store_true", help="overwrite files that already exist in DIR")
    p.set_defaults(func=cmd_examples)


def cmd_examples(args: argparse.Namespace) -> int:
    from .errors import UserError

    folder = workflows_folder()
    names = bundled_names(folder)
    if not names:
        raise UserError(f"no bundled workflows in {folder}: reinstall neural-collage")
    if args.dir is None:
        about = descriptions(folder)
        width = max(map(len, names))
        for name in names:
            text = textwrap.shorten(about.get(name, ""), 110 - width, placeholder=" ...")
            print(f"{name:<{width}}  {text}".rstrip())
        print(f"\n{len(names)} workflows in {folder}; run one with `neural-collage run NAME`, copy them out with "
              "`neural-collage examples DIR`", file=sys.stderr)
        return 0
    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest} is a file, not a folder")
    if dest.resolve() == folder:
        raise UserError(f"{dest} is the bundled workflows' folder itself; copy them to another folder")
    written, kept = copy_examples(dest, args.force, folder)
    for path in written:
        print(path)
    print(f"wrote {len(written)} file(s) to {dest}" + (f"; kept {len(kept)} that already exist (--force "
                                                       "overwrites them)" if kept else "")
          + f"; run one with `neural-collage run {dest / 'NAME.json'}`", file=sys.stderr)
    return 0
