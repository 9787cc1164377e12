"""The command line: `python -m tinyviz {data,download,models,train,evaluate,export,search}`.

Training options are generated from the fields of `TrainConfig` and `AugmentConfig`, so the
command line, the Python API and `config.json` always agree. Commands that report a result
print one JSON line on stdout (progress goes to stderr), so scripts can parse them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from .config import AugmentConfig, TrainConfig

TRAIN_EXAMPLE = ("python -m tinyviz train --data data/tiny-imagenet-200.zip --model resnet18 "
                 "--epochs 18 --out checkpoints/resnet18")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .checkpoints import CheckpointError
    from .data import DataError
    from .train import Stopped, TrainingError

    try:
        return args.func(args) or 0
    except (DataError, CheckpointError, TrainingError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (Stopped, KeyboardInterrupt):
        print("stopped; continue with --resume RUN_DIR", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tinyviz", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(title="commands")

    d = sub.add_parser("data", help="check the data set, build its cache, print a summary")
    d.add_argument("path", nargs="?", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    d.set_defaults(func=cmd_data)

    dl = sub.add_parser("download", help="download the official archive into ./data/")
    dl.add_argument("--url", default=None)
    dl.add_argument("--dest", default="data")
    dl.add_argument("--sha256", default=None)
    dl.set_defaults(func=cmd_download)

    m = sub.add_parser("models", help="list the registered models")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser("train", help="train a model into a run folder",
                       epilog=f"example: {TRAIN_EXAMPLE}")
    t.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    t.add_argument("--out", help="run folder to create")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run")
    t.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, e.g. --opt dropout=0.3 --opt freeze=true")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_options(t, TrainConfig, skip={"model_options", "augment"})
    add_dataclass_options(t, AugmentConfig)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a run on the validation set")
    e.add_argument("run", help="run folder")
    e.add_argument("--data")
    e.add_argument("--tta", default="none", choices=["none", "flip", "10crop"])
    e.add_argument("--ensemble", type=int, default=1, help="average the best K snapshots")
    e.add_argument("--split", default="val", choices=["val", "train"])
    e.add_argument("--device", default="auto")
    e.add_argument("--limit", type=int, default=0, help="use only this many images")
    e.add_argument("--no-record", dest="record", action="store_false",
                   help="do not add the result to the run's evals.json")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="copy a run with half-precision weights (for shipping)")
    x.add_argument("run")
    x.add_argument("out")
    x.add_argument("--snapshots", type=int, default=0, help="also keep the best K snapshots")
    x.set_defaults(func=cmd_export)

    s = sub.add_parser("search", help="random search over learning rate and weight decay")
    s.add_argument("--data")
    s.add_argument("--out", required=True, help="folder for the trials and search.json")
    s.add_argument("--trials", type=int, default=8)
    s.add_argument("--lr", nargs=2, type=float, default=[1e-3, 1.0], metavar=("MIN", "MAX"))
    s.add_argument("--wd", nargs=2, type=float, default=[1e-6, 1e-3], metavar=("MIN", "MAX"))
    s.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--quiet", action="store_true")
    add_dataclass_options(s, TrainConfig, skip={"model_options", "augment", "lr",
                                                "weight_decay"})
    add_dataclass_options(s, AugmentConfig)
    s.set_defaults(func=cmd_search)
    return p


def add_dataclass_options(parser: argparse.ArgumentParser, cls, skip=frozenset()) -> None:
    """One `--field-name` option per dataclass field, typed by its default."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"(default: {default})")
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=None,
                                metavar=type(default).__name__.upper(),
                                help=f"(default: {default})")


def parse_value(text: str) -> Any:
    """`--opt` values: JSON where they parse (numbers, true/false), else strings."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def config_from_args(args: argparse.Namespace) -> TrainConfig:

    def picked(cls) -> dict[str, Any]:
        return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                if getattr(args, f.name, None) is not None}

    options = {}
    for item in args.opt:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--opt wants KEY=VALUE, not {item!r}")
        options[key.strip()] = parse_value(value.strip())
    train = picked(TrainConfig)
    augment = AugmentConfig(**picked(AugmentConfig))
    return TrainConfig(**train, model_options=options, augment=augment)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# ------------------------------------------------------------------- commands


def cmd_data(args) -> int:
    from .data import load

    emit(load(args.path).summary())
    return 0


def cmd_download(args) -> int:
    from .data import URL
    from .data.download import download

    path = download(args.url or URL, Path(args.dest), sha256=args.sha256)
    emit({"path": str(path)})
    return 0


def cmd_models(args) -> int:
    from . import models

    for name in models.names():
        s = models.spec(name)
        print(f"{name:20s} {s.family:12s} {s.source:28s} {s.description}")
    return 0


def cmd_train(args) -> int:
    from .data import load
    from .train import train

    if args.resume:
        out, cfg = Path(args.resume), None
    elif args.out:
        out, cfg = Path(args.out), config_from_args(args)
        if (out / "state.json").exists():
            raise ValueError(f"{out} already holds a run: pass --resume {out} to continue it")
    else:
        raise ValueError("train needs --out RUN_DIR (or --resume RUN_DIR)")
    data = load(args.data or (_recorded_source(out) if args.resume else None))
    train(cfg or TrainConfig(), data, out, resume=bool(args.resume), progress=not args.quiet,
          log=lambda line: print(line, file=sys.stderr, flush=True))
    from .checkpoints import read_jsonl
    from .distributed import world

    if not world().main:
        return 0  # under torchrun the first process reports
    rows = read_jsonl(out / "metrics.jsonl")
    best = max(rows, key=lambda r: r["val_top1"])
    emit({"run": str(out), "epochs": len(rows), "last_val_top1": rows[-1]["val_top1"],
          "best_val_top1": best["val_top1"], "best_epoch": best["epoch"],
          "train_seconds": round(sum(r["seconds"] for r in rows), 1)})
    return 0


def _recorded_source(run_dir: Path) -> str | None:
    """A resumed run reads the data it was started on, when that is still there."""
    from .checkpoints import read_json

    source = read_json(run_dir / "config.json").get("data", {}).get("source")
    return source if source and Path(source).exists() else None


def cmd_evaluate(args) -> int:
    from .data import load
    from .evaluate import evaluate_run

    result = evaluate_run(Path(args.run), load(args.data), tta=args.tta,
                          ensemble_size=args.ensemble, split=args.split, device=args.device,
                          limit=args.limit, record=args.record)
    emit(result)
    return 0


def cmd_export(args) -> int:
    from .export import export_run

    emit(export_run(Path(args.run), Path(args.out), snapshots=args.snapshots))
    return 0


def cmd_search(args) -> int:
    from .data import load
    from .search import random_search

    base = config_from_args(args)
    result = random_search(base, load(args.data), Path(args.out), trials=args.trials,
                           lr_range=tuple(args.lr), wd_range=tuple(args.wd),
                           progress=not args.quiet)
    emit(result)
    return 0
