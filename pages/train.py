"""Train: start a run in its own process, watch it live, stop and resume it (one at a time)."""

import streamlit as st

from pages import _dataset, _state, _train_form, _train_job
from tinyviz.runs import jobs, roots

_state.entry(__file__)

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
data = _dataset.require_data()
running = jobs.current(roots.runs_dir())
_train_form.form(data, running, device)

st.subheader("Training job", anchor=False)
st.session_state["tv_tr_active"] = bool(running and running.active)
st.fragment(_train_job.panel, run_every=2 if st.session_state["tv_tr_active"] else 10)()
_train_job.controls(running)
_train_job.recent(running)
