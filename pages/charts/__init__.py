"""The dashboard's charts: Altair and plotly figures built from plain data.

Each function takes numbers, names and DataFrames (never a run, a model or a session) and
returns a figure; the pages choose what to show and hand the figure to Streamlit. Nothing
here imports Streamlit or computes anything of tinyviz, so every chart can be built and
checked in a test without a page (tests/test_charts.py).

They live in this package of `pages/`, not in `tinyviz/`: they are drawing, and tinyviz
computes without knowing about Altair or plotly. A folder, not files in `pages/`: Streamlit
would list every `pages/*.py` as a page of its own in its legacy mode.
"""
