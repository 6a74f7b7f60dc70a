#!/usr/bin/env bash
# memlane demo: an agent-memory store built from the real corpus, its embedding model
# upgraded by a migration, searched in both spaces, its history and verification shown;
# the other example migrations each on a store of their own; and an edited, already
# applied migration refused.
#
#   MEMLANE=path/to/memlane MEMLANE_DEMO_DIR=dir bash scripts/demo.sh
#
# `make demo` builds memlane first. The demo dir is wiped at the start.
set -euo pipefail

DEMO="${MEMLANE_DEMO_DIR:-$PWD/.memlane-demo}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MEMLANE="${MEMLANE:-${CARGO_TARGET_DIR:-$HOME/.cache/memlane/target}/debug/memlane}"
case "$DEMO" in /*) ;; *) DEMO="$PWD/$DEMO" ;; esac
cd "$ROOT"

EX=migrations-examples
CORPUS="$EX/data/corpus.jsonl"
MARKER=.memlane-demo-dir

if [ ! -x "$MEMLANE" ]; then
    echo "demo: no memlane binary at $MEMLANE (run \`make build\` or set MEMLANE)" >&2
    exit 1
fi
# Wipe only what this script made before: an existing non-empty dir needs the marker.
if [ -d "$DEMO" ] && [ -n "$(ls -A "$DEMO")" ] && [ ! -f "$DEMO/$MARKER" ]; then
    echo "demo: $DEMO exists and was not made by this demo; refusing to wipe it" >&2
    exit 1
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
touch "$DEMO/$MARKER"

section() { printf '\n==== %s ====\n' "$*"; }
# Show a memlane command (paths shortened) and run it.
ml() {
    local shown="memlane" a
    for a in "$@"; do
        if [[ "$a" =~ [^A-Za-z0-9_./:=@%+-] ]]; then shown+=" \"$a\""; else shown+=" $a"; fi
    done
    shown="${shown//$DEMO/\$DEMO}"
    printf '\n$ %s\n' "$shown"
    "$MEMLANE" "$@"
}
version_rows() { "$MEMLANE" status "$1" | awk '/^version/ {printf "v%s (%s rows)", $2, $4}'; }

echo "memlane demo: $("$MEMLANE" --version)"
echo "stores under \$DEMO = $DEMO"

# ---------------------------------------------------------------------------------------
section "1. Agent memory from the corpus, then a model upgrade as a migration (example 04)"
MEM="$DEMO/agent-memory"
ml init "$MEM" --from "$CORPUS"
ml plan "$MEM" "$EX/04-reembed-new-model"
ml apply "$MEM" "$EX/04-reembed-new-model" --yes
ml status "$MEM" "$EX/04-reembed-new-model"

section "1b. The same question in the new space (new384) and in the kept old one (old256)"
QUERY="parse a JSON document"
ml search "$MEM" "$QUERY" --embedder hash:384:2 --space new384
ml search "$MEM" "$QUERY" --embedder hash:256 --space old256

section "1c. History: one Lance version per step, each recorded by memlane"
ml history "$MEM"

section "1d. Verify: hash chain, files, Lance, spaces, rows, ids, vectors"
ml verify "$MEM" "$EX/04-reembed-new-model"

# ---------------------------------------------------------------------------------------
section "2. The other examples, each on its own store"
ml init "$DEMO/ex01" --from "$CORPUS"
ml plan "$DEMO/ex01" "$EX/01-agent-memory-bootstrap"
ml apply "$DEMO/ex01" "$EX/01-agent-memory-bootstrap" --yes
ml status "$DEMO/ex01" "$EX/01-agent-memory-bootstrap"

ml init "$DEMO/ex02" --from "$CORPUS"
ml plan "$DEMO/ex02" "$EX/02-metadata-evolution"
ml apply "$DEMO/ex02" "$EX/02-metadata-evolution" --yes
ml status "$DEMO/ex02" "$EX/02-metadata-evolution"

ml init "$DEMO/ex03" --from "$CORPUS" --space base768:768:cosine:normalized --embedder base768=hash:768
ml plan "$DEMO/ex03" "$EX/03-matryoshka-truncate"
ml apply "$DEMO/ex03" "$EX/03-matryoshka-truncate" --yes
ml status "$DEMO/ex03" "$EX/03-matryoshka-truncate"

# ---------------------------------------------------------------------------------------
section "3. An applied migration that is edited afterwards is refused"
MIG="$DEMO/migrations-02"
cp -r "$EX/02-metadata-evolution" "$MIG"
ml init "$DEMO/edited" --from "$CORPUS"
ml apply "$DEMO/edited" "$MIG" --yes >/dev/null
echo "(applied ${MIG//$DEMO/\$DEMO} quietly; now: $(version_rows "$DEMO/edited"))"
printf '\n$ sed -i %s %s\n' "'s/default = \"general\"/default = \"misc\"/'" "\$DEMO/migrations-02/0001_topic.toml"
sed -i 's/default = "general"/default = "misc"/' "$MIG/0001_topic.toml"
if ! grep -q 'default = "misc"' "$MIG/0001_topic.toml"; then
    echo "demo: the sed edit did not change 0001_topic.toml" >&2
    exit 1
fi
set +e
ml plan "$DEMO/edited" "$MIG" 2>&1 | tee "$DEMO/edited-plan.txt"
rc=${PIPESTATUS[0]}
set -e
echo "(exit code $rc)"
if [ "$rc" -ne 3 ] || ! grep -q '0001_topic.toml' "$DEMO/edited-plan.txt"; then
    echo "demo: expected plan to exit 3 naming 0001_topic.toml, got exit $rc" >&2
    exit 1
fi

# ---------------------------------------------------------------------------------------
section "Summary"
echo "demo OK: agent-memory $(version_rows "$MEM") with spaces old256 + new384 (active), ex01 $(version_rows "$DEMO/ex01"), ex02 $(version_rows "$DEMO/ex02"), ex03 $(version_rows "$DEMO/ex03"); edited 0001_topic.toml refused by plan with exit 3"
