// Hover thumbnails for the Embeddings page's plotly map (mounted by pages/_map.py).
//
// The map is an ordinary st.plotly_chart (WebGL, with box and lasso selection); this
// component draws no element of its own: it listens to that chart's plotly_hover events
// and shows the hovered point's thumbnail, cut from a sprite sheet that the browser
// fetches once (a static file), with the point's class and the model's answer.
// Point i carries customdata [slot, class, predicted class (-1: training image), row, split].
// Text is set with textContent: class names come from the data set's words.txt.

export default function (component) {
  const { data } = component;
  const state = (window.__tvMapHover = window.__tvMapHover || {});
  state.config = data;
  let tip = document.getElementById("tv-map-tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "tv-map-tip";
    tip.setAttribute("data-testid", "tv-map-tip");
    tip.style.cssText =
      "position:fixed;display:none;z-index:100000;pointer-events:none;background:#fff;" +
      "border:1px solid #bbb;border-radius:6px;padding:6px;box-shadow:0 2px 8px rgba(0,0,0,.25);" +
      "font:13px sans-serif;color:#222;max-width:240px";
    document.body.appendChild(tip);
  }

  function place() {
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let x = (state.mx || 0) + 18, y = (state.my || 0) + 18;
    if (x + w > window.innerWidth - 4) x = (state.mx || 0) - w - 18;
    if (y + h > window.innerHeight - 4) y = (state.my || 0) - h - 18;
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }

  function show(ev) {
    const cfg = state.config;
    const p = ev && ev.points && ev.points[0];
    if (!cfg || !p || !p.customdata) return;
    const [slot, cls, pred, row, split] = p.customdata;
    const sp = cfg.sprites[String(split)];
    if (!sp) return;
    const sheet = Math.floor(slot / sp.per_sheet), s = slot % sp.per_sheet;
    const size = sp.tile * cfg.scale;
    const pic = document.createElement("div");
    pic.setAttribute("data-testid", "tv-map-thumb");
    pic.style.cssText =
      `width:${size}px;height:${size}px;image-rendering:pixelated;` +
      `background-image:url("${sp.base}${sp.files[sheet]}");` +
      `background-size:${sp.per_row * size}px auto;` +
      `background-position:-${(s % sp.per_row) * size}px -${Math.floor(s / sp.per_row) * size}px`;
    const name = document.createElement("div");
    name.style.fontWeight = "600";
    name.textContent = cfg.names[cls];
    const what = document.createElement("div");
    if (pred < 0) {
      what.textContent = "training image";
    } else {
      what.textContent = (pred === cls ? "✓ " : "✗ answered ") + cfg.names[pred];
      what.style.color = pred === cls ? "#2e7d32" : "#c62828";
    }
    tip.replaceChildren(pic, name, what);
    tip.style.display = "block";
    place();
  }

  function attach() {
    const gd = document.querySelector(`.st-key-${data.chart} .js-plotly-plot`);
    if (!gd || typeof gd.on !== "function" || gd.__tvHover) return;
    gd.__tvHover = true;
    gd.addEventListener("mousemove", (e) => {
      state.mx = e.clientX;
      state.my = e.clientY;
      if (tip.style.display === "block") place();
    });
    gd.addEventListener("mouseleave", () => (tip.style.display = "none"));
    gd.on("plotly_hover", show);
    gd.on("plotly_unhover", () => (tip.style.display = "none"));
  }

  attach();
  const timer = setInterval(attach, 400); // the chart is redrawn (a new node) on reruns
  return () => {
    clearInterval(timer);
    tip.style.display = "none";
  };
}
