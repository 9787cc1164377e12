// Loads the code of the charts the explain pages draw while the visitor is still on the
// page they arrived at (mounted by pages/_preload.py, once per browser tab).
//
// Streamlit fetches an element's code the first time a page shows such an element: for
// plotly (the Embeddings map) that is 4.7 MB of JavaScript, 1.5-2 s of fetching, parsing
// and running on a 2-core laptop, all of it paid on the first visit of that page. Importing
// the same module URLs here, when the browser is idle, makes that visit find them loaded
// (a module URL is only ever evaluated once per page). It draws nothing.

export default function (component) {
  const { data } = component;
  if (window.__tvPreloaded || !data || !data.chunks) return;
  window.__tvPreloaded = true;
  const main = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!main) return; // another Streamlit layout: nothing to gain, nothing to break
  const urls = data.chunks.map((name) => new URL(name, main.src).href);
  const idle = window.requestIdleCallback || ((cb) => setTimeout(cb, 200));
  const next = (i) => {
    if (i >= urls.length) {
      window.__tvPreloadDone = true; // for bench/app_speed.py: the browser is idle again
      return;
    }
    idle(
      () => import(/* @vite-ignore */ urls[i]).catch(() => {}).finally(() => next(i + 1)),
      { timeout: 4000 },
    );
  };
  setTimeout(() => next(0), data.delay_ms || 0);
}
