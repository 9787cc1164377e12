"""The shared widgets' old address, kept so that code written against it still runs.

The widgets now live in modules of one job each; new code imports those:

- `_text`: Markdown escaping of names (`plain`, `file_name`).
- `_dataset`: the data set, its download and decode, and the "needs the data" stop.
- `_runs`: the "needs a run" stops and how runs are labelled.
- `_gate`: the start of every explain page, the analysis gate, the epoch slider.
- `_sidebar`: the sidebar.
- `_images`: the uploader, enlarged images, grids, the heat-map colour strip.
- `_augment`: the augmentation settings of Train and Data.
- `charts`: every chart, built from plain data without Streamlit.
"""

from __future__ import annotations

from pages._augment import augment_ui
from pages._dataset import data, data_at, data_for, model_input, require_data, run_size
from pages._gate import (
    CHOSEN_EPOCH,
    EPOCH_KEY,
    AnalysisKey,
    analysis_progress,
    analysis_start,
    ensure_analysis,
    epoch_choice,
    final_analysis,
    measured_on,
)
from pages._images import UPLOAD_TYPES, big, enlarge, heat_scale, image_grid, image_uploader
from pages._runs import (
    NO_RUNS,
    require_matching_run,
    require_run,
    require_runs,
    run_label,
    run_labels,
)
from pages._sidebar import sidebar
from pages._text import file_name, plain
from pages.charts.predictions import top5_html

__all__ = [
    "CHOSEN_EPOCH",
    "EPOCH_KEY",
    "NO_RUNS",
    "UPLOAD_TYPES",
    "AnalysisKey",
    "analysis_progress",
    "analysis_start",
    "augment_ui",
    "big",
    "data",
    "data_at",
    "data_for",
    "enlarge",
    "ensure_analysis",
    "epoch_choice",
    "file_name",
    "final_analysis",
    "heat_scale",
    "image_grid",
    "image_uploader",
    "measured_on",
    "model_input",
    "plain",
    "require_data",
    "require_matching_run",
    "require_run",
    "require_runs",
    "run_label",
    "run_labels",
    "run_size",
    "sidebar",
    "top5_html",
]
