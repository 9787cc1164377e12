"""The command line of tinyviz: data sets, training, evaluation, export and analysis of runs,
and models trained elsewhere (import).

Training options are generated from the fields of `TrainConfig` and `AugmentConfig` (their
help text included), so the command line, the Python API and `config.json` always agree.
Commands that report a result print one JSON line on stdout (progress goes to stderr), so
scripts can parse them. A bad command gets one line on stderr and exit status 2; a refusal
found later (missing data, a broken run) one line and status 1; never a traceback. Heavy
imports (torch, the model zoo) happen inside the commands that need them, so `tinyviz data`
stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, Literal

from .config import TTA_MODES, AugmentConfig, TrainConfig, help_of
from .errors import ConfigError, Stopped, TinyvizError
from .literature import cite

TRAIN_EXAMPLE = (
    "tinyviz train --data data/tiny-imagenet-200.zip --model resnet18 "
    "--epochs 18 --out runs/resnet18"
)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`error: ...`), not usage text plus a line."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    from .runtime.background import enter_child

    enter_child()  # a background job lowers its own priority, as its launcher asked
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"] and argv[1:2] not in (["-h"], ["--help"]):
        args = argparse.Namespace(func=cmd_serve, options=argv[1:])  # Streamlit's options
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (Stopped, KeyboardInterrupt):
        print("stopped; continue with --resume RUN_DIR", file=sys.stderr)
        return 130
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `tinyviz models | head`: the reader left, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (TinyvizError, OSError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tinyviz", description=" ".join(__doc__.split("\n\n")[0].split()))
    sub = p.add_subparsers(title="commands", parser_class=Parser)

    d = sub.add_parser("data", help="check the data set, build its cache, print a summary")
    d.add_argument(
        "path",
        nargs="?",
        help="Tiny ImageNet's zip or folder, or your own class folders "
        "(default: TINYVIZ_DATA or ./data/)",
    )
    d.add_argument(
        "--size",
        type=int,
        default=None,
        help="decode the images to SIZE x SIZE pixels (default: the size it was last "
        "decoded at, else 64; 32 for CIFAR-sized images, more for transfer learning); "
        "later commands use the size last decoded",
    )
    d.set_defaults(func=cmd_data)

    dl = sub.add_parser("download", help="download the official archive into ./data/")
    dl.add_argument("--url", default=None, help="where to download from")
    dl.add_argument("--dest", default="data", help="folder to put the zip in")
    dl.add_argument("--sha256", default=None, help="expected digest of the zip")
    dl.set_defaults(func=cmd_download)

    m = sub.add_parser("models", help="the registered models, as JSON lines")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser(
        "train", help="train a model into a run folder", epilog=f"example: {TRAIN_EXAMPLE}"
    )
    t.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    t.add_argument("--out", help="run folder to create")
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped or killed run; with --epochs N, train it to N epochs in all",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out (its weights and records are lost)",
    )
    t.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. --opt dropout=0.3 --opt freeze=true",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_options(t, TrainConfig, skip={"model_options", "augment"})
    add_dataclass_options(t, AugmentConfig)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a run on the validation set")
    e.add_argument("run", help="run folder")
    e.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    e.add_argument(
        "--tta",
        default="none",
        choices=list(TTA_MODES),
        help="test-time augmentation: none, flip, or 10crop (the whole image and its four "
        f"corners, each also flipped, as in {cite('004')})",
    )
    e.add_argument("--ensemble", type=int, default=1, help="average the best K snapshots")
    e.add_argument("--split", default="val", choices=["val", "train"], help="which images")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.add_argument("--limit", type=int, default=0, help="use only this many images (0 = all)")
    e.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="do not add the result to the run's evals.json",
    )
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="copy a run with half-precision weights (for shipping)")
    x.add_argument("run", help="run folder")
    x.add_argument("out", help="new folder for the copy")
    x.add_argument("--snapshots", type=int, default=0, help="also keep the best K snapshots")
    x.set_defaults(func=cmd_export)

    s = sub.add_parser("search", help="random search over learning rate and weight decay")
    s.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    s.add_argument("--out", required=True, help="folder for the trials and search.json")
    s.add_argument("--trials", type=int, default=8, help="runs to train")
    s.add_argument(
        "--lr",
        nargs=2,
        type=float,
        default=[1e-3, 1.0],
        metavar=("MIN", "MAX"),
        help="log-uniform range of the learning rate",
    )
    s.add_argument(
        "--wd",
        nargs=2,
        type=float,
        default=[1e-6, 1e-3],
        metavar=("MIN", "MAX"),
        help="log-uniform range of the weight decay",
    )
    s.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. --opt width=32",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    add_dataclass_options(s, TrainConfig, skip={"model_options", "augment", "lr", "weight_decay"})
    add_dataclass_options(s, AugmentConfig)
    s.set_defaults(func=cmd_search)

    a = sub.add_parser(
        "analyse",
        help="store a run's analysis of the validation set (what the explain pages read), "
        "and that of each of its epoch views still without one",
    )
    a.add_argument("run", help="run folder")
    a.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    a.add_argument(
        "--compact",
        action="store_true",
        help="keep only the compact arrays (for shipping a run): no exact log-probs, features",
    )
    a.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="if another process is computing it, say so and exit instead of waiting",
    )
    a.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_analyse)
    add_explain_commands(sub)
    add_import_command(sub)
    add_classify_command(sub)
    add_serve_command(sub)
    return p


def _choices(cls, name: str) -> list[str] | None:
    """The choices of a `Literal` field, else None."""
    hint = typing.get_type_hints(cls)[name]
    return list(typing.get_args(hint)) if typing.get_origin(hint) is Literal else None


def add_dataclass_options(parser: argparse.ArgumentParser, cls, skip=frozenset()) -> None:
    """One `--field-name` option per dataclass field, typed by its default, with its help."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        text = f"{help_of(f)} (default: {default})"
        choices = _choices(cls, f.name)
        if isinstance(default, bool):
            parser.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        elif choices:
            parser.add_argument(flag, dest=f.name, choices=choices, default=None, help=text)
        elif isinstance(default, tuple):
            text = f"{help_of(f)} (default: none)"
            parser.add_argument(
                flag, dest=f.name, type=int_list, default=None, metavar="N,N,...", help=text
            )
        else:
            parser.add_argument(
                flag,
                dest=f.name,
                type=type(default),
                default=None,
                metavar=type(default).__name__.upper(),
                help=text,
            )


def int_list(text: str) -> tuple[int, ...]:
    """`--epoch-views 1,3,6` (spaces allowed; empty: none) as a tuple of whole numbers."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want whole numbers separated by commas, like 1,3,6, not {text!r}"
        ) from None


def parse_value(text: str) -> Any:
    """`--opt` values: JSON where they parse (numbers, true/false), else strings."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The options given on the command line over `base` (default: the defaults)."""

    def picked(cls) -> dict[str, Any]:
        return {
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None
        }

    options = {}
    for item in args.opt:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--opt wants KEY=VALUE, not {item!r}")
        options[key.strip()] = parse_value(value.strip())
    base = base or TrainConfig()
    augment = dataclasses.replace(base.augment, **picked(AugmentConfig))
    return base.replace(
        **picked(TrainConfig), model_options=options or base.model_options, augment=augment
    )


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# ------------------------------------------------------------------- commands


def cmd_data(args) -> int:
    from .data import check_size, load

    size = check_size(args.size) if args.size is not None else None
    emit(load(args.path, size=size, remember=True).summary())
    return 0


def _run_size(run) -> int:
    """The image size a run was trained at (runs from before sizes: 64)."""
    from .data import SIZE

    return run.config.data.size or SIZE


def cmd_download(args) -> int:
    from .data import URL
    from .data.download import download

    path = download(args.url or URL, Path(args.dest), sha256=args.sha256)
    emit({"path": str(path)})
    return 0


def cmd_models(args) -> int:
    from . import models
    from .literature import shown_source

    for name in models.names():
        s = models.spec(name)
        emit(
            {
                "name": name,
                "family": s.family,
                "source": shown_source(s.source),
                "pretrained": s.pretrained,
                "description": s.description,
            }
        )
    return 0


def cmd_train(args) -> int:
    from . import models
    from .data import load
    from .runs.folder import RunFolder
    from .runtime import pick_device
    from .training.loop import prepare_new, resumed_config, train

    if args.resume:
        extra = [f for f in _given(args) if f != "epochs"]
        extra += ["opt"] * bool(args.opt) + ["out"] * bool(args.out)
        if extra:
            raise ConfigError(
                "--resume continues the run as it was configured: only --epochs "
                f"and --data go with it, not --{', --'.join(extra)}"
            )
        folder = RunFolder(Path(args.resume))
        resumed_config(folder, args.epochs)  # refuses before any data is read
        data = load(args.data or _recorded_source(folder), size=_recorded_size(folder))
        out = train(
            None,
            data,
            folder.path,
            resume=True,
            epochs=args.epochs,
            progress=not args.quiet,
            log=_log,
        )
    elif args.out:
        cfg = config_from_args(args)
        folder = RunFolder(Path(args.out))
        _check_writable(folder.path)
        models.check_options(cfg.model, cfg.model_options)
        pick_device(cfg.device)
        if folder.holds_run() and not args.overwrite:
            prepare_new(cfg, folder, overwrite=False)  # raises the one-line refusal
        data = load(args.data)
        out = train(
            cfg, data, folder.path, overwrite=args.overwrite, progress=not args.quiet, log=_log
        )
    else:
        raise ConfigError("train needs --out RUN_DIR (or --resume RUN_DIR)")
    return _report(Path(out))


def _given(args) -> list[str]:
    fields = [*dataclasses.fields(TrainConfig), *dataclasses.fields(AugmentConfig)]
    return [f.name for f in fields if getattr(args, f.name, None) is not None]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _report(out: Path) -> int:
    from .runs.folder import RunFolder, read_metrics
    from .runtime.distributed import world

    if not world().main:
        return 0  # under torchrun the first process reports
    rows = read_metrics(RunFolder(out))
    best = max(rows, key=lambda r: r.val_top1)
    emit(
        {
            "run": str(out),
            "epochs": len(rows),
            "last_val_top1": rows[-1].val_top1,
            "best_val_top1": best.val_top1,
            "best_epoch": best.epoch,
            "train_seconds": round(sum(r.seconds for r in rows), 1),
        }
    )
    return 0


def _check_writable(out: Path) -> None:
    """The run folder can be created and written, found before the data is decoded."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    import tempfile

    try:  # permissions alone do not tell (root, read-only mounts, /proc): try it
        Path(tempfile.mkdtemp(dir=parent, prefix=".tinyviz-probe-")).rmdir()
    except OSError as e:
        raise ConfigError(
            f"--out {out}: cannot create a folder in {parent} ({e.strerror or e})"
        ) from None


def _recorded_source(folder) -> str | None:
    """A resumed run reads the data it was started on, when that is still there."""
    from .runs.folder import read_config

    source = read_config(folder).data.source
    return source if source and Path(source).exists() else None


def _recorded_size(folder) -> int:
    """A resumed run reads its images at the size it was started at."""
    from .data import SIZE
    from .runs.folder import read_config

    return read_config(folder).data.size or SIZE


def cmd_evaluate(args) -> int:
    from .data import load
    from .runs.evaluate import check_request, evaluate_run
    from .runs.folder import open_run
    from .runtime import pick_device

    check_request(args.tta, args.ensemble, args.split, args.limit)
    pick_device(args.device)
    run = open_run(Path(args.run))  # a broken run is refused before the data is read
    result = evaluate_run(
        Path(args.run),
        load(args.data, size=_run_size(run)),
        tta=args.tta,
        ensemble_size=args.ensemble,
        split=args.split,
        device=args.device,
        limit=args.limit,
        record=args.record,
    )
    emit(result)
    return 0


def cmd_export(args) -> int:
    from .explain import epochs
    from .runs.export import export_run, megabytes

    result = export_run(Path(args.run), Path(args.out), snapshots=args.snapshots)
    copied = epochs.copy_analyses(Path(args.run), Path(args.out))
    emit({**result, "epoch_analyses": copied, "megabytes": megabytes(Path(args.out))})
    return 0


def cmd_search(args) -> int:
    from .data import load
    from .training.search import check_ranges, random_search

    # --lr here is the search's range, not TrainConfig.lr: keep it out of the base recipe
    base = config_from_args(argparse.Namespace(**{**vars(args), "lr": None}))
    check_ranges(args.trials, tuple(args.lr), tuple(args.wd))
    result = random_search(
        base,
        load(args.data),
        Path(args.out),
        trials=args.trials,
        lr_range=tuple(args.lr),
        wd_range=tuple(args.wd),
        progress=not args.quiet,
    )
    emit(result)
    return 0


def cmd_analyse(args) -> int:
    import time

    from .data import load
    from .errors import JobError
    from .explain import analysis
    from .runs.folder import open_run
    from .runtime import background

    if args.limit < 0:
        raise ConfigError("--limit must be 0 (all images) or more")
    if args.nice:
        background.lower_priority(args.nice)
    run = open_run(Path(args.run))  # a broken run is refused before the data is read
    data = load(args.data, size=_run_size(run), progress=not args.quiet)
    if list(run.wnids) != list(data.classes.wnids):
        raise ConfigError(f"{run.name} was trained on other classes than this data set's")
    start = time.perf_counter()
    try:
        folder = analysis.compute(
            run.path,
            data,
            device=args.device,
            limit=args.limit,
            progress=None if args.quiet else _fraction_bar(),
            wait=args.wait,
        )
    except JobError as e:
        emit({"run": str(run.path), "status": "busy", "message": str(e)})
        return 0
    views, busy = _analyse_views(run.path, data, args)
    freed = analysis.compact(folder) if args.compact else 0
    freed += sum(analysis.compact(v.folder) for v in views if args.compact and v.folder)
    out = analysis.read(folder)
    gaussians = _gaussians(run, data, folder, len(out.outputs), args)
    emit(
        {
            "run": str(run.path),
            "status": "done",
            "folder": str(folder),
            "images": len(out.outputs),
            "gaussians": gaussians,
            "top1": round(out.outputs.top1, 4),
            "exact": out.exact,
            "freed_bytes": freed,
            "epoch_views": [
                {"epoch": v.epoch, "top1": _top1_of(v.folder), "stored": v.analysed} for v in views
            ],
            **({"epoch_views_busy": busy} if busy else {}),
            "seconds": round(time.perf_counter() - start, 1),
        }
    )
    return 0


def _gaussians(run, data, folder: Path, images: int, args) -> str | None:
    """The Gaussians of the unfamiliar-photo score (`explain.gaussians`), fitted once after
    the whole validation set's analysis: where they are, or why there are none."""
    from .errors import TinyvizError
    from .explain import familiar, gaussians

    if args.limit:
        return None
    if familiar.load_gaussians(folder, run.path, images) is not None:
        return "stored"
    try:
        return str(gaussians.build(run.path, data, folder, args.device))
    except (TinyvizError, OSError, RuntimeError) as e:
        return f"not fitted: {e}"


def _analyse_views(run_dir: Path, data, args):
    """The epoch views' analyses (only of the whole validation set: `--limit 0`), those
    missing computed now; and the message if another process is computing one."""
    from .errors import JobError
    from .explain import epochs

    if args.limit:
        return [], ""
    bars = None if args.quiet else (lambda epoch: _fraction_bar(f"epoch {epoch}"))
    busy = ""
    try:
        epochs.compute_missing(run_dir, data, device=args.device, progress_for=bars, wait=args.wait)
    except JobError as e:
        busy = str(e)
    return list(epochs.views(run_dir, data)), busy


def _top1_of(folder) -> float | None:
    from .explain import analysis

    return None if folder is None else round(analysis.read(folder).outputs.top1, 4)


def _fraction_bar(desc: str = "analysis"):
    """A terminal bar for a progress callback that takes `(fraction, message)`."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def report(fraction: float, message: str) -> None:
        bar.set_postfix_str(message, refresh=False)
        bar.update(round(fraction * 1000) - bar.n)
        if fraction >= 1:
            bar.close()

    return report


# ------------------------------------------------- explanations (issue 12)


def add_explain_commands(sub) -> None:
    """`sanity` (the saliency methods' checks) and `train-features` (for the pages)."""
    c = sub.add_parser(
        "sanity",
        help="check a run's saliency methods: weight randomization and deletion/insertion",
    )
    c.add_argument("run", help="run folder")
    c.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--images", type=int, default=8, help="validation images (default: 8)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_sanity)
    f = sub.add_parser(
        "train-features",
        help="store a run's penultimate features of training images (for the explain pages)",
    )
    f.add_argument("run", help="run folder")
    f.add_argument("--data", help="zip or folder (default: TINYVIZ_DATA or ./data/)")
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    f.add_argument("--classes", type=int, nargs="*", help="class indices (default: every class)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_train_features)


def _explain_start(args):
    from .data import load
    from .runs.folder import open_run

    run = open_run(Path(args.run))  # a broken run is refused before the data is read
    data = load(args.data, size=_run_size(run), progress=not args.quiet)
    if list(run.wnids) != list(data.classes.wnids):
        raise ConfigError(f"{run.name} was trained on other classes than this data set's")
    return run, data


def _both(*callbacks):
    live = [c for c in callbacks if c is not None]
    return lambda fraction, message: [c(fraction, message) for c in live]


def cmd_sanity(args) -> int:
    from .explain import sanity, tasks

    if args.images < 1:
        raise ConfigError("--images must be at least 1")
    run, data = _explain_start(args)
    settings = sanity.Settings(images=args.images)
    with tasks.running(run.path, "sanity") as write:
        report = sanity.compute(
            run.path,
            data,
            settings=settings,
            device=args.device,
            progress=_both(write, None if args.quiet else _fraction_bar()),
        )
    emit(
        {
            "run": str(run.path),
            "stages": list(report.stages),
            "stage_titles": list(report.stage_titles),
            "images": len(report.images),
            "seconds": report.seconds,
            "random_deletion_auc": round(report.random_deletion_auc, 4),
            "random_insertion_auc": round(report.random_insertion_auc, 4),
            "methods": {
                m.method: {
                    "abs_corr": list(m.abs_corr),
                    "signed_corr": list(m.signed_corr),
                    "deletion_auc": round(m.deletion_auc, 4),
                    "insertion_auc": round(m.insertion_auc, 4),
                    "verdict": m.verdict,
                    "seconds": m.seconds,
                }
                for m in report.methods
            },
        }
    )
    return 0


def cmd_train_features(args) -> int:
    import time

    from .explain import tasks, train_features

    run, data = _explain_start(args)
    classes = args.classes if args.classes else list(range(len(data.classes.wnids)))
    bad = [c for c in classes if not 0 <= c < len(data.classes.wnids)]
    if bad:
        raise ConfigError(f"no class {bad[0]}: classes are 0 to {len(data.classes.wnids) - 1}")
    start = time.perf_counter()
    with tasks.running(run.path, "train-features") as write:
        train_features.compute(
            run.path,
            data,
            classes,
            device=args.device,
            progress=_both(write, None if args.quiet else _fraction_bar()),
        )
    emit(
        {
            "run": str(run.path),
            "classes": len(classes),
            "cached_classes": len(train_features.cached_classes(run.path, data)),
            "seconds": round(time.perf_counter() - start, 1),
        }
    )
    return 0


# ------------------------------------------------------- your own model (issue 17)

IMPORT_HELP = """A model trained in your own code becomes a run folder that every page explains:
it is scored on DATA's validation images (so it must have been trained on DATA's classes),
and its analysis starts in the background.

ARCH (not needed for .onnx and .keras/.h5 files): a tinyviz model name,
torchvision:NAME, timm:NAME (built without downloading weights), or your own class or
factory as path/to/file.py:Name or package.module:Name. Your code RUNS: when the model is
imported and every time the run is loaded later (the run records the file's digest and
refuses a changed file). Weights files are read without unpickling code (safetensors, or
torch.load(weights_only=True)); a whole pickled model is refused.

Examples:
  # PyTorch, after torch.save(model.state_dict(), "mine.pt"):
  tinyviz import mine.pt --arch torchvision:resnet18 --data tiny-imagenet-200.zip --out runs/mine
  # Keras 3 (a Keras 2 .h5 too, where Keras 3 reads it):
  tinyviz import mine.keras --data tiny-imagenet-200.zip --out runs/mine-keras
  # TensorFlow: python -m tf2onnx.convert --saved-model DIR --opset 17 --output mine.onnx
  tinyviz import mine.onnx --data tiny-imagenet-200.zip --out runs/mine-onnx"""


def add_import_command(sub) -> None:
    """`tinyviz import WEIGHTS --arch ARCH --data DATA --out RUN`."""
    i = sub.add_parser(
        "import",
        help="make a run folder from a model trained elsewhere, evaluate it, start its analysis",
        description=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("weights", help=".safetensors, .pt/.pth/.pth.tar/.ckpt, .onnx, .keras or .h5")
    i.add_argument("--arch", help="the architecture (see above)")
    i.add_argument(
        "--data", help="the data set it was trained on, zip or folder (default: TINYVIZ_DATA)"
    )
    i.add_argument("--out", required=True, help="the new run folder")
    i.add_argument(
        "--size",
        type=int,
        help="the input size the model was trained at, in pixels (default: what a timm, ONNX "
        "or Keras model says, else the data set's image size); images are resized to it",
    )
    i.add_argument(
        "--normalize",
        help="imagenet, tf ((x - 0.5) / 0.5), none ([0, 1] pixels), 255 (0-255 pixels), or "
        "M1,M2,M3:S1,S2,S3 in units of a [0, 1] pixel (default: imagenet for torchvision and "
        "your code, timm's own for timm, none for ONNX and Keras, 255 for a Keras model "
        "whose first layer is Rescaling(1/255))",
    )
    i.add_argument("--channels", choices=["rgb", "bgr"], help="channel order (default: rgb)")
    i.add_argument(
        "--classes",
        type=Path,
        help="a text file naming the class of each output, one per line (wnid or name); "
        "default: the class folders sorted by name",
    )
    i.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (evaluation)")
    i.add_argument(
        "--no-analysis",
        dest="analysis",
        action="store_false",
        help="do not start the background analysis the explain pages read",
    )
    i.set_defaults(func=cmd_import)


def cmd_import(args) -> int:
    from .data import load
    from .runs.evaluate import evaluate_run
    from .runs.importer import ImportRequest, import_model, near_chance
    from .runtime import pick_device

    pick_device(args.device)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} already exists and is not empty: choose a new folder")
    if args.size is not None and not 8 <= args.size <= 1024:
        raise ConfigError(f"--size must be 8 to 1024 pixels, not {args.size}")
    data = load(args.data)
    request = ImportRequest(
        weights=Path(args.weights),
        out=out,
        arch=args.arch,
        size=args.size,
        normalize=args.normalize,
        channels=args.channels,
        classes=args.classes,
    )
    run_dir = import_model(request, data)
    result = evaluate_run(run_dir, data, device=args.device)
    warning = near_chance(result["top1"], len(data.classes.wnids))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    analysis = "not started"
    if args.analysis:
        from .explain import analysis_job

        analysis = analysis_job.start(run_dir, data).state
    emit(
        {
            "run": str(run_dir),
            "top1": round(result["top1"], 4),
            "top5": round(result["top5"], 4),
            "n": result["n"],
            "classes": len(data.classes.wnids),
            "analysis": analysis,
            **({"warning": warning} if warning else {}),
        }
    )
    return 0


# ------------------------------------------------- classify photos (issue 21)


def add_classify_command(sub) -> None:
    """`classify`: photos through a run, as the Classify page answers them."""
    c = sub.add_parser(
        "classify",
        help="the top classes of photos (one JSON line each), and whether each looks like "
        "anything the run was trained on",
    )
    c.add_argument("photos", nargs="+", metavar="PHOTO", help="image files, as uploads take")
    c.add_argument(
        "--run",
        help="run folder, or the name of a run in checkpoints/, runs/ or TINYVIZ_RUNS "
        "(default: the dashboard's default run)",
    )
    c.add_argument("--top", type=int, default=5, help="how many classes (default: 5)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    """One JSON line per photo; an unreadable one gets an `error:` line and the rest go on."""
    from .demo import images, predict
    from .explain import familiar
    from .runs.weights import load_model
    from .runtime.device import pick_device

    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    device = pick_device(args.device)
    run = _named_run(args.run) if args.run else _default_run(device.type)
    model = load_model(run, device=device)
    checker = familiar.checker(run.path)
    if checker is None:
        print(f"note: {run.name} has no stored analysis yet, so `familiar` is null "
              f"(tinyviz analyse {run.path})", file=sys.stderr)  # fmt: skip
    elif checker.measured is not None and not checker.measured.can_tell:
        print(f"note: {run.name} cannot tell photos of its classes from others (AUROC "
              f"{checker.measured.auroc:.2f}, bench/unfamiliar.py), so `familiar` is null",
              file=sys.stderr)  # fmt: skip
    size = getattr(run.config.data, "size", None) or 64  # the run's image size
    failed = 0
    for photo in args.photos:
        try:
            up = images.load_upload(_photo_bytes(Path(photo), images.MAX_BYTES), size=size)
        except TinyvizError as e:
            print(f"error: {photo}: {_one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        pred = predict.predict_ensemble(
            [model], up.rgb, run.class_names, run.wnids, k=args.top, label=run.name
        )
        fam = predict.familiarity(model, up.rgb, checker)
        emit(
            {
                "file": photo,
                "run": run.name,
                "top": [
                    {"class": n, "wnid": w, "p": round(p, 4)}
                    for n, w, p in zip(pred.names, pred.wnids, pred.probs, strict=True)
                ],
                "sure": predict.verdict(pred).sure,
                **_familiar_fields(fam),
            }
        )
    return 1 if failed else 0


def _familiar_fields(fam) -> dict:
    """`familiar` (null where the run has no analysis, or cannot tell), its score, the run's
    threshold and the AUROC the bench measured on the run (null: not measured)."""
    said = fam.as_json() if fam is not None else {}
    return {
        "familiar": said.get("familiar"),
        "familiar_score": said.get("score"),
        "familiar_threshold": said.get("threshold"),
        "familiar_auroc": said.get("auroc"),
    }


def _named_run(text: str):
    """`--run`: a run folder, or a run's name (as the JSON lines print it) in a run root."""
    from .errors import CheckpointError
    from .runs.folder import open_run
    from .runs.roots import configured_roots

    path = Path(text).expanduser()
    if path.is_dir() or len(path.parts) != 1:
        return open_run(path)
    roots = configured_roots()
    for root in roots:
        if (root / text).is_dir():
            return open_run(root / text)
    where = ", ".join(str(r) for r in roots)
    raise CheckpointError(f"no run folder {text} here nor in {where}")


def _default_run(kind: str):
    """The run the dashboard opens with on this kind of device (`speed.default_run`)."""
    from .errors import CheckpointError
    from .explain import speed
    from .runs.folder import scan
    from .runs.roots import configured_roots

    roots = configured_roots()
    run = speed.default_run(list(scan(roots).runs), kind)
    if run is None:
        where = ", ".join(str(r) for r in roots)
        raise CheckpointError(f"no runs found in {where}: name one with --run")
    return run


def _photo_bytes(path: Path, limit: int) -> bytes:
    """A photo's bytes, refused as an upload would be: not a file, empty, or too large."""
    import stat

    from .demo.images import describe_size
    from .errors import ImageError

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("not a file")
        if st.st_size > limit:
            raise ImageError(f"file is larger than {describe_size(limit)}")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as e:
        raise ImageError(e.strerror or str(e)) from None


# ------------------------------------------------------------- the dashboard (issue 19)


def add_serve_command(sub) -> None:
    """`serve`: the dashboard, with the memory settings a crowded server needs."""
    s = sub.add_parser(
        "serve",
        help="start the dashboard (streamlit run app.py) with the memory settings a "
        "crowded server needs; Streamlit's options follow (--server.port 8502 ...)",
        description="Runs `streamlit run app.py` of this checkout with PYTHONMALLOC=malloc "
        "and MALLOC_ARENA_MAX=2 in its environment (a value you set yourself is kept): "
        "after a crowd of visitors the server gives back nearly all the memory it freed. "
        "Every option after `serve` is Streamlit's own, e.g. "
        "`tinyviz serve --server.port 8502 --server.address 0.0.0.0`.",
    )
    s.add_argument("options", nargs=argparse.REMAINDER, help="passed to `streamlit run`")
    # main() hands everything after `serve` to Streamlit unparsed (argparse would take
    # `--server.port` for an option of its own); this parser is for --help
    s.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from .runtime import serve

    serve.serve(args.options)  # replaces this process
    return 0
