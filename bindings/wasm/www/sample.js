// Read a sample written by `memlane export-sample` (an Arrow IPC file) into what the wasm
// module takes: the store snapshot, the ids, every Float32 vector column as one flat
// Float32Array (with a validity byte per row when some rows have none), and the other
// columns as JSON values (timestamps as seconds since the epoch, as `memlane review` reads
// them). Shared by the page (Arrow from the vendored bundle) and the Node.js tests
// (Arrow from npm): the caller passes the Arrow module.

/** @param {any} Arrow the apache-arrow module; @param {Uint8Array} bytes the file */
export function readSample(Arrow, bytes) {
  let table;
  try {
    table = Arrow.tableFromIPC(bytes);
  } catch (e) {
    throw named("InvalidInputError", `not an Arrow IPC file (${e.message}); write one with \`memlane export-sample\``);
  }
  const meta = table.schema.metadata;
  const snapshot = meta.get("memlane.snapshot");
  if (!snapshot) {
    throw named("InvalidInputError", "this Arrow file has no `memlane.snapshot` metadata: it was not written by `memlane export-sample`");
  }
  const infoText = meta.get("memlane.sample");
  const idCol = table.getChild("id");
  if (!idCol) throw named("InvalidInputError", "the sample has no `id` column");
  const rows = table.numRows;
  const ids = new Array(rows);
  for (let i = 0; i < rows; i++) ids[i] = String(idCol.get(i));
  const vectors = {};
  const fields = {};
  for (const f of table.schema.fields) {
    if (f.name === "id") continue;
    const col = table.getChild(f.name);
    const t = f.type;
    if (Arrow.DataType.isFixedSizeList(t) && Arrow.DataType.isFloat(t.children[0].type) && t.children[0].type.precision === Arrow.Precision.SINGLE) {
      vectors[f.name] = vectorColumn(col, t.listSize, rows);
    } else {
      fields[f.name] = jsonColumn(Arrow, col, t, rows);
    }
  }
  return { snapshot, info: infoText ? JSON.parse(infoText) : null, ids, vectors, fields, rows };
}

function vectorColumn(col, dim, rows) {
  const data = new Float32Array(rows * dim);
  let valid = null;
  let at = 0;
  for (const chunk of col.data) {
    const child = chunk.children[0];
    // row i of this chunk is child element (chunk.offset + i) * dim, past the child's own offset
    const start = child.offset + chunk.offset * dim;
    data.set(child.values.subarray(start, start + chunk.length * dim), at * dim);
    at += chunk.length;
  }
  if (col.nullCount > 0) {
    valid = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) valid[i] = col.isValid(i) ? 1 : 0;
  }
  return { dim, data, valid };
}

function jsonColumn(Arrow, col, t, rows) {
  const out = new Array(rows);
  const isTs = Arrow.DataType.isTimestamp(t);
  const isScalar = Arrow.DataType.isUtf8(t) || Arrow.DataType.isLargeUtf8?.(t) || Arrow.DataType.isInt(t) || Arrow.DataType.isFloat(t) || Arrow.DataType.isBool(t) || isTs;
  for (let i = 0; i < rows; i++) {
    if (!col.isValid(i)) { out[i] = null; continue; }
    if (!isScalar) { out[i] = []; continue; }
    let v = col.get(i);
    if (isTs) {
      // Arrow JS gives milliseconds since the epoch
      v = Number(v) / 1000;
    } else if (typeof v === "bigint") {
      v = Number(v);
    }
    out[i] = v;
  }
  return out;
}

function named(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** Hand a read sample to the wasm module: a SampleBuilder with every column added. */
export function buildSample(wasm, s) {
  const b = new wasm.SampleBuilder(s.snapshot, JSON.stringify(s.ids));
  for (const [name, v] of Object.entries(s.vectors)) {
    b.addVectors(name, v.dim, v.data, v.valid ?? undefined);
  }
  for (const [name, v] of Object.entries(s.fields)) {
    b.addField(name, JSON.stringify(v));
  }
  return b;
}
