"""The ``neural-collage`` command line.

Sub-commands::

    neural-collage run WORKFLOW.json [--set NODE.INPUT=VALUE ...] [--out DIR] [--device cpu|cuda]
    neural-collage validate WORKFLOW.json
    neural-collage map WORKFLOW.json --over SPEC --out DIR [--ray auto|ADDRESS] [--workers N]   # one run per row
    neural-collage examples [DIR] [--force]   # the bundled workflows (WORKFLOW may be one's NAME); copy them to DIR
    neural-collage nodes                       # every node schema as JSON (ComfyUI /object_info shape)
    neural-collage data emoji-animals OUT_DIR  # prepare the embedded model's training data
    neural-collage train --data DIR --out DIR  # train a class-conditional GAN (resumable)
    neural-collage export RUN_DIR MODEL_DIR    # write a trained run's EMA generator + discriminator
    neural-collage train-encoder --out DIR     # train an encoder (picture -> latent) that starts projection
    neural-collage eval MODEL --data DIR       # quality report of a generator
    neural-collage judge MODEL... --data DIR   # the honest evaluation: pretrained features, judges that never saw
                                               # the GAN's pictures (or a style), old and new models side by side
    neural-collage convert MODEL OUT.safetensors  # any loadable generator (e.g. a BigGAN folder) as our safetensors

User errors (bad workflow, missing file, bad argument) print one clear message and exit with status 2 (or 1 for
a failed run); no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from .common import (
    EXIT_INVALID,
    EXIT_USER_ERROR,
    UserError,
    add_threads_flag,
    add_workflow_args,
    apply_threads,
    error_lines,
    failure_text,
    invalid_heading,
    node_label,
    prepare,
    workflow_file,
)
from .errors import EXIT_INTERRUPTED, report

__all__ = ["main", "build_parser", "EXIT_INVALID", "EXIT_USER_ERROR", "UserError"]

# ----------------------------------------------------------------------------------------------- training
def _add_train(sub: argparse._SubParsersAction) -> None:
    from collage_core.training.trainer import TrainConfig

    p = sub.add_parser("train", help="train a class-conditional GAN (SNGAN projection + DiffAugment + EMA)",
                       description="Train the core generator and SN projection discriminator on a class-labelled "
                                   "image folder (ROOT/train/<class>/*.png). Resumes from OUT/state.safetensors.")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="run folder (state, samples, log)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT has a saved state")
    p.add_argument("--export", metavar="DIR", help="after training, export the model to DIR")
    _add_config_flags(p, TrainConfig(data="", out=""), skip=("data", "out", "extra"))
    p.set_defaults(func=_cmd_train)


def _add_config_flags(p: argparse.ArgumentParser, defaults: object, skip: tuple[str, ...]) -> None:
    """One ``--flag`` per field of the dataclass instance ``defaults`` (bools take true/false)."""
    for f in fields(defaults):
        if f.name in skip:
            continue
        val = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(val, bool):
            p.add_argument(flag, type=_parse_bool, default=val, metavar="BOOL", help=f"default {val}")
        elif val is None:
            ann = str(f.type)
            conv = _parse_bool if ann.startswith("bool") else int if ann.startswith("int") else str
            p.add_argument(flag, type=conv, default=None, help="default: automatic")
        else:
            p.add_argument(flag, type=type(val), default=val, help=f"default {val}")


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _cmd_train(args: argparse.Namespace) -> int:
    from collage_core.training.trainer import TrainConfig, train

    cfg = _config_from_args(TrainConfig, args)
    tr = train(cfg, resume=not args.no_resume, progress=True)
    if args.export:
        g, d = tr.export(args.export)
        print(f"exported {g} and {d}")
    return 0


def _config_from_args(config_class: type, args: argparse.Namespace):
    """The training config ``config_class`` from the parsed flags; a ``--data`` folder that is not there is refused."""
    names = {f.name for f in fields(config_class)}
    cfg = config_class(**{k: v for k, v in vars(args).items() if k in names})
    if getattr(cfg, "data", None) and not Path(cfg.data).is_dir():
        raise UserError(f"--data {cfg.data}: no such folder (prepare one with `neural-collage data emoji-animals`)")
    return cfg


def _add_train_encoder(sub: argparse._SubParsersAction) -> None:
    from collage_core.training.encoder_train import EncoderTrainConfig

    p = sub.add_parser("train-encoder", help="train an encoder (picture -> latent) that starts projection",
                       description="Train E: picture -> (z, class logits) for a generator on its own samples and, "
                                   "with --data, on its training pictures; the result OUT/encoder.safetensors starts "
                                   "Project Image near the answer. Resumes from OUT/state.safetensors.")
    p.add_argument("--out", required=True, help="run folder (state, samples, log, encoder.safetensors)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT has a saved state")
    p.add_argument("--export", metavar="PATH", help="also write the encoder here (e.g. a model folder's "
                                                    "encoder.safetensors), in float16")
    _add_config_flags(p, EncoderTrainConfig(out=""), skip=("out",))
    p.set_defaults(func=_cmd_train_encoder)


def _cmd_train_encoder(args: argparse.Namespace) -> int:
    from collage_core.training.encoder_train import EncoderTrainConfig, EncoderTrainer

    cfg = _config_from_args(EncoderTrainConfig, args)
    tr = EncoderTrainer(cfg)
    state = Path(cfg.out) / "state.safetensors"
    if state.is_file() and not args.no_resume:
        tr.load_state(state)
    path = tr.train(progress=True)
    print(f"wrote {path}")
    if args.export:
        print(f"exported {tr.export(args.export, half=True)}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a training run's EMA generator and discriminator")
    p.add_argument("run_dir", help="training run folder (with state.safetensors and config.json)")
    p.add_argument("model_dir", help="folder to write generator.safetensors and discriminator.safetensors")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from collage_core.training.trainer import TrainConfig, Trainer

    run = Path(args.run_dir)
    if not (run / "state.safetensors").is_file() or not (run / "config.json").is_file():
        raise UserError(f"{run} is not a training run folder (no state.safetensors / config.json)")
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    cfg.init = None  # the saved state holds every weight; a warm-start model need not exist any more
    tr = Trainer(cfg)
    tr.load_state(run / "state.safetensors")
    g, d = tr.export(args.model_dir, half=not args.fp32)
    print(f"exported iteration {tr.iteration}: {g}, {d}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure a generator's quality with a classifier trained on the real images",
                       description="Class accuracy of samples, sCBN translation, locality, diversity and a Fréchet "
                                   "distance, judged by a small classifier trained on DATA's training images "
                                   "(its accuracy on the held-out OpenMoji style is reported too).")
    p.add_argument("model", nargs="+",
                   help="embedded model name or generator checkpoint; several (e.g. a run's snapshots/*.safetensors) "
                        "are judged by one classifier and summarised as a curve")
    p.add_argument("--data", required=True, help="prepared dataset folder (train/ and test_openmoji/)")
    p.add_argument("--out", help="folder for report.json, report.md and samples_per_class.png (one sub-folder per "
                                 "model, and curve.md / curve.json, when several are given)")
    p.add_argument("--samples-per-class", type=int, default=50)
    p.add_argument("--classifier-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from collage_core import load_generator
    from collage_core.training.evaluate import evaluate, make_judge

    if not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: no such folder")
    models = [(m, load_generator(m, device=args.device)) for m in args.model]
    judge = make_judge(args.data, models[0][1].resolution, args.device, args.classifier_steps, args.seed)
    several = len(models) > 1
    rows = []
    for name, G in models:
        out = args.out and (Path(args.out) / Path(name).stem if several else Path(args.out))
        report = evaluate(G, args.data, out, samples_per_class=args.samples_per_class, seed=args.seed,
                          judge=judge)
        if several:
            rows.append({"model": name, "iterations": G.provenance.get("iterations"),
                         "class_accuracy": report.class_accuracy, "translation_accuracy": report.translation_accuracy,
                         "frechet_distance": report.frechet_distance, "diversity_pixel": report.diversity_pixel,
                         "locality_ratio": report.locality_ratio})
        else:
            print(report.markdown())
    if several:
        table = ["| model | iterations | class accuracy | sCBN translation | Fréchet distance | diversity | locality |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        table += [f"| {r['model']} | {r['iterations'] if r['iterations'] is not None else '-'} | "
                  f"{r['class_accuracy']:.1%} | {r['translation_accuracy']:.1%} | {r['frechet_distance']:.2f} | "
                  f"{r['diversity_pixel']:.0%} | {r['locality_ratio']:.1f}x |" for r in rows]
        print("\n".join(table))
        if args.out:
            Path(args.out, "curve.md").write_text("\n".join(table) + "\n")
            Path(args.out, "curve.json").write_text(json.dumps(rows, indent=1))
    if args.out:
        print(f"\nwrote {args.out}/" + ("curve.md, curve.json and one folder per model" if several
                                        else "report.json, report.md, samples_per_class.png"))
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from collage_core.training import emoji_data

    p = sub.add_parser("data", help="prepare training data")
    dsub = p.add_subparsers(dest="dataset", required=True)
    e = dsub.add_parser("emoji-animals", help="emoji animal heads from openly licensed emoji sets (needs npm)",
                        description=(emoji_data.__doc__ or "").split("\n\n")[0])
    emoji_data.add_arguments(e)
    e.set_defaults(func=emoji_data.run)


# -------------------------------------------------------------------------------------- workflows (run etc.)
def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a workflow", description="Validate and run a workflow; saved files are "
                       "printed one per line. Exit status 1 if the workflow is invalid or a node fails.")
    add_workflow_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_threads_flag(p)
    p.set_defaults(func=_cmd_run)


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a workflow without running it",
                       description="Report every problem of a workflow at once (unknown nodes, missing or bad inputs, "
                                   "type mismatches, missing files, cycles). Exit status 0 if valid, else 1.")
    add_workflow_args(p)
    p.set_defaults(func=_cmd_validate)


def _add_nodes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nodes", help="print every node schema as JSON (ComfyUI /object_info shape)")
    p.set_defaults(func=_cmd_nodes)


def _print_invalid(errors: dict, titles: dict, path: str) -> None:
    print(f"{path}: {invalid_heading(errors)}", file=sys.stderr)
    for line in error_lines(errors, titles):
        print(f"  {line}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    from collage_nodes.runner import CollageEngine, workflow_paths

    args.workflow = workflow_file(args.workflow)
    reg, api, _, titles = prepare(args.workflow, args.sets, args.out, args.device)
    v = CollageEngine(reg, max_memory=args.max_memory, paths=workflow_paths(args.workflow)).validate(api)
    if not v.ok:
        _print_invalid(v.to_dict(), titles, args.workflow)
        return EXIT_INVALID
    print(f"{args.workflow}: valid ({len(api)} nodes, {len(v.targets)} output node{'s' * (len(v.targets) != 1)})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import time

    from collage_engine import TqdmReporter
    from collage_nodes.runner import CollageEngine, workflow_paths

    args.workflow = workflow_file(args.workflow)
    reg, api, ui, titles = prepare(args.workflow, args.sets, args.out, args.device)
    if not args.verbose:
        logging.getLogger("collage_engine").setLevel(logging.CRITICAL)  # failures are reported below
    engine = CollageEngine(reg, max_memory=args.max_memory, paths=workflow_paths(args.workflow))  # one registry
    reporter = None if args.quiet else TqdmReporter(titles)
    if reporter is not None:  # node failures are printed below, once
        engine.add_listener(lambda ev, data: None if ev == "execution_error" else reporter(ev, data))
    t0 = time.perf_counter()
    try:
        res = engine.run(api, ui=ui)
    finally:
        if reporter is not None:
            reporter.close()
    if res.status == "invalid":
        _print_invalid(res.errors or {}, titles, args.workflow)
        return EXIT_INVALID
    if res.status == "interrupted":
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if res.status == "error":
        e = res.error or {}
        print(f"error: {node_label(e.get('node_id'), e.get('node_type'), titles)} failed: {failure_text(e)}",
              file=sys.stderr)
        if args.verbose:
            print("".join(e.get("traceback") or []), file=sys.stderr)
        written = _written(res)
        if written:  # say so: these files are from a run that did not finish
            print(f"note: the run is incomplete; {len(written)} file(s) were written before the failure:",
                  file=sys.stderr)
            for path in written:
                print(f"  {path}", file=sys.stderr)
        return EXIT_INVALID
    for path in _written(res):
        print(path)
    print(f"done: {len(res.executed)} node(s) run in {time.perf_counter() - t0:.2f} s with {args.thread_choice}",
          file=sys.stderr)
    return 0


def _written(res) -> list[str]:
    """The files the savers of a run wrote (from their ``ui``)."""
    return [item["path"] for out in res.ui.values() for item in out.get("images", []) + out.get("latents", [])
            if isinstance(item, dict) and item.get("path")]


def _cmd_nodes(args: argparse.Namespace) -> int:
    import collage_nodes

    print(json.dumps(collage_nodes.registry().object_info(), indent=2))
    return 0


# ----------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neural-collage", description="Spatially controllable image synthesis "
                                     "with class-conditional GANs: workflows, training and evaluation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and tracebacks")
    parser.add_argument("--version", action="version", version=f"neural-collage {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neural-collage")
    except PackageNotFoundError:  # run from a checkout that is not installed
        from collage_core import __version__

        return f"{__version__} (not installed)"


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from .serve import add_parser

    add_parser(sub)


def _add_examples(sub: argparse._SubParsersAction) -> None:
    from .examples import add_parser

    add_parser(sub)


def _add_map(sub: argparse._SubParsersAction) -> None:
    from .mapping import add_parser

    add_parser(sub)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="write any loadable generator as this project's .safetensors",
                       description="Load a generator (a BigGAN folder with config.json + pytorch_model.bin, "
                                   "biggan-deep-128/256/512, hf:owner/repo, an original .npz, ...) and write it as "
                                   "one native .safetensors file (config and class names in its header).")
    p.add_argument("model", help="what Load Generator accepts")
    p.add_argument("out", help="the .safetensors file to write")
    p.add_argument("--fp16", action="store_true", help="store float16 weights (default: float32, exact)")
    p.set_defaults(func=_cmd_convert)


def _add_judge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="the honest evaluation: judges that never saw the GAN's training pictures",
                       description="Untruncated samples of each MODEL, judged in a frozen ImageNet-pretrained "
                                   "EfficientNet-lite0 feature space: top-1 accuracy by a judge trained only on "
                                   "styles the GAN never saw (and by one trained on every real style, with its "
                                   "leave-one-style-out accuracy), Fréchet distance, precision/recall and "
                                   "within-class diversity; per class. Needs the `train` extra.")
    p.add_argument("model", nargs="+", help="embedded model name or generator checkpoint; all are judged alike")
    p.add_argument("--data", required=True, help="prepared dataset folder (train/, test_openmoji/, judge/)")
    p.add_argument("--out", help="folder for report.md, report.json and MODEL/samples_per_class.png")
    p.add_argument("--samples-per-class", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", action="append", default=[], metavar="NAME",
                   help="column name of each model, in order (default: the model's name or file stem)")
    p.set_defaults(func=_cmd_judge)


def _cmd_judge(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from collage_core import load_generator
    from collage_core.training.honest import evaluate_honestly, make_honest_judge, markdown
    from collage_core.training.pretrained import PretrainedWeightsMissing

    if not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: no such folder (prepare one with `neural-collage data emoji-animals`)")
    if args.label and len(args.label) != len(args.model):
        raise UserError(f"--label given {len(args.label)} times for {len(args.model)} models")
    labels = args.label or [m if not Path(m).suffix else Path(m).stem for m in args.model]
    models = [load_generator(m) for m in args.model]
    try:
        hj = make_honest_judge(args.data, seed=args.seed)
    except (PretrainedWeightsMissing, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    out = Path(args.out) if args.out else None
    reports = [evaluate_honestly(G, hj, label, per_class=args.samples_per_class, seed=args.seed,
                                 out_dir=out / label if out else None) for label, G in zip(labels, models)]
    text = markdown(reports, hj)
    print(text)
    if out:
        (out / "report.md").write_text(text + "\n")
        (out / "report.json").write_text(json.dumps({
            "models": [asdict(r) for r in reports], "strict_trust": hj.strict_trust,
            "strict_trained_on": hj.strict.trained_on, "unseen_style_accuracy": hj.unseen_style_accuracy,
            "unseen_per_style": hj.unseen_per_style}, indent=1))
        print(f"\nwrote {out}/report.md, report.json and one folder of samples per model")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from collage_core import load_generator, save_generator

    G = load_generator(args.model)
    path = save_generator(G, args.out, dtype=torch.float16 if args.fp16 else None)
    print(f"wrote {path} ({type(G).__name__}, {G.resolution} px, {G.config.n_classes} classes)")
    return 0


_COMMANDS = [_add_run, _add_validate, _add_map, _add_examples, _add_nodes, _add_data, _add_train, _add_export,
             _add_train_encoder, _add_eval, _add_judge, _add_serve, _add_convert]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        if hasattr(args, "threads"):
            apply_threads(args)
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as e:  # the one table from exception type to exit status and message
        return report(e, args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
