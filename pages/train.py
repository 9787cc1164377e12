"""Train: start a run in its own process, watch it live, stop and resume it (one at a time)."""

import dataclasses
import json
import time

import altair as alt
import pandas as pd
import streamlit as st

from pages import _state, _widgets
from tinyviz import models
from tinyviz.config import OPTIMIZERS, SCHEDULES, AugmentConfig, TrainConfig
from tinyviz.errors import TinyvizError
from tinyviz.literature import shown_source
from tinyviz.runs import jobs, roots
from tinyviz.runs.folder import RunFolder, read_config, read_metrics
from tinyviz.runs.progress import TrainProgress
from tinyviz.training import estimate

_state.entry(__file__)

RUNS = roots.runs_dir()  # new runs and the job lock live here
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
PRESETS = {
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
PRESETS.update({f"Recipe of {r.name} ({r.model_name})": r.config.train for r in _state.all_runs()})


def load_preset() -> None:
    cfg, default = PRESETS[st.session_state["tv_tr_preset"]], TrainConfig()
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
        base = PRESETS.get(s["tv_tr_preset"], TrainConfig())  # keeps momentum etc.
        cfg = base.replace(
            **{f: s[f"tv_tr_{f}"] for f in FIELDS},
            epoch_views=tuple(sorted(s["tv_tr_epoch_views"])),
            model_options=options,
            augment=AugmentConfig(**{a: s[f"tv_tr_aug_{a}"] for a in AUG}),
        )
        jobs.start(cfg, RUNS / s["tv_tr_name"].strip(), data=_state.data_path(), jobs_dir=RUNS)
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
            if not jobs.check_run_name(name, RUNS):
                break
            name = f"{run_dir.name}-again{k}"
        jobs.start(cfg, RUNS / name, data=_state.data_path(), jobs_dir=RUNS)
    except (TinyvizError, ValueError, TypeError) as e:
        s["tv_tr_error"] = f"Could not start again: {e}"


@st.cache_data(show_spinner=False, max_entries=32)
def speed(model: str, options: str, batch: int, optimizer: str, device: str) -> estimate.Speed:
    """A few training steps timed on this machine (seconds), once per model and batch."""
    cfg = TrainConfig(model=model, batch_size=batch, optimizer=optimizer)
    return estimate.measure(cfg.replace(model_options=json.loads(options)), device)


def time_estimate(options: dict, train_images: int) -> None:
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
    seconds = estimate.seconds_for(sp, epochs, train_images, len(data.val))
    st.markdown(
        f":material/timer: **{estimate.describe(seconds, epochs, device)}** (estimate)",
        help=f"Measured on this machine just now: {sp.train_images_per_s:,.0f} images/s "
        f"training, {sp.eval_images_per_s:,.0f} images/s validating ({sp.steps} steps timed). "
        "Other jobs on the machine slow it down; loading the data at the start (up to a few "
        "minutes on a busy CPU), augmentation and checkpoints come on top.",
    )


def duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {s:02d} s"


def keyed(widget, label, name, *args, **kw):
    return widget(label, *args, key=f"tv_tr_{name}", persist_state="session", **kw)


st.title("Train a model")
device = _state.device()
if device == "cpu":
    st.warning(
        "Training on the **CPU**: only small models (logreg, mlp, simple_cnn) train at "
        "a useful speed here; a ResNet-18 epoch takes hours. The shipped runs were "
        "trained on a GPU.",
        icon=":material/memory:",
    )
else:
    st.success(f"Training on **{device}**.", icon=":material/bolt:")
data = _widgets.require_data()
running = jobs.current(RUNS)

if "tv_tr_preset" not in st.session_state:
    st.session_state["tv_tr_preset"] = (
        next(iter(PRESETS)) if device == "cpu" else "Fast ResNet-18 (GPU; tinyviz defaults)"
    )
if "tv_tr_model" not in st.session_state:
    load_preset()
with st.expander("Settings of a new run", expanded=running is None):
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
    _widgets.augment_ui("tv_tr_aug_")
    shown = RUNS.name + "/"  # not the server's full path: visitors read this
    name = keyed(st.text_input, f"Run name (a folder in {shown})", "name").strip()

    s = st.session_state
    options = s["tv_tr_options"] if PRESETS[s["tv_tr_preset"]].model == model else {}
    problem = jobs.check_run_name(name, RUNS)
    if running is not None and running.active:
        problem = (
            f"A training job is running ({running.run_dir.name}): one job at a time "
            "on this machine. Stop it below first."
        )
    if problem:
        st.caption(f":orange[{problem}]")
    limit = int(s["tv_tr_train_limit"])
    time_estimate(options, min(limit, len(data.train)) if limit else len(data.train))
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

st.subheader("Training job", anchor=False)
st.session_state["tv_tr_active"] = bool(running and running.active)


def job_panel() -> None:
    now = jobs.current(RUNS)
    if bool(now and now.active) != st.session_state.get("tv_tr_active"):
        st.rerun()  # started in another tab, or just ended: refresh the whole page
    job = now or jobs.latest(RUNS)
    if job is None:
        st.info("No training job yet. Choose settings above and press Start.")
        return
    p = job.progress or TrainProgress("running", 0, 0.0, 0.0)
    st.markdown(
        f"**{_widgets.plain(job.run_dir.name)}**: {job.status}"
        + (f" ({_widgets.plain(job.message)})" if job.message else "")
    )
    st.progress(
        p.fraction, text=f"step {p.step:,} of {p.total_steps:,}" if p.total_steps else "starting"
    )
    c = st.columns(4)
    c[0].metric("Epoch", f"{p.epoch} of {p.epochs or '?'}")
    c[1].metric("Images / s", f"{p.images_per_s:,.0f}")
    c[2].metric(
        "Time left",
        duration(p.eta_s) if job.active and p.eta_s else "estimating" if job.active else "-",
    )
    end = time.time() if job.active else p.updated or time.time()
    c[3].metric(
        "Running for" if job.active else "Ran for",
        duration(end - job.started) if job.started else "-",
    )
    try:
        rows = [dataclasses.asdict(r) for r in read_metrics(RunFolder(job.run_dir))]
    except TinyvizError:
        rows = []
    if rows:
        long = pd.DataFrame(rows).melt(
            "epoch", ["train_top1", "val_top1", "train_loss", "val_loss"]
        )
        long["split"] = long.variable.str.split("_").str[0]
        charts = st.columns(2)
        epochs = alt.Scale(domain=[1, max(2, int(p.epochs or len(rows)))])
        colours = alt.Scale(domain=["train", "val"], range=["#f58518", "#1c6fd1"])
        for col, what, fmt in ((charts[0], "top1", ".0%"), (charts[1], "loss", ".2f")):
            col.altair_chart(
                alt.Chart(long[long.variable.str.endswith(what)])
                .mark_line(point=True)
                .encode(
                    x=alt.X("epoch:Q", scale=epochs, axis=alt.Axis(format="d", tickMinStep=1)),
                    y=alt.Y(
                        "value:Q",
                        title="top-1 accuracy" if what == "top1" else "loss",
                        axis=alt.Axis(format=fmt),
                    ),
                    color=alt.Color("split:N", title=None, scale=colours),
                    tooltip=["epoch", "split", alt.Tooltip("value:Q", format=".4f")],
                )
                .properties(height=220),
                width="stretch",
            )
        st.caption(
            "train: the epoch's augmented batches, as they were trained on; "
            "val: the validation images after each epoch."
        )
    st.code(
        "\n".join(jobs.log_tail(job.run_dir, 12)) or "(no output yet)",
        language=None,
        wrap_lines=True,
    )
    if job.active and st.button("Stop", icon=":material/stop:"):
        jobs.stop(job, jobs_dir=RUNS)
        st.rerun()
    if job.resumable and st.button("Resume", icon=":material/replay:", key="tv_tr_resume_job"):
        resume(job.run_dir)
    elif job.status in ("stopped", jobs.ENDED) and not job.resumable and not job.finished_all:
        st.warning(
            "Nothing to resume: the run stopped before its first epoch ended, so no "
            "weights were saved. Start it again from the beginning (a new run folder; "
            "this one is kept).",
            icon=":material/restart_alt:",
        )
        st.button(
            "Start again",
            icon=":material/restart_alt:",
            key="tv_tr_again",
            disabled=bool(now and now.active),
            on_click=start_again,
            args=(job.run_dir,),
        )


def resume(run_dir) -> None:
    try:
        jobs.resume(run_dir, jobs_dir=RUNS, data=_state.data_path())
        st.rerun()
    except jobs.JobError as e:
        st.error(str(e))


st.fragment(job_panel, run_every=2 if st.session_state["tv_tr_active"] else 10)()

recent = jobs.recent_runs(RUNS)
if recent:
    st.subheader(f"Runs in {RUNS}", anchor=False)
    busy = bool(running and running.active)
    for r in recent:
        c = st.columns([2.5, 3, 1.8, 1.2, 1.2], vertical_alignment="center")
        c[0].markdown(f"**{_widgets.plain(r.path.name)}**")
        c[1].text(r.problem or f"{r.epochs} epochs · best val top-1 {r.best_top1 or 0:.1%}")
        c[2].write(r.job.status)
        c[3].caption(r.model)
        if r.job.resumable and c[4].button(
            "Resume", key=f"tv_tr_resume_{r.path.name}", disabled=busy
        ):
            resume(r.path)
