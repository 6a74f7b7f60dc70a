#!/usr/bin/env bash
# Prepare the preview page's example: a real agent-memory store (the corpus embedded with
# wordllama), the pending upgrade to multilingual-e5-small of
# migrations-examples/05-real-model-upgrade, and a sample exported by the CLI with the new
# model's vectors; the page (`make preview`) and the browser test load it from OUT.
#
#   MEMLANE=path/to/memlane bash scripts/preview-example.sh [OUT]   (default bindings/wasm/www/example)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MEMLANE="${MEMLANE:-${CARGO_TARGET_DIR:-$HOME/.cache/memlane/target}/debug/memlane}"
OUT="${1:-bindings/wasm/www/example}"
EX=migrations-examples/05-real-model-upgrade
WORK="${MEMLANE_PREVIEW_WORK:-$HOME/.cache/memlane/preview-store}"
E="python3 $ROOT/benches/realmodels/fixture_embedder.py"

[ -x "$MEMLANE" ] || { echo "preview-example: no memlane binary at $MEMLANE (run \`make build\`)" >&2; exit 1; }
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK" "$OUT"
"$MEMLANE" init "$WORK/store" --from migrations-examples/data/corpus.jsonl >/dev/null
"$MEMLANE" apply "$WORK/store" "$EX" --to 1 --yes --embedder "wordllama=cmd:$E old" >/dev/null
"$MEMLANE" export-sample "$WORK/store" "$EX" --rows 400 --embedder "e5small=cmd:$E new" -o "$OUT/sample.arrow"
cp "$EX"/0001_wordllama.toml "$EX"/0002_e5_small.toml "$OUT/"
cat > "$OUT/manifest.json" <<JSON
{"description": "392 agent memories embedded with wordllama (256-d); the pending upgrade to multilingual-e5-small (384-d) of $EX, with a 400-row sample exported by memlane export-sample",
 "files": ["0001_wordllama.toml", "0002_e5_small.toml", "sample.arrow"]}
JSON
echo "preview-example: $OUT ready (store $WORK/store)"
