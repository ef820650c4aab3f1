"""``neural-collage map``: run a workflow once per row of ``--over`` specs (the command line over
:func:`collage_app.batch.map_workflow`; the specs, the manifest and the Ray path are documented in
:mod:`collage_app.batch`).

    neural-collage map workflows/class_collage.json --over Latent.seed=0:1000 --out runs/seeds
    neural-collage map workflows/photo_edit.json --over "Photo.path=photos/*.jpg" --out runs/photos --ray auto
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .common import (
    EXIT_INVALID,
    UserError,
    add_device_flag,
    add_memory_flag,
    add_threads_flag,
    prepare,
    workflow_file,
)
from .errors import EXIT_INTERRUPTED

HELP = "run a workflow once per row of --over specs (seeds, pictures, a table), in-process or on Ray"

DESCRIPTION = """\
Run WORKFLOW once per row, each row's savers writing to OUT/<row id>/, and append one JSON line per row to
OUT/manifest.jsonl (row, index, inputs, outputs, status, error, seconds, worker, finished_at). Running the same
command again skips the rows recorded ok (Ctrl-C stops cleanly); a failing row is recorded and the map goes on.
Exit status 0 if every row is ok, 1 if a row failed or the workflow is invalid, 2 for a bad spec, 130 when
interrupted.

SPEC (NODE: node id or title, as --set):
  NODE.INPUT=A:B[:STEP]   integers A, A+STEP, ... up to B excluded       Latent.seed=0:1000
  NODE.INPUT=GLOB|FOLDER  files of a glob, or pictures of a folder       "Photo.path=photos/*.jpg"
  NODE.INPUT=[JSON list]  these values                                   'Paint cat.class_name=["cat","tiger"]'
  FILE.csv | FILE.jsonl   a table: one column per NODE.INPUT (+ optional id: the row's folder name); CSV cells are
                          JSON if they parse, else text; an empty cell keeps the workflow's value
Several --over give the product of their rows (the first varies slowest)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workflow",
                   help="workflow JSON file (ComfyUI API or UI format), or the name of a bundled workflow")
    p.add_argument("--over", action="append", required=True, metavar="SPEC", help="the rows (see above); repeatable")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the rows' folders and manifest.jsonl")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="change an input of every row (as run --set); repeatable")
    add_device_flag(p)
    p.add_argument("--ray", nargs="?", const="auto", metavar="auto|local|ADDRESS",
                   help="run the rows on Ray workers: auto (the cluster of RAY_ADDRESS or `ray start`, else a new "
                        "local one; the default of a bare --ray), local, or a cluster address (needs the [scale] "
                        "extra)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="Ray workers, each with one engine (default: the cluster's GPUs, else 2); needs --ray")
    add_memory_flag(p)
    p.add_argument("--dry-run", action="store_true", help="print the rows (id, inputs) and stop")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_threads_flag(p)  # with --ray: the CPUs Ray reserves for each worker (default 1), its torch threads
    p.set_defaults(func=cmd_map)


def cmd_map(args: argparse.Namespace) -> int:
    from collage_core.threads import parse_threads

    from .batch import MapError, axes, build_rows, map_api, rows_table

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.workers not in (None, 1) and args.ray is None:
        raise UserError("--workers needs --ray (in-process, one engine runs the rows in order)")
    if not args.verbose:
        logging.getLogger("collage_engine").setLevel(logging.CRITICAL)  # failing rows go to the manifest
    try:
        spec_axes = axes(args.over)  # the specs are read once: the dry run and the map share them
        if args.dry_run:
            print(rows_table(build_rows(spec_axes)))
            return 0
        # the workflow read once, as `run` reads it (a file or a bundled name, --set, --device); savers' folders
        # are per row
        args.workflow = workflow_file(args.workflow)
        reg, api, _, _ = prepare(args.workflow, args.sets, None, args.device)
        result = map_api(api, spec_axes, args.out, registry=reg, workers=args.workers, ray=args.ray,
                         progress=not args.quiet, max_memory=args.max_memory, base=args.workflow,
                         threads=parse_threads(args.threads))
    except MapError as e:  # reported by main's table (errors.EXIT_CODES); a workflow's problem names the workflow
        if type(e) is MapError and str(e).startswith(("invalid", "cannot read")):
            raise MapError(f"{args.workflow}: {e}") from None
        raise
    rate = f", {result.done / result.seconds:.2f} rows/s" if result.done and result.seconds else ""
    summary = {"rows": result.total, "ok": result.ok, "failed": result.failed, "already_done": result.skipped}
    where = f"Ray workers of {args.threads or 1} CPU(s) each" if args.ray else str(args.thread_choice)
    print(f"{'interrupted' if result.interrupted else 'done'}: {json.dumps(summary)} in {result.seconds:.1f} s{rate} "
          f"({where}); manifest {result.manifest}", file=sys.stderr)
    if result.interrupted:
        print("run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_INVALID if result.failed else 0
