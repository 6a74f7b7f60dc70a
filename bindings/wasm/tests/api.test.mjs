// The wasm module's JS API under Node.js (the wasm-bindgen `nodejs` build), on the real
// wordllama / multilingual-e5-small fixture: parse and lint, plan, compat with queries,
// the gates of checkPair, samples, projections, and errors named by kind.
//
// node --test bindings/wasm/tests/   (make test-wasm builds the module first)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const PKG = process.env.MEMLANE_WASM_NODE_PKG ?? join(homedir(), ".cache/memlane/wasm-node-pkg");
const wasm = require(join(PKG, "memlane_wasm.js"));
const FIX = join(ROOT, "tests/fixtures/realmodels");
const EX = join(ROOT, "migrations-examples/05-real-model-upgrade");

const f32 = (name) => {
  const b = readFileSync(join(FIX, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const meta = JSON.parse(readFileSync(join(FIX, "meta.json"), "utf8"));
const exampleFiles = () =>
  ["0001_wordllama.toml", "0002_e5_small.toml"].map((name) => ({ name, text: readFileSync(join(EX, name), "utf8") }));

function throwsNamed(fn, name, pattern) {
  let caught;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, `expected a ${name}`);
  assert.ok(caught instanceof Error, "a JS Error");
  assert.equal(caught.name, name, caught.message);
  if (pattern) assert.match(caught.message, pattern);
  return caught;
}

test("version is the crate's", () => {
  assert.match(wasm.version(), /^\d+\.\d+\.\d+/);
});

test("parseMigrations reads the example folder; a broken file is a MigrationFileError naming it", () => {
  const m = wasm.parseMigrations(JSON.stringify(exampleFiles()));
  assert.deepEqual(m.map((x) => x.id), [1, 2]);
  assert.equal(m[1].gates.length, 3);
  throwsNamed(
    () => wasm.parseMigrations(JSON.stringify([{ name: "0001_bad.toml", text: "[[steps]]\nop = \"reembed\"\nspace = 3\n" }])),
    "MigrationFileError",
    /0001_bad\.toml/,
  );
  throwsNamed(() => wasm.parseMigrations("not json"), "InvalidInputError", /migration file list/);
});

test("plan against a fresh store lists the embedders; lint reports a bad retention with its fix", () => {
  const p = wasm.plan(JSON.stringify(exampleFiles()));
  assert.deepEqual(p.embedders, ["wordllama", "e5small"]);
  assert.equal(p.active_space_after, "e5small");
  assert.equal(p.migrations.length, 2);
  const bad = exampleFiles();
  bad[1].text = bad[1].text.replace('contract_after = "7d"', 'contract_after = "soon"');
  const findings = wasm.lint(JSON.stringify(bad));
  const f = findings.find((x) => x.code === "bad-duration");
  assert.ok(f, JSON.stringify(findings));
  assert.equal(f.level, "error");
  assert.equal(f.file, "0002_e5_small.toml");
  assert.ok(f.hint.length > 0);
});

test("compat on the real fixture gives the native numbers (overlap, recall, retrieval)", () => {
  const old = f32("old.f32");
  const nw = f32("new.f32");
  const r = wasm.compat(old, 256, nw, 384);
  assert.equal(r.n, 392);
  // core/memlane-core/tests/realmodels.rs checks the same values natively
  assert.ok(Math.abs(r.metrics["overlap@10"] - 0.301) < 0.002, `overlap ${r.metrics["overlap@10"]}`);
  assert.ok(r.metrics["overlap@10.baseline"] < 0.05);
  assert.ok(r.metrics["recall@10"] > 0.4 && r.metrics["recall@10"] < 0.47);
  assert.equal(r.overlap.per_row.length, 392);
  const relevant = meta.queries.map((q) => q.relevant_rows);
  const rq = wasm.compat(old, 256, nw, 384, JSON.stringify({ k: 10 }), f32("query_old.f32"), f32("query_new.f32"), JSON.stringify(relevant));
  assert.equal(rq.retrieval.queries, 96);
  assert.ok(Math.abs(rq.retrieval.old_recall - meta.sanity.recall_at_10_old) < 1e-3, `${rq.retrieval.old_recall}`);
  assert.ok(Math.abs(rq.retrieval.new_recall - meta.sanity.recall_at_10_new) < 1e-3, `${rq.retrieval.new_recall}`);
});

test("checkPair judges gates and modes like apply", () => {
  const old = f32("old.f32");
  const nw = f32("new.f32");
  const from = JSON.stringify({ name: "wordllama", dimension: 256, metric: "cosine", normalized: true, column: "vec_wordllama" });
  const to = JSON.stringify({ name: "e5small", dimension: 384, metric: "cosine", normalized: true, column: "vec_e5small" });
  const gates = readFileSync(join(EX, "0002_e5_small.toml"), "utf8");
  const { check, report } = wasm.checkPair(from, to, old, nw, 10, null, gates);
  assert.equal(check.verdict, "review");
  const g = check.gates.find((x) => x.metric === "overlap@10");
  assert.equal(g.verdict, "review");
  assert.ok(report.metrics.cka > 0);
  const blocked = wasm.checkPair(from, to, old, nw, 10, null, '"overlap@10" = { block_below = 0.9 }');
  assert.equal(blocked.check.verdict, "block");
  const mode = wasm.checkPair(from, to, old, nw, 10, "identical", null);
  assert.equal(mode.check.verdict, "block");
  assert.match(mode.check.mode_failure, /identical/);
  throwsNamed(() => wasm.checkPair(from, to, old, nw, 10, null, '"no_such_metric" = { block_below = 1 }'), "CompatError", /unknown metric/);
  throwsNamed(() => wasm.checkPair(from, to, old, nw, 10, "sideways", null), "InvalidInputError", /mode/);
});

test("vector errors are CompatErrors that say what to fix", () => {
  throwsNamed(() => wasm.compat(new Float32Array(10), 3, new Float32Array(9), 3), "CompatError", /whole rows of dimension 3/);
  const bad = f32("old.f32");
  bad[5] = NaN;
  throwsNamed(() => wasm.compat(bad, 256, f32("new.f32"), 384), "CompatError", /non-finite/);
  throwsNamed(() => wasm.compat(f32("old.f32"), 256, f32("new.f32"), 384, JSON.stringify({ metric: "manhattan" })), "VectorError", /unknown metric/);
});

test("SampleBuilder checks its columns; review without the new space's vectors says how to export them", () => {
  const snapshot = {
    version: 3, rows: 392, fields: [],
    state: { format: 1, spaces: [{ name: "wordllama", dimension: 256, metric: "cosine", normalized: true, column: "vec_wordllama" }], active_space: "wordllama" },
  };
  throwsNamed(() => new wasm.SampleBuilder("{", "[]"), "InvalidInputError", /snapshot/);
  const b = new wasm.SampleBuilder(JSON.stringify(snapshot), JSON.stringify(Array.from({ length: 392 }, (_, i) => `r${i}`)));
  const rows = b.rows;
  assert.ok(rows > 0);
  throwsNamed(() => b.addVectors("vec_wordllama", 256, new Float32Array(7)), "InvalidInputError", /rows of dimension 256/);
  throwsNamed(() => b.addField("kind", JSON.stringify(["a"])), "InvalidInputError", /values for/);
  b.addVectors("vec_wordllama", 256, f32("old.f32").subarray(0, rows * 256));
  const r = b.review(JSON.stringify(exampleFiles().slice(1)));
  b.free();
  assert.equal(r.steps.length, 1);
  assert.equal(r.steps[0].check, null);
  assert.match(r.steps[0].note, /--embedder e5small=cmd:/);
  assert.equal(r.invariants.find((i) => i.name === "vectors_valid[wordllama]").passed, true);
});

test("project2d gives two coordinates per row", () => {
  const xy = wasm.project2d(f32("new.f32"), 384);
  assert.ok(xy instanceof Float32Array);
  assert.equal(xy.length, 2 * 392);
  assert.ok(xy.some((v) => v !== 0));
});
