// Hover thumbnails for the Embeddings page's plotly map (mounted by pages/_map.py).
//
// The map is an ordinary st.plotly_chart (WebGL, with box and lasso selection); this
// component draws no element of its own: it listens to that chart's plotly_hover events
// and shows the hovered point's thumbnail, cut from a sprite sheet that the browser
// fetches once (a static file), with the point's class and the model's answer.
// Point i carries customdata [slot, class, predicted class (-1: training image), row, split].
// Text is set with textContent: class names come from the data set's words.txt.
// Hovering a point also rings every other point of its class (2D maps: a canvas laid over
// the plot, drawn from the chart's own data and axes), so a class stands out among 200.

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
    const count = ring(p.fullData && p.fullData.xaxis ? p : null, cls);
    const many = document.createElement("div");
    many.style.color = "#555";
    if (count > 1) many.textContent = `${count} images of this class ringed`;
    tip.replaceChildren(pic, name, what, many);
    tip.style.display = "block";
    place();
  }

  function overlay(gd) {
    let c = gd.querySelector("canvas.tv-ring");
    if (!c) {
      c = document.createElement("canvas");
      c.className = "tv-ring";
      c.setAttribute("data-testid", "tv-map-ring");
      c.style.cssText = "position:absolute;left:0;top:0;pointer-events:none;z-index:10";
      gd.style.position = gd.style.position || "relative";
      gd.appendChild(c);
    }
    return c;
  }

  function ring(p, cls) {
    const gd = state.gd;
    if (!gd || !p || !gd._fullLayout || !gd._fullLayout.xaxis) return 0;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const c = overlay(gd);
    c.width = gd._fullLayout.width;
    c.height = gd._fullLayout.height;
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "rgba(0,0,0,0.85)";
    let count = 0;
    for (const trace of gd._fullData || []) {
      const cd = trace.customdata;
      if (!cd || !trace.x) continue;
      for (let i = 0; i < cd.length; i++) {
        if (cd[i][1] !== cls) continue;
        const x = xa._offset + xa.l2p(trace.x[i]), y = ya._offset + ya.l2p(trace.y[i]);
        if (x < xa._offset || x > xa._offset + xa._length) continue;
        if (y < ya._offset || y > ya._offset + ya._length) continue;
        ctx.beginPath();
        ctx.arc(x, y, 5, 0, 2 * Math.PI);
        ctx.stroke();
        count++;
      }
    }
    c.setAttribute("data-ringed", String(count));
    return count;
  }

  function unring() {
    const c = state.gd && state.gd.querySelector("canvas.tv-ring");
    if (c) {
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
      c.setAttribute("data-ringed", "0");
    }
  }

  function attach() {
    const gd = document.querySelector(`.st-key-${data.chart} .js-plotly-plot`);
    if (!gd || typeof gd.on !== "function" || gd.__tvHover) return;
    gd.__tvHover = true;
    state.gd = gd;
    gd.addEventListener("mousemove", (e) => {
      state.mx = e.clientX;
      state.my = e.clientY;
      if (tip.style.display === "block") place();
    });
    const hide = () => {
      tip.style.display = "none";
      unring();
    };
    gd.addEventListener("mouseleave", hide);
    gd.on("plotly_hover", show);
    gd.on("plotly_unhover", hide);
    gd.on("plotly_relayout", unring); // zoom or pan: the rings would be off their points
  }

  attach();
  const timer = setInterval(attach, 400); // the chart is redrawn (a new node) on reruns
  return () => {
    clearInterval(timer);
    tip.style.display = "none";
  };
}
