"""tinyviz: `tinyviz serve` (or `streamlit run app.py`). Navigation and the sidebar's shared
choices only."""

import streamlit as st

from pages import _cache, _images, _preload, _sidebar, _state, _turns
from tinyviz.errors import TinyvizError
from tinyviz.runtime import timings

st.set_page_config(page_title="tinyviz", page_icon=":material/biotech:", layout="wide")

PAGES = {
    "Compare": [
        st.Page("pages/models.py", title="Models", icon=":material/leaderboard:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/import_model.py", title="Import", icon=":material/upload_file:"),
    ],
    "Explain": [
        st.Page("pages/confusion.py", title="Confusion", icon=":material/grid_on:"),
        st.Page("pages/channels.py", title="Channels", icon=":material/filter:"),
        st.Page("pages/saliency.py", title="Saliency", icon=":material/visibility:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("pages/compare.py", title="Two models", icon=":material/compare:"),
    ],
    "Demo": [
        CLASSIFY := st.Page("pages/classify.py", title="Classify", icon=":material/photo_camera:"),
        st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
    ],
}

_state.init_data_path()  # before the page links exist: see its docstring
_state.new_script_run()  # the run folders are read once per script run (`_state.found`)
page = st.navigation(PAGES)
st.session_state[_state.NAV_KEY] = True
if goto := st.session_state.pop(_state.GOTO_KEY, None):
    st.switch_page(goto)  # a deep link that arrived before the navigation existed
_cache.warm_up()  # the explain pages' libraries, imported in the background once
_sidebar.sidebar()
_images.page_style()  # captions whole in image grids
_preload.mount()  # the explain pages' chart code, fetched while this page is read
try:
    # the page's title, where TINYVIZ_TIMINGS asks (bench/crowd.py); a process that re-runs
    # this file as its main module outside a server (multiprocessing's spawn) has none
    with timings.timed(getattr(page, "title", "")):
        if page is CLASSIFY:  # answers a photo without waiting for other pages (_turns)
            page.run()
        else:
            with _turns.turn():
                page.run()
except TinyvizError as e:  # a refusal the page did not expect: one line, not a traceback
    st.error(str(e), icon=":material/error:")
