"""The augmentation settings, shared by the Train page (a run's recipe) and the Data page
(its preview), so both offer the same ranges."""

from __future__ import annotations

import streamlit as st


def augment_ui(prefix: str) -> None:
    """The widgets of every `AugmentConfig` field, in five columns, keyed `{prefix}{field}`.

    Shared by the Train page (settings of a run) and the Data page (the preview), so both
    offer the same ranges; the values are read back from session state by field name.
    """
    c = st.columns(5)

    def keyed(widget, label: str, name: str, *args, **kw):
        return widget(label, *args, key=f"{prefix}{name}", persist_state="session", **kw)

    keyed(c[0].checkbox, "Horizontal flip", "flip")
    keyed(c[0].slider, "Shift (pixels)", "translate", 0, 16)
    keyed(c[1].slider, "Rotate (degrees)", "rotate", 0.0, 45.0, step=1.0)
    keyed(
        c[1].select_slider,
        "Corner crop (px, 0 = off)",
        "crop",
        sorted({0, 40, 48, 56, st.session_state[f"{prefix}crop"]}),
    )
    keyed(c[2].slider, "Brightness ±", "brightness", 0.0, 0.5, step=0.05)
    keyed(c[2].slider, "Contrast ±", "contrast", 0.0, 0.5, step=0.05)
    keyed(c[3].slider, "Mixup α (0 = off)", "mixup", 0.0, 1.0, step=0.1)
    keyed(c[3].slider, "CutMix α (0 = off)", "cutmix", 0.0, 2.0, step=0.1)
    keyed(c[4].slider, "Share of batches mixed", "mix_prob", 0.0, 1.0, step=0.1)
