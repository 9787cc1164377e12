// Reruns its fragment once the browser has drawn the page (mounted by pages/_defer.py).
//
// A slow section's first run only shows a placeholder and this component; when the
// browser is idle (the charts above drawn), it sends one trigger, and the fragment's rerun
// computes the section. So the server's work does not compete with the browser's drawing
// of the page's first results on a small machine. Fires once per placeholder (its token).

export default function (component) {
  const { data, setTriggerValue } = component;
  const fired = (window.__tvDeferred = window.__tvDeferred || new Set());
  if (!data || fired.has(data.what)) return;
  fired.add(data.what);
  const idle = window.requestIdleCallback || ((cb) => setTimeout(cb, 100));
  requestAnimationFrame(() =>
    idle(() => setTriggerValue("ready", data.what), { timeout: data.timeout_ms || 1500 }),
  );
}
