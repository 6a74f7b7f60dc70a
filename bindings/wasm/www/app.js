// memlane's migration preview: files in, review out, all in this page.
import init, * as wasm from "./pkg/memlane_wasm.js";
import { readSample, buildSample } from "./sample.js";
import { histogram, scatter, rankColors } from "./plots.js";

const $ = (id) => document.getElementById(id);
const OLD = "#2563eb";
const NEW = "#f97316";
const state = { files: new Map(), sample: null, sampleName: null };
// timings for the benchmark: from files handed over to the report drawn
globalThis.memlaneTiming = {};

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function badge(v) {
  return `<span class="badge ${esc(v)}" data-verdict="${esc(v)}">${esc(v)}</span>`;
}
function num(v, d = 3) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(d) : "—";
}

async function addFiles(list) {
  const t0 = performance.now();
  for (const f of list) {
    const name = f.name;
    if (/\.(arrow|ipc|feather)$/i.test(name)) {
      state.sample = new Uint8Array(await f.arrayBuffer());
      state.sampleName = name;
    } else if (/\.toml$/i.test(name)) {
      state.files.set(name, await f.text());
    }
  }
  globalThis.memlaneTiming.start = t0;
  render();
}

function showError(e) {
  const box = $("error");
  box.hidden = false;
  box.innerHTML = `<strong>${esc(e.name || "Error")}</strong>: ${esc(e.message || e)}`;
  box.dataset.name = e.name || "Error";
  document.body.dataset.state = "error";
}

function render() {
  $("error").hidden = true;
  const loaded = [...state.files.keys()].sort().map((n) => `<li>${esc(n)}</li>`);
  if (state.sampleName) loaded.push(`<li class="sample">${esc(state.sampleName)}</li>`);
  $("loaded").innerHTML = loaded.join("");
  const files = JSON.stringify([...state.files].map(([name, text]) => ({ name, text })));
  try {
    let review;
    if (state.sample) {
      const s = readSample(globalThis.Arrow, state.sample);
      const b = buildSample(wasm, s);
      try {
        review = b.review(files);
      } finally {
        b.free();
      }
      review.info = s.info;
    } else {
      review = { plan: wasm.plan(files), steps: [], invariants: [], sample_rows: 0, store_rows: 0, reasons: [] };
      const errors = review.plan.findings.filter((f) => f.level === "error").length;
      review.verdict = errors ? "block" : "pass";
      if (errors) review.reasons.push(`lint found ${errors} error(s)`);
    }
    draw(review);
    globalThis.memlaneTiming.rendered = performance.now();
    globalThis.memlaneReview = review;
    document.body.dataset.state = "rendered";
    document.body.dataset.verdict = review.verdict;
  } catch (e) {
    showError(e);
  }
}

function draw(r) {
  $("summary").hidden = false;
  $("verdict").innerHTML = `Overall: ${badge(r.verdict)}`;
  $("verdict").className = `verdict ${r.verdict}`;
  $("reasons").innerHTML = r.reasons.map((x) => `<li>${esc(x)}</li>`).join("");
  $("sample-line").textContent = r.sample_rows
    ? `Sample of ${r.sample_rows} of ${r.store_rows} rows (store version ${r.plan.version}).` +
      (r.info?.notes?.length ? " " + r.info.notes.join(" ") : "")
    : "No sample: planned against a fresh store.";
  drawPlan(r.plan);
  drawCompat(r.steps);
  drawInvariants(r.invariants);
}

function drawPlan(p) {
  $("plan-section").hidden = false;
  const effect = (e) => e.kind === "embeds" ? `embeds with <code>${esc(e.embedder)}</code> into <code>${esc(e.column)}</code>`
    : e.kind === "writes_column" ? `writes <code>${esc(e.column)}</code>` : e.kind === "deletes_rows" ? "deletes rows" : "metadata only";
  const rows = p.migrations.map((m) => `
    <div class="migration" data-file="${esc(m.file)}">
      <h3>${esc(m.file)} <span class="hint">${esc(m.description)}</span></h3>
      <ol>${m.steps.map((s) => `<li><span class="op">${esc(s.op)}</span> ${esc(s.description)} <span class="hint">(${effect(s.effect)})</span>${s.done ? " <em>done</em>" : ""}</li>`).join("")}</ol>
      ${m.invariants.length ? `<p class="hint">checked after each step: ${m.invariants.map(esc).join(", ")}</p>` : ""}
    </div>`);
  $("plan").innerHTML = `<p>Store version ${p.version}, ${p.rows} rows, ${p.applied} migration(s) applied; active space
    <code>${esc(p.active_space_before ?? "none")}</code> → <code>${esc(p.active_space_after ?? "none")}</code>.
    ${p.embedders.length ? `Embedders needed: ${p.embedders.map((e) => `<code>${esc(e)}</code>`).join(", ")}.` : ""}</p>` +
    (rows.length ? rows.join("") : "<p>Nothing to apply: up to date.</p>");
  $("lint").innerHTML = p.findings.length
    ? `<table class="findings"><tr><th>level</th><th>code</th><th>where</th><th>message</th><th>fix</th></tr>${p.findings.map((f) =>
      `<tr class="${esc(f.level)}"><td>${esc(f.level)}</td><td><code>${esc(f.code)}</code></td><td>${esc(f.file)}:${f.line}</td><td>${esc(f.message)}</td><td>${esc(f.hint)}</td></tr>`).join("")}</table>`
    : "<p>No findings.</p>";
}

const METRIC_HELP = {
  "overlap@k": "share of each record's nearest neighbours the two spaces agree on (Jaccard)",
  "recall@k": "share of each record's old neighbours found among its new ones",
  cka: "linear centred kernel alignment of the two spaces (1 = same geometry)",
  "procrustes.mean_cosine": "how well one rotation maps new vectors onto old ones",
};

function drawCompat(steps) {
  $("compat-section").hidden = steps.length === 0;
  const box = $("compat");
  box.innerHTML = "";
  steps.forEach((s, i) => {
    const div = document.createElement("div");
    div.className = "step";
    div.dataset.step = `${s.file}#${s.step + 1}`;
    const c = s.check;
    let html = `<h3>${esc(s.file)} step ${s.step + 1}: ${esc(s.op)} <code>${esc(s.from)}</code> → <code>${esc(s.to)}</code> ${c ? badge(c.verdict) : ""}</h3>`;
    if (s.note) html += `<p class="note">${esc(s.note)}</p>`;
    if (c) {
      const k = c.k;
      const m = c.metrics;
      const row = (name, key, help) => `<tr><td>${esc(name)}</td><td>${num(m[key])}</td><td>${num(m[key + ".baseline"])}</td><td class="hint">${esc(help)}</td></tr>`;
      html += `<p>On ${c.sample} paired rows, k = ${k}. Suggested mode: <code>${esc(c.suggested_mode)}</code>${c.mode ? `; declared <code>${esc(c.mode)}</code>` : ""}.</p>`;
      if (c.mode_failure) html += `<p class="block-text">${esc(c.mode_failure)}</p>`;
      if (c.gates.length) {
        html += `<table class="gates"><tr><th>gate</th><th>value</th><th>verdict</th><th>why</th></tr>${c.gates.map((g) =>
          `<tr class="${esc(g.verdict)}" data-metric="${esc(g.metric)}"><td><code>${esc(g.metric)}</code></td><td>${num(g.value)}</td><td>${badge(g.verdict)}</td><td>${esc(g.message)}</td></tr>`).join("")}</table>`;
      } else {
        html += `<p class="hint">This migration declares no <code>[gates]</code>: nothing blocks on these numbers.</p>`;
      }
      html += `<table class="metrics"><tr><th>metric</th><th>value</th><th>shuffled baseline</th><th></th></tr>
        ${row(`overlap@${k}`, `overlap@${k}`, METRIC_HELP["overlap@k"])}
        ${row(`recall@${k}`, `recall@${k}`, METRIC_HELP["recall@k"])}
        ${row("CKA", "cka", METRIC_HELP.cka)}
        ${row("Procrustes mean cosine", "procrustes.mean_cosine", METRIC_HELP["procrustes.mean_cosine"])}
      </table>`;
      html += `<p>Adapter: ${esc(c.adapter_summary)}</p>`;
      if (s.report) {
        html += `<div class="plots">
          <figure><canvas id="ov-${i}" width="360" height="220"></canvas><figcaption>Per-record neighbour overlap@${k}</figcaption></figure>
          <figure><canvas id="nm-${i}" width="360" height="220"></canvas><figcaption>Vector norms, old vs new</figcaption></figure>
          ${s.projection ? `<figure><canvas id="po-${i}" width="300" height="260"></canvas><figcaption>Sample in <code>${esc(s.from)}</code> (2-D PCA)</figcaption></figure>
          <figure><canvas id="pn-${i}" width="300" height="260"></canvas><figcaption>Same rows, same colours, in <code>${esc(s.to)}</code></figcaption></figure>` : ""}
        </div>`;
      }
    }
    div.innerHTML = html;
    box.appendChild(div);
    if (c && s.report) {
      const r = s.report;
      histogram($(`ov-${i}`), [{ label: "overlap", values: r.overlap.per_row ?? [], color: OLD }], { lo: 0, hi: 1, bins: 20, xlabel: "Jaccard overlap" });
      histogram($(`nm-${i}`), [
        { label: s.from, values: r.norms_old.per_row ?? [], color: OLD },
        { label: s.to, values: r.norms_new.per_row ?? [], color: NEW },
      ], { bins: 30, xlabel: "L2 norm" });
      if (s.projection) {
        const colors = rankColors(s.projection.old);
        scatter($(`po-${i}`), s.projection.old, colors, s.from);
        scatter($(`pn-${i}`), s.projection.new, colors, s.to);
      }
    }
  });
}

function drawInvariants(list) {
  $("invariants-section").hidden = list.length === 0;
  $("invariants").innerHTML = `<table class="invariants"><tr><th>check</th><th>result</th><th>rows</th><th>failed</th><th>message</th></tr>${list.map((r) => {
    const v = r.passed ? "pass" : r.severity === "warn" ? "review" : "block";
    const label = r.passed ? "ok" : r.severity === "warn" ? "warn" : "fail";
    return `<tr class="${v}" data-check="${esc(r.name)}"><td><code>${esc(r.name)}</code></td><td><span class="badge ${v}">${label}</span></td><td>${r.total}</td><td>${r.failed}</td><td>${esc(r.message)}${r.sample_ids.length ? ` <span class="hint">(e.g. ${r.sample_ids.map(esc).join(", ")})</span>` : ""}</td></tr>`;
  }).join("")}</table>`;
}

async function loadExample() {
  const m = await (await fetch("example/manifest.json")).json();
  const list = [];
  for (const name of m.files) {
    const res = await fetch(`example/${name}`);
    list.push(new File([await res.blob()], name));
  }
  await addFiles(list);
}

async function main() {
  await init();
  $("version").textContent = `memlane ${wasm.version()} (wasm)`;
  $("files").addEventListener("change", (e) => addFiles(e.target.files));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
  try {
    const res = await fetch("example/manifest.json");
    if (res.ok) {
      const m = await res.json();
      $("example-row").hidden = false;
      $("example-what").textContent = m.description ?? "";
      $("example").addEventListener("click", () => loadExample().catch(showError));
    }
  } catch {
    // no example next to the page: fine
  }
  document.body.dataset.state = "ready";
}

main().catch(showError);
