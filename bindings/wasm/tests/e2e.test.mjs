// The preview page end to end in Debian's Chromium, headless, through playwright-core:
// serve bindings/wasm/www on localhost, hand it the example's migration files and the
// sample the CLI exported (the file input a person uses), and check what it shows: the
// overall verdict, the gates, the plan, the plots drawn, the invariants; then a broken
// migration file gives a named error. The page must make no request off localhost.
// Saves a screenshot (path printed; MEMLANE_SCREENSHOT overrides it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { chromium } from "playwright-core";
import { serve, WWW, CHROMIUM_FLAGS } from "./serve.mjs";

const EXAMPLE = process.env.MEMLANE_PREVIEW_EXAMPLE ?? join(WWW, "example");
const SHOT = process.env.MEMLANE_SCREENSHOT ?? join(homedir(), ".cache/memlane/preview-screenshot.png");

let server, browser, base;
const offsite = [];

before(async () => {
  server = await serve(EXAMPLE);
  base = server.base;
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_FLAGS });
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function openPage() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) offsite.push(r.url());
  });
  await page.goto(base + "/");
  await page.waitForSelector('body[data-state="ready"]', { timeout: 30000 });
  return { page, errors };
}

test("the page reviews the example migration from the CLI's sample", async () => {
  const { page, errors } = await openPage();
  const files = ["0001_wordllama.toml", "0002_e5_small.toml", "sample.arrow"].map((f) => join(EXAMPLE, f));
  await page.setInputFiles("#files", files);
  await page.waitForSelector('body[data-state="rendered"]', { timeout: 60000 });
  assert.deepEqual(errors, []);
  assert.equal(await page.getAttribute("body", "data-verdict"), "review");
  assert.match(await page.textContent("#verdict"), /review/i);
  // the gates as shown
  const gate = async (m) => page.getAttribute(`#compat tr[data-metric="${m}"] .badge`, "data-verdict");
  assert.equal(await gate("overlap@10"), "review");
  assert.equal(await gate("recall@10"), "pass");
  assert.match(await page.textContent("#reasons"), /overlap@10 review/);
  // plan: both steps of the pending migration, its embedder
  const plan = await page.textContent("#plan");
  assert.match(plan, /0002_e5_small\.toml/);
  assert.match(plan, /e5small/);
  assert.doesNotMatch(plan, /0001_wordllama\.toml/, "0001 is applied already");
  // plots drawn (non-blank canvases)
  const inked = await page.$$eval("#compat canvas", (cs) =>
    cs.map((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    }),
  );
  assert.equal(inked.length, 4, "overlap, norms and two projections");
  for (const n of inked) assert.ok(n > 500, `a blank plot (${inked})`);
  // invariants on the sample
  const inv = await page.$$eval("#invariants tr[data-check]", (rows) => rows.map((r) => [r.dataset.check, r.className]));
  assert.ok(inv.some(([name, cls]) => name === "vectors_valid[e5small]" && cls === "pass"), JSON.stringify(inv));
  assert.ok(inv.some(([name]) => name === "ids_unique"));
  const timing = await page.evaluate(() => globalThis.memlaneTiming);
  console.log(`# time to a rendered report: ${(timing.rendered - timing.start).toFixed(0)} ms`);
  await mkdir(dirname(SHOT), { recursive: true });
  await page.screenshot({ path: SHOT, fullPage: true });
  console.log(`# screenshot: ${SHOT}`);
  assert.deepEqual(offsite, [], "no request off localhost");
  await page.close();
});

test("the example button loads the same review; a broken file shows a named error", async () => {
  const { page } = await openPage();
  await page.click("#example");
  await page.waitForSelector('body[data-state="rendered"]', { timeout: 60000 });
  assert.equal(await page.getAttribute("body", "data-verdict"), "review");
  await page.setInputFiles("#files", [{ name: "0003_broken.toml", mimeType: "text/plain", buffer: Buffer.from('[[steps]]\nop = "no_such_op"\n') }]);
  await page.waitForSelector('body[data-state="error"]', { timeout: 30000 });
  assert.equal(await page.getAttribute("#error", "data-name"), "MigrationFileError");
  assert.match(await page.textContent("#error"), /0003_broken\.toml/);
  await page.close();
});
