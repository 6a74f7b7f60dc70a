// Small canvas plots for the preview: histograms (one or two series) and 2-D scatters.
// No library, so the page works offline.

const AXIS = "#6b7280";
const FONT = "12px system-ui, sans-serif";

function setup(canvas) {
  const ratio = globalThis.devicePixelRatio || 1;
  const w = canvas.clientWidth || Number(canvas.getAttribute("width")) || 360;
  const h = canvas.clientHeight || Number(canvas.getAttribute("height")) || 220;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  g.font = FONT;
  return { g, w, h };
}

/**
 * Histogram of one or more series of values over a shared range.
 * @param {HTMLCanvasElement} canvas
 * @param {{label: string, values: ArrayLike<number>, color: string}[]} series
 * @param {{bins?: number, lo?: number, hi?: number, xlabel?: string}} opts
 */
export function histogram(canvas, series, opts = {}) {
  const { g, w, h } = setup(canvas);
  const bins = opts.bins ?? 30;
  let lo = opts.lo, hi = opts.hi;
  if (lo === undefined || hi === undefined) {
    let mn = Infinity, mx = -Infinity;
    for (const s of series) for (const v of s.values) { if (v < mn) mn = v; if (v > mx) mx = v; }
    if (!Number.isFinite(mn)) { mn = 0; mx = 1; }
    // a spread too small to draw (unit vectors' norms): widen it to 2% around the middle
    const mid = (mn + mx) / 2, span = Math.max(0.02 * Math.abs(mid), 1e-6);
    if (mx - mn < span) { mn = mid - span / 2; mx = mid + span / 2; }
    lo = lo ?? mn; hi = hi ?? mx;
  }
  const counts = series.map((s) => {
    const c = new Array(bins).fill(0);
    for (const v of s.values) {
      const b = Math.min(bins - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * bins)));
      c[b] += 1;
    }
    const n = s.values.length || 1;
    return c.map((x) => x / n);
  });
  const top = Math.max(1e-9, ...counts.flat());
  const L = 40, R = 10, T = 22, B = 30;
  const pw = w - L - R, ph = h - T - B;
  g.strokeStyle = AXIS; g.fillStyle = AXIS;
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, T + ph); g.lineTo(L + pw, T + ph); g.stroke();
  g.textAlign = "center";
  g.fillText(fmt(lo), L, T + ph + 14); g.fillText(fmt(hi), L + pw, T + ph + 14);
  g.fillText(fmt((lo + hi) / 2), L + pw / 2, T + ph + 14);
  if (opts.xlabel) g.fillText(opts.xlabel, L + pw / 2, h - 2);
  g.textAlign = "right"; g.fillText(`${Math.round(top * 100)}%`, L - 4, T + 8);
  const bw = pw / bins;
  counts.forEach((c, si) => {
    g.fillStyle = series[si].color;
    g.globalAlpha = series.length > 1 ? 0.55 : 0.85;
    c.forEach((x, b) => {
      const bh = (x / top) * ph;
      g.fillRect(L + b * bw + 1, T + ph - bh, Math.max(1, bw - 2), bh);
    });
  });
  g.globalAlpha = 1;
  legend(g, series, L + 6, 12);
}

/**
 * Scatter of 2-D points `[x0, y0, x1, y1, ...]`, one colour per point.
 * @param {HTMLCanvasElement} canvas @param {ArrayLike<number>} xy @param {string[]} colors
 * @param {string} title
 */
export function scatter(canvas, xy, colors, title) {
  const { g, w, h } = setup(canvas);
  const n = xy.length / 2;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const pad = 12, T = 22;
  const sx = (w - 2 * pad) / Math.max(1e-9, x1 - x0);
  const sy = (h - T - pad) / Math.max(1e-9, y1 - y0);
  const r = n > 3000 ? 1.2 : 2;
  for (let i = 0; i < n; i++) {
    g.fillStyle = colors[i];
    g.beginPath();
    g.arc(pad + (xy[2 * i] - x0) * sx, T + (y1 - xy[2 * i + 1]) * sy, r, 0, 2 * Math.PI);
    g.fill();
  }
  g.fillStyle = AXIS; g.textAlign = "left";
  g.fillText(title, pad, 14);
}

/** Colours by position along the first axis of `xy` (so the same rows keep their colour in a second picture). */
export function rankColors(xy) {
  const n = xy.length / 2;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => xy[2 * a] - xy[2 * b] || xy[2 * a + 1] - xy[2 * b + 1]);
  const colors = new Array(n);
  order.forEach((row, rank) => { colors[row] = `hsl(${Math.round((rank / Math.max(1, n - 1)) * 300)}, 70%, 48%)`; });
  return colors;
}

function legend(g, series, x, y) {
  g.textAlign = "left";
  for (const s of series) {
    g.fillStyle = s.color; g.fillRect(x, y - 8, 10, 10);
    g.fillStyle = AXIS; g.fillText(s.label, x + 14, y + 1);
    x += 22 + g.measureText(s.label).width;
  }
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a < 0.001 || a >= 1000) ? v.toExponential(1) : v.toFixed(a < 0.1 ? 3 : 2);
}
