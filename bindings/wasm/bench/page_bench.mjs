// Time from handing files to the preview page to a drawn report, in headless Chromium:
// the real-model example (392 rows) and a larger sample of N rows (default 10000, hash
// embedders 256-d -> 384-d, exported by the CLI from a store of N records). Median of
// REPS page loads each; the wasm compat step dominates the larger one.
//
// usage: node bindings/wasm/bench/page_bench.mjs EXAMPLE_DIR MEMLANE_BIN [N] [REPS]
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, copyFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve, CHROMIUM_FLAGS } from "../tests/serve.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const [example, bin, nArg, repsArg] = process.argv.slice(2);
const N = Number(nArg ?? 10000);
const REPS = Math.max(1, Number(repsArg ?? 3));

// a store of N records (corpus texts with variations), re-embed example 04 pending
function bigSample() {
  const dir = mkdtempSync(join(tmpdir(), "memlane-page-bench-"));
  const corpus = readFileSync(join(ROOT, "migrations-examples/data/corpus.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const lines = [];
  for (let i = 0; i < N; i++) {
    const r = corpus[i % corpus.length];
    lines.push(JSON.stringify({ id: `r${i}`, content: `${r.content} (variant ${Math.floor(i / corpus.length)})` }));
  }
  writeFileSync(join(dir, "records.jsonl"), lines.join("\n") + "\n");
  const ex = join(ROOT, "migrations-examples/04-reembed-new-model");
  const store = join(dir, "store");
  const run = (...a) => execFileSync(bin, a, { stdio: ["ignore", "ignore", "inherit"] });
  run("init", store, "--from", join(dir, "records.jsonl"));
  run("apply", store, ex, "--to", "1", "--yes", "--embedder", "hash256=hash:256");
  run("export-sample", store, ex, "--rows", String(N), "--embedder", "hash384v2=hash:384:2", "-o", join(dir, "sample.arrow"));
  for (const f of ["0001_old.toml", "0002_new_model.toml"]) copyFileSync(join(ex, f), join(dir, f));
  return { dir, files: ["0001_old.toml", "0002_new_model.toml", "sample.arrow"].map((f) => join(dir, f)) };
}

async function timeIt(browser, base, files) {
  const ms = [];
  for (let i = 0; i < REPS; i++) {
    const page = await browser.newPage();
    await page.goto(base + "/");
    await page.waitForSelector('body[data-state="ready"]');
    await page.setInputFiles("#files", files);
    await page.waitForSelector('body[data-state="rendered"], body[data-state="error"]', { timeout: 300000 });
    const t = await page.evaluate(() => globalThis.memlaneTiming);
    const state = await page.getAttribute("body", "data-state");
    if (state !== "rendered") throw new Error(await page.textContent("#error"));
    ms.push(t.rendered - t.start);
    await page.close();
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

const big = bigSample();
const server = await serve(example);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_FLAGS });
try {
  const real = await timeIt(browser, server.base, ["0001_wordllama.toml", "0002_e5_small.toml", "sample.arrow"].map((f) => join(example, f)));
  const large = await timeIt(browser, server.base, big.files);
  console.log(`page: time to a rendered report in headless Chromium, median of ${REPS}: real-model example (392 rows, 256 vs 384) ${real.toFixed(0)} ms; ${N}-row sample (256 vs 384) ${large.toFixed(0)} ms`);
} finally {
  await browser.close();
  server.close();
  rmSync(big.dir, { recursive: true, force: true });
}
