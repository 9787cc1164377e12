"""The Train page's form: the settings of a new run (from a preset or a run's recipe), its
time estimate from a few measured steps, and Start. The job runs in its own process
(`tinyviz.runs.jobs`); `roots.runs_dir()` holds new runs and the machine's one job lock."""

from __future__ import annotations

import json
import time

import streamlit as st

from pages import _augment, _state
from tinyviz import models
from tinyviz.config import OPTIMIZERS, SCHEDULES, AugmentConfig, TrainConfig
from tinyviz.errors import TinyvizError
from tinyviz.literature import shown_source
from tinyviz.runs import jobs, roots
from tinyviz.runs.folder import RunFolder, read_config
from tinyviz.training import estimate

AUG = [f.name for f in AugmentConfig.__dataclass_fields__.values()]
FIELDS = [
    "model",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "label_smoothing",
    "ema",
    "compile",
    "snapshots",
    "train_limit",
]
BUILT_IN = {
    "Quick CPU test: logistic regression, 2 epochs": TrainConfig(
        model="logreg",
        epochs=2,
        batch_size=100,
        lr=0.01,
        momentum=0.0,
        nesterov=False,
        schedule="constant",
        label_smoothing=0.0,
        snapshots=0,
    ),
    "Small CPU model: simple_cnn, 5 epochs": TrainConfig(
        model="simple_cnn", epochs=5, batch_size=128, lr=0.05
    ),
    "Fast ResNet-18 (GPU; tinyviz defaults)": TrainConfig(),
}


def presets() -> dict[str, TrainConfig]:
    """The built-in presets, then the recipe of every run trained here (not imported)."""
    runs = _state.all_runs()
    return BUILT_IN | {  # an imported run's recipe is a placeholder (trained elsewhere)
        f"Recipe of {r.name} ({r.model_name})": r.config.train for r in runs if r.imported is None
    }


def load_preset() -> None:
    cfg, default = presets()[st.session_state["tv_tr_preset"]], TrainConfig()
    for name in FIELDS:  # typed like the defaults: a widget refuses an int where it has floats
        st.session_state[f"tv_tr_{name}"] = type(getattr(default, name))(getattr(cfg, name))
    for name in AUG:
        kind = type(getattr(default.augment, name))
        st.session_state[f"tv_tr_aug_{name}"] = kind(getattr(cfg.augment, name))
    st.session_state["tv_tr_options"] = dict(cfg.model_options)
    st.session_state["tv_tr_epoch_views"] = list(cfg.epoch_views)
    st.session_state["tv_tr_name"] = f"{cfg.model}-{time.strftime('%m%d-%H%M')}"


def start_job(options: dict) -> None:
    """Start's callback: it runs before the page, so it may give the form a fresh run name."""
    s = st.session_state
    try:
        base = presets().get(s["tv_tr_preset"], TrainConfig())  # keeps momentum etc.
        cfg = base.replace(
            **{f: s[f"tv_tr_{f}"] for f in FIELDS},
            epoch_views=tuple(sorted(s["tv_tr_epoch_views"])),
            model_options=options,
            augment=AugmentConfig(**{a: s[f"tv_tr_aug_{a}"] for a in AUG}),
        )
        jobs.start(
            cfg,
            roots.runs_dir() / s["tv_tr_name"].strip(),
            data=_state.data_path(),
            jobs_dir=roots.runs_dir(),
        )
        s["tv_tr_name"] = f"{cfg.model}-{time.strftime('%m%d-%H%M%S')}"
    except (jobs.JobError, ValueError, TypeError) as e:
        s["tv_tr_error"] = f"Could not start: {e}"


def start_again(run_dir) -> None:
    """A run stopped before its first epoch ended kept nothing to resume: the same recipe
    into a fresh folder (the stopped one, and its log, stay as they are)."""
    s = st.session_state
    try:
        cfg = read_config(RunFolder(run_dir)).train
        name = f"{run_dir.name}-again"
        for k in range(2, 100):
            if not jobs.check_run_name(name, roots.runs_dir()):
                break
            name = f"{run_dir.name}-again{k}"
        jobs.start(cfg, roots.runs_dir() / name, data=_state.data_path(), jobs_dir=roots.runs_dir())
    except (TinyvizError, ValueError, TypeError) as e:
        s["tv_tr_error"] = f"Could not start again: {e}"


@st.cache_data(show_spinner=False, max_entries=32)
def speed(model: str, options: str, batch: int, optimizer: str, device: str) -> estimate.Speed:
    """A few training steps timed on this machine (seconds), once per model and batch."""
    cfg = TrainConfig(model=model, batch_size=batch, optimizer=optimizer)
    return estimate.measure(cfg.replace(model_options=json.loads(options)), device)


def time_estimate(options: dict, train_images: int, val_images: int, device: str) -> None:
    """ "About N min for E epochs on the CPU", from the chosen model's measured speed."""
    s = st.session_state
    model = s["tv_tr_model"]
    with st.spinner(f"Timing a few training steps of {model} on the {device.upper()}..."):
        try:
            sp = speed(
                model,
                json.dumps(options, sort_keys=True),
                int(s["tv_tr_batch_size"]),
                s["tv_tr_optimizer"],
                device,
            )
        except (TinyvizError, ValueError, TypeError, RuntimeError) as e:
            st.caption(f":orange[No time estimate: {e}]")
            return
    epochs = int(s["tv_tr_epochs"])
    seconds = estimate.seconds_for(sp, epochs, train_images, val_images)
    st.markdown(
        f":material/timer: **{estimate.describe(seconds, epochs, device)}** (estimate)",
        help=f"Measured on this machine just now: {sp.train_images_per_s:,.0f} images/s "
        f"training, {sp.eval_images_per_s:,.0f} images/s validating ({sp.steps} steps timed). "
        "Other jobs on the machine slow it down; loading the data at the start (up to a few "
        "minutes on a busy CPU), augmentation and checkpoints come on top.",
    )


def keyed(widget, label, name, *args, **kw):
    return widget(label, *args, key=f"tv_tr_{name}", persist_state="session", **kw)


def form(data, running, device: str) -> None:
    """The settings of a new run, its time estimate and Start (disabled while a job runs)."""
    PRESETS = presets()  # noqa: N806 - read once per script run
    if "tv_tr_preset" not in st.session_state:
        st.session_state["tv_tr_preset"] = (
            next(iter(PRESETS)) if device == "cpu" else "Fast ResNet-18 (GPU; tinyviz defaults)"
        )
    if "tv_tr_model" not in st.session_state:
        load_preset()
    with st.expander("Settings of a new run", expanded=running is None):
        _fields(data, running, device, PRESETS)


def _fields(data, running, device: str, PRESETS: dict) -> None:  # noqa: N803
    keyed(st.selectbox, "Start from a preset", "preset", list(PRESETS), on_change=load_preset)
    c = st.columns([2, 1, 1, 1])
    model = keyed(c[0].selectbox, "Model", "model", models.names())
    spec = models.spec(model)
    c[0].caption(f"{spec.description} Family: {spec.family}; from: {shown_source(spec.source)}.")
    keyed(c[1].number_input, "Epochs", "epochs", 1, 500)
    keyed(
        c[2].selectbox,
        "Batch size",
        "batch_size",
        sorted({32, 64, 100, 128, 256, 512, 1024, st.session_state["tv_tr_batch_size"]}),
    )
    keyed(
        c[3].number_input, "Training images (0 = all)", "train_limit", 0, len(data.train), step=1000
    )
    c = st.columns(4)
    keyed(c[0].selectbox, "Optimizer", "optimizer", list(OPTIMIZERS))
    keyed(c[1].number_input, "Learning rate", "lr", 0.0, 10.0, format="%.5f", step=0.001)
    keyed(c[2].selectbox, "Schedule", "schedule", list(SCHEDULES))
    keyed(c[3].number_input, "Weight decay", "weight_decay", 0.0, 1.0, format="%.1e", step=1e-4)
    c = st.columns(4)
    keyed(c[0].slider, "Label smoothing", "label_smoothing", 0.0, 0.3, step=0.05)
    keyed(c[1].number_input, "EMA of weights (0 = off)", "ema", 0.0, 0.9999, format="%.4f")
    keyed(c[2].number_input, "Snapshots kept (best epochs)", "snapshots", 0, 20)
    keyed(c[3].checkbox, "torch.compile (GPU)", "compile")
    epochs = int(st.session_state["tv_tr_epochs"])
    kept = [e for e in st.session_state.get("tv_tr_epoch_views", []) if e <= epochs]
    st.session_state["tv_tr_epoch_views"] = kept  # fewer epochs: the views beyond them go
    keyed(
        st.multiselect,
        "Epoch views: epochs to keep for the explain pages' epoch slider",
        "epoch_views",
        list(range(1, epochs + 1)),
        placeholder="none",
        help="At each, the weights in half precision and that epoch's analysis of the "
        "validation set (one more pass over it: seconds on a GPU, minutes on a CPU), so "
        "Confusion, Channels and Embeddings can show the run as it learned.",
    )
    st.markdown("**Augmentation** (preview it on the Data page)")
    _augment.augment_ui("tv_tr_aug_")
    shown = roots.runs_dir().name + "/"  # not the server's full path: visitors read this
    name = keyed(st.text_input, f"Run name (a folder in {shown})", "name").strip()

    s = st.session_state
    options = s["tv_tr_options"] if PRESETS[s["tv_tr_preset"]].model == model else {}
    problem = jobs.check_run_name(name, roots.runs_dir())
    if running is not None and running.active:
        problem = (
            f"A training job is running ({running.run_dir.name}): one job at a time "
            "on this machine. Stop it below first."
        )
    if problem:
        st.caption(f":orange[{problem}]")
    limit = int(s["tv_tr_train_limit"])
    time_estimate(
        options, min(limit, len(data.train)) if limit else len(data.train), len(data.val), device
    )
    st.button(
        "Start training",
        type="primary",
        icon=":material/play_arrow:",
        disabled=bool(problem),
        on_click=start_job,
        args=(options,),
    )
    if "tv_tr_error" in s:
        st.error(s.pop("tv_tr_error"))
