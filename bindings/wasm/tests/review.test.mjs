// Same answers as native: the review of the example migration on a sample exported by the
// CLI, computed by `memlane review --json` (native memlane-core, arrow-rs reading the file)
// and by the wasm build (Arrow JS reading the file, as the page does), must agree: the
// plan, every verdict, every compatibility metric within 1e-6, the per-row values behind
// the plots, and every invariant.
//
// Needs MEMLANE_BIN and the example of scripts/preview-example.sh in
// MEMLANE_PREVIEW_EXAMPLE (make test-wasm sets both).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as Arrow from "apache-arrow";
import { readSample, buildSample } from "../www/sample.js";

const require = createRequire(import.meta.url);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PKG = process.env.MEMLANE_WASM_NODE_PKG ?? join(homedir(), ".cache/memlane/wasm-node-pkg");
const wasm = require(join(PKG, "memlane_wasm.js"));
const BIN = process.env.MEMLANE_BIN ?? join(homedir(), ".cache/memlane/target/debug/memlane");
const EXAMPLE = process.env.MEMLANE_PREVIEW_EXAMPLE ?? join(ROOT, "bindings/wasm/www/example");
const FOLDER = join(ROOT, "migrations-examples/05-real-model-upgrade");
const SAMPLE = join(EXAMPLE, "sample.arrow");

function wasmReview() {
  const s = readSample(Arrow, new Uint8Array(readFileSync(SAMPLE)));
  const files = ["0001_wordllama.toml", "0002_e5_small.toml"].map((name) => ({ name, text: readFileSync(join(FOLDER, name), "utf8") }));
  const b = buildSample(wasm, s);
  try {
    return { review: b.review(JSON.stringify(files)), sample: s };
  } finally {
    b.free();
  }
}

function nativeReview() {
  const r = spawnSync(BIN, ["--json", "review", SAMPLE, FOLDER], { encoding: "utf8", maxBuffer: 1 << 28 });
  // exit 4: a gate asks for review (the expected verdict of this example)
  assert.ok([0, 3, 4].includes(r.status), `memlane review exited ${r.status}: ${r.stderr}`);
  return { review: JSON.parse(r.stdout), status: r.status };
}

function close(a, b, tol, path) {
  if (typeof a === "number" && typeof b === "number") {
    assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${path}: wasm ${a} vs native ${b}`);
  } else if (Array.isArray(a)) {
    assert.ok(Array.isArray(b), `${path}: array vs ${typeof b}`);
    assert.equal(a.length, b.length, `${path}: lengths`);
    a.forEach((x, i) => close(x, b[i], tol, `${path}[${i}]`));
  } else if (a && typeof a === "object") {
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b ?? {}).sort(), `${path}: keys`);
    for (const k of Object.keys(a)) close(a[k], b[k], tol, `${path}.${k}`);
  } else {
    assert.equal(a, b, path);
  }
}

test("the sample the CLI exported holds both real spaces and the store's snapshot", () => {
  const s = readSample(Arrow, new Uint8Array(readFileSync(SAMPLE)));
  assert.equal(s.rows, 392);
  assert.equal(s.vectors.vec_wordllama.dim, 256);
  assert.equal(s.vectors.vec_e5small.dim, 384);
  assert.equal(s.info.embedded.e5small, "e5small");
  const snap = JSON.parse(s.snapshot);
  assert.equal(snap.state.active_space, "wordllama");
  assert.equal(snap.state.applied.length, 1);
  assert.equal(typeof s.fields.created_at[0], "number", "timestamps as seconds");
  assert.equal(s.fields.kind.length, 392);
});

test("wasm and native give the same review of the example (metrics within 1e-6)", () => {
  const { review: w } = wasmReview();
  const { review: n, status } = nativeReview();
  assert.equal(status, 4, "exit 4: needs review");
  assert.equal(w.verdict, "review");
  assert.equal(n.verdict, w.verdict);
  assert.deepEqual(w.reasons, n.reasons);
  assert.deepEqual(w.plan, n.plan);
  assert.equal(w.steps.length, 1);
  assert.equal(n.steps.length, 1);
  const [ws, ns] = [w.steps[0], n.steps[0]];
  assert.equal(ws.check.verdict, "review");
  assert.deepEqual(ws.check.gates.map((g) => [g.metric, g.verdict]), ns.check.gates.map((g) => [g.metric, g.verdict]));
  assert.deepEqual(Object.keys(ws.check.metrics).sort(), Object.keys(ns.check.metrics).sort());
  for (const k of Object.keys(ns.check.metrics)) close(ws.check.metrics[k], ns.check.metrics[k], 1e-6, `metrics.${k}`);
  // every number of the report, per-row values behind the plots included
  close(ws.report, ns.report, 1e-6, "report");
  // the 2-D pictures: same picture (eigenvectors through different SIMD paths)
  close(ws.projection, ns.projection, 1e-4, "projection");
  assert.deepEqual(
    w.invariants.map((i) => [i.name, i.passed, i.total, i.failed]),
    n.invariants.map((i) => [i.name, i.passed, i.total, i.failed]),
  );
  // the real numbers (tests/fixtures/realmodels: overlap@10 0.301, recall@10 0.436)
  assert.ok(Math.abs(ws.check.metrics["overlap@10"] - 0.301) < 0.002);
});

test("memlane review prints the same verdict for people", () => {
  let out = "";
  try {
    execFileSync(BIN, ["review", SAMPLE, FOLDER], { encoding: "utf8" });
  } catch (e) {
    out = e.stdout;
    assert.equal(e.status, 4);
  }
  assert.match(out, /review on a sample of 392 of 392 rows: REVIEW/);
  assert.match(out, /overlap@10 review/);
});
