// The compat report of memlane's wasm build under Node.js on raw f32 files written by
// `cargo bench --bench compat` (old.f32: 256-d, new.f32: 384-d), timed like the native
// side: median of REPS runs after one warm-up. Prints {"secs", "metrics"} as JSON.
//
// usage: node bindings/wasm/bench/compat_wasm.mjs DIR [REPS]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const pkg = process.env.MEMLANE_WASM_NODE_PKG ?? join(homedir(), ".cache/memlane/wasm-node-pkg");
const wasm = require(join(pkg, "memlane_wasm.js"));
const [dir, repsArg] = process.argv.slice(2);
const reps = Math.max(1, Number(repsArg ?? 3));
const f32 = (name) => {
  const b = readFileSync(join(dir, name));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const oldV = f32("old.f32");
const newV = f32("new.f32");
let report = wasm.compat(oldV, 256, newV, 384);
const times = [];
for (let i = 0; i < reps; i++) {
  const t = process.hrtime.bigint();
  report = wasm.compat(oldV, 256, newV, 384);
  times.push(Number(process.hrtime.bigint() - t) / 1e9);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ secs: times[Math.floor(times.length / 2)], metrics: report.metrics }));
