"""The ``neural-collage`` command line.

Sub-commands::

    neural-collage run WORKFLOW.json [--set NODE.INPUT=VALUE ...] [--out DIR] [--device cpu|cuda]
    neural-collage validate WORKFLOW.json
    neural-collage nodes                       # every node schema as JSON (ComfyUI /object_info shape)
    neural-collage data emoji-animals OUT_DIR  # prepare the embedded model's training data
    neural-collage train --data DIR --out DIR  # train a class-conditional GAN (resumable)
    neural-collage export RUN_DIR MODEL_DIR    # write a trained run's EMA generator + discriminator
    neural-collage eval MODEL --data DIR       # quality report of a generator

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

EXIT_USER_ERROR = 2


class UserError(Exception):
    """An error in what the user asked for; printed without a traceback."""


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
    defaults = TrainConfig(data="", out="")
    for f in fields(TrainConfig):
        if f.name in ("data", "out", "extra"):
            continue
        val = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(val, bool):
            p.add_argument(flag, type=_parse_bool, default=val, metavar="BOOL", help=f"default {val}")
        elif val is None:
            conv = _parse_bool if f.name == "channels_last" else (int if f.name == "num_threads" else str)
            p.add_argument(flag, type=conv, default=None, help="default: automatic")
        else:
            p.add_argument(flag, type=type(val), default=val, help=f"default {val}")
    p.set_defaults(func=_cmd_train)


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _cmd_train(args: argparse.Namespace) -> int:
    from collage_core.training.trainer import TrainConfig, train

    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    if not Path(cfg.data).is_dir():
        raise UserError(f"--data {cfg.data}: no such folder (prepare one with `neural-collage data emoji-animals`)")
    tr = train(cfg, resume=not args.no_resume, progress=True)
    if args.export:
        g, d = tr.export(args.export)
        print(f"exported {g} and {d}")
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
    tr = Trainer(TrainConfig.from_dict(json.loads((run / "config.json").read_text())))
    tr.load_state(run / "state.safetensors")
    g, d = tr.export(args.model_dir, half=not args.fp32)
    print(f"exported iteration {tr.iteration}: {g}, {d}")
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from collage_core.training import emoji_data

    p = sub.add_parser("data", help="prepare training data")
    dsub = p.add_subparsers(dest="dataset", required=True)
    e = dsub.add_parser("emoji-animals", help="emoji animal heads from openly licensed emoji sets (needs npm)",
                        description=(emoji_data.__doc__ or "").split("\n\n")[0])
    emoji_data.add_arguments(e)
    e.set_defaults(func=emoji_data.run)


# ----------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neural-collage", description="Spatially controllable image synthesis "
                                     "with class-conditional GANs: workflows, training and evaluation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS = [_add_data, _add_train, _add_export]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
