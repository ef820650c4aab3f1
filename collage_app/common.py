"""What the commands that run workflows share (``run``, ``validate``, ``map``, ``serve``): exit statuses, user
errors, the ``--max-memory`` / ``--threads`` / workflow flags, reading a workflow with the command line's changes,
and the text of a failed run. The sub-command modules import this; :mod:`.cli` imports them, never the reverse."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import EXIT_INVALID, EXIT_USER_ERROR, InvalidWorkflow, UserError

__all__ = ["EXIT_USER_ERROR", "EXIT_INVALID", "UserError", "InvalidWorkflow", "add_memory_flag", "parse_memory",
           "add_threads_flag", "apply_threads", "add_device_flag", "add_workflow_args", "workflow_file", "prepare",
           "titles_of", "node_label", "invalid_heading", "error_lines", "failure_text"]



def add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", default=None, metavar="N|auto",
                   help="CPU threads of torch (default auto: the usable CPUs less those other programs keep busy; "
                        "NEURAL_COLLAGE_THREADS or OMP_NUM_THREADS set the default). See docs/performance.md")


def apply_threads(args: argparse.Namespace) -> None:
    """The thread policy of collage_core.threads, for the commands that compute (run, map, serve)."""
    from collage_core.threads import apply_threads as apply
    from collage_core.threads import choose_threads

    try:
        args.thread_choice = choose_threads(args.threads)
    except ValueError as e:
        raise UserError(f"--{e}") from None
    apply(args.thread_choice)
    logging.getLogger(__name__).debug("torch threads: %s", args.thread_choice)


def add_memory_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", type=parse_memory, default="auto", metavar="SIZE",
                   help="host memory the results of one run may hold, e.g. 8G or 512M; 'auto' (default): half of "
                        "the memory available at start; 0: no limit. A workflow that would need more is refused "
                        "before it runs, and a node that goes past it fails cleanly")


def parse_memory(text: str) -> int | None:
    """``--max-memory`` value: bytes (``8G``, ``512M``, ``1.5GiB``, ``1000000``), None for no limit (``0``, ``none``),
    or half of the available memory for ``auto``."""
    import re

    from collage_engine import default_max_memory

    t = text.strip().lower()
    if t == "auto":
        return default_max_memory()
    if t in ("0", "none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", t)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size such as 8G, 512M or 0 (no limit), got {text!r}")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def add_device_flag(p: argparse.ArgumentParser, help: str | None = None) -> None:
    from collage_nodes.base import DEVICES

    p.add_argument("--device", choices=DEVICES,
                   help=help or "device of every Load Generator, Load Discriminator and Load Encoder node")


def add_workflow_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("workflow",
                   help="workflow JSON file (ComfyUI API or UI format), or the name of a bundled workflow "
                        "(`neural-collage examples` lists them); - reads it from standard input")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="change an input before running; NODE is a node id or title, VALUE is JSON if it parses "
                        "(7, 0.5, true, \"text\") else a string; repeatable")
    p.add_argument("--out", metavar="DIR", help="folder every saver writes to (sets each output_dir input)")
    add_device_flag(p)
    add_memory_flag(p)


def workflow_file(value: str) -> str:
    """The workflow file a command reads: ``value`` if it is a file, else the bundled workflow of that name."""
    from .examples import resolve_workflow  # examples imports .errors only

    try:
        return resolve_workflow(value)
    except FileNotFoundError as e:
        raise InvalidWorkflow(f"cannot read workflow {e}") from None


def prepare(workflow: str, sets=(), out: str | None = None, device: str | None = None):
    """Read ``workflow`` (a file, ``-``: standard input) once: the registry, the API-format workflow with the
    command line's changes (``--set``, ``--out``, ``--device``), the UI JSON to embed (when unchanged) and titles."""
    import collage_nodes
    from collage_engine import load_workflow
    from collage_engine.workflow import WorkflowError

    from .overrides import apply_overrides

    reg = collage_nodes.registry()
    try:
        if workflow == "-":  # the workflow on standard input (paths in it are relative to the working folder)
            raw = json.load(sys.stdin)
        else:
            with open(workflow, encoding="utf-8") as f:
                raw = json.load(f)
        api, meta = load_workflow(raw, reg)
    except (OSError, ValueError, RecursionError, WorkflowError) as e:
        raise InvalidWorkflow(f"cannot read workflow {workflow}: {e}") from None
    changed = bool(sets or out or device)
    if isinstance(api, dict):
        apply_overrides(api, reg, sets, device, out)  # an OverrideError: exit status 2 (errors.EXIT_CODES)
    ui = raw if meta["format"] == "ui" and not changed else None
    return reg, api, ui, titles_of(api)


def titles_of(api: object) -> dict:
    """The nodes' titles (``_meta.title``) of an API-format workflow, by node id."""
    return {nid: n["_meta"]["title"] for nid, n in api.items() if isinstance(n, dict) and isinstance(
        n.get("_meta"), dict) and isinstance(n["_meta"].get("title"), str)} if isinstance(api, dict) else {}


def node_label(nid: object, class_type: object, titles: dict | None = None) -> str:
    """``node 8 (PaintClass 'Paint cat')``: a node as every message names it (its title when it has its own)."""
    title = (titles or {}).get(nid)
    return f"node {nid} ({class_type}{f' {title!r}' if title and title != class_type else ''})"


def invalid_heading(errors: dict) -> str:
    """The first line about a validation result (``{"error", "node_errors"}``): how many problems in how many
    nodes, or the workflow-wide problem when no node has one."""
    top = errors.get("error") or {}
    node_errors = errors.get("node_errors") or {}
    n = sum(len(e.get("errors", [])) for e in node_errors.values())
    if node_errors:
        return f"invalid workflow ({n} error{'s' * (n != 1)} in {len(node_errors)} node{'s' * (len(node_errors) != 1)})"
    if top:
        return f"invalid workflow: {top.get('message')}" + (f" - {top['details']}" if top.get("details") else "")
    return "invalid workflow"


def error_lines(errors: dict, titles: dict | None = None) -> list[str]:
    """One line per node problem of a validation result, in node-id order: ``node 8 (PaintClass), input
    'strength': value 3.0 bigger than max 2.0`` (details that repeat the message or the input name left out)."""
    from collage_engine.validate import id_key

    lines = []
    for nid, entry in sorted((errors.get("node_errors") or {}).items(), key=lambda kv: id_key(str(kv[0]))):
        for e in entry.get("errors", []):
            name = (e.get("extra_info") or {}).get("input_name")
            msg = e.get("message", "")
            details = e.get("details")
            if details and details != msg and details != name:
                msg += f" - {details}"
            where = node_label(nid, entry.get("class_type"), titles) + (f", input '{name}'" if name else "")
            lines.append(f"{where}: {msg}")
    return lines


def failure_text(error: dict) -> str:
    """What a failed node said: its message alone for a user error (bad input, missing file), else with the
    exception's type."""
    e = error or {}
    if e.get("user_error"):
        return str(e.get("exception_message"))
    return f"{e.get('exception_type')}: {e.get('exception_message')}"
