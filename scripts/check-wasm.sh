#!/usr/bin/env bash
# Build memlane-wasm (memlane-core through wasm-bindgen) for wasm32-unknown-unknown, keep its
# dependency tree wasm-clean, generate the JS glue for the page and for Node.js with the
# exact wasm-bindgen CLI, and hold the .wasm to its size budget.
#
# rustup's toolchain here has no wasm32 target and none can be downloaded, so this uses
# Debian's rustc-web (which ships the std sources) with -Zbuild-std, in a target dir of its
# own (a different rustc than rustup's). See shared/docs/toolchain.md, "WASM".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WASM_TARGET_DIR="${MEMLANE_WASM_TARGET_DIR:-$HOME/.cache/memlane/wasm-target}"
TARGET=wasm32-unknown-unknown
CRATE=memlane-wasm
MANIFEST=bindings/wasm/Cargo.toml
WEB_PKG=bindings/wasm/www/pkg
NODE_PKG="${MEMLANE_WASM_NODE_PKG:-$HOME/.cache/memlane/wasm-node-pkg}"
# raw .wasm size budget: 1.5 MiB
BUDGET=1572864
# Crates that must never reach the wasm build of the core (matched as name or name-*/name_*).
FORBIDDEN='lance arrow tokio datafusion object_store rayon memmap memmap2'

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian's wasm-capable toolchain (rust-lld is a symlink to lld-22).
PKGS=(rustc-web cargo-web rust-web-src lld-22)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "check-wasm: installing ${missing[*]}"
    sudo_if_needed apt-get update
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
echo "check-wasm: $(/usr/bin/cargo --version) / $(/usr/bin/rustc --version)"

# 2. Build memlane-wasm (memlane-core + wasm-bindgen; a workspace of its own) for wasm32.
echo "check-wasm: building $CRATE for $TARGET (target dir $WASM_TARGET_DIR)"
#    simd128 (every current browser and Node.js >= 16.4 run it): the kNN and a^T b kernels
#    of memlane-core are written so LLVM vectorises them with it.
CARGO_TARGET_DIR="$WASM_TARGET_DIR" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="-C target-feature=+simd128" \
    /usr/bin/cargo build --release --target "$TARGET" -Zbuild-std=std,panic_abort \
    --manifest-path "$MANIFEST"

# 3. Dependency guard. `cargo tree` resolves only (it builds nothing), so rustup's cargo is
#    fine here; fall back to Debian's.
TREE_CARGO=cargo
command -v cargo >/dev/null 2>&1 || TREE_CARGO=/usr/bin/cargo
crates="$("$TREE_CARGO" tree --manifest-path "$MANIFEST" --target "$TARGET" -e normal --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u)"
bad=()
for f in $FORBIDDEN; do
    while IFS= read -r c; do
        [ -n "$c" ] && bad+=("$c")
    done < <(grep -E "^${f}([-_].*)?$" <<<"$crates" || true)
done
if [ "${#bad[@]}" -gt 0 ]; then
    echo "check-wasm: FAIL: $CRATE must stay wasm-clean, but its $TARGET dependency tree contains: $(printf '%s\n' "${bad[@]}" | sort -u | tr '\n' ' ')" >&2
    for c in $(printf '%s\n' "${bad[@]}" | sort -u); do
        echo "--- how $c gets in (cargo tree -i $c):" >&2
        "$TREE_CARGO" tree --manifest-path "$MANIFEST" --target "$TARGET" -e normal -i "$c" >&2 || true
    done
    exit 1
fi
echo "check-wasm: dependency guard ok ($(wc -l <<<"$crates") crates; none of: $FORBIDDEN)"

# 4. The wasm-bindgen CLI, exactly the version in bindings/wasm/Cargo.lock, cached.
WB_VERSION="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' bindings/wasm/Cargo.lock)"
WB_ROOT="${MEMLANE_WASM_BINDGEN_ROOT:-$HOME/.cache/memlane/wasm-bindgen-$WB_VERSION}"
WB="$WB_ROOT/bin/wasm-bindgen"
if [ ! -x "$WB" ] || [ "$("$WB" --version | awk '{print $2}')" != "$WB_VERSION" ]; then
    echo "check-wasm: installing wasm-bindgen-cli $WB_VERSION into $WB_ROOT (once; about 3 minutes)"
    # --locked first; when a registry lacks a crate version the CLI's lock file names,
    # let cargo resolve the CLI's dependencies afresh
    cargo install --locked --quiet wasm-bindgen-cli --version "=$WB_VERSION" --root "$WB_ROOT" \
        || cargo install --quiet wasm-bindgen-cli --version "=$WB_VERSION" --root "$WB_ROOT"
fi

# 5. npm packages of the page and its tests (Arrow JS, binaryen's wasm-opt, playwright-core),
#    pinned in bindings/wasm/package-lock.json; skipped when the lock file has not changed.
NPM_STAMP="bindings/wasm/node_modules/.memlane-$(sha256sum bindings/wasm/package-lock.json | cut -c1-16)"
if [ ! -f "$NPM_STAMP" ]; then
    echo "check-wasm: npm ci in bindings/wasm"
    (cd bindings/wasm && npm ci --no-audit --no-fund --loglevel=error)
    touch "$NPM_STAMP"
fi

# 6. JS glue and TypeScript types: web (the page) and nodejs (tests, benchmark); the module
#    shrunk by wasm-opt (about a quarter smaller) once, then shared by both.
WASM="$WASM_TARGET_DIR/$TARGET/release/memlane_wasm.wasm"
"$WB" --target web --out-dir "$WEB_PKG" "$WASM"
"$WB" --target nodejs --out-dir "$NODE_PKG" "$WASM"
wasm_opt() { bindings/wasm/node_modules/.bin/wasm-opt -O3 --enable-simd "$1" -o "$1.opt" && mv "$1.opt" "$1"; }
if cmp -s "$WEB_PKG/memlane_wasm_bg.wasm" "$NODE_PKG/memlane_wasm_bg.wasm"; then
    wasm_opt "$WEB_PKG/memlane_wasm_bg.wasm"
    cp "$WEB_PKG/memlane_wasm_bg.wasm" "$NODE_PKG/memlane_wasm_bg.wasm"
else
    wasm_opt "$WEB_PKG/memlane_wasm_bg.wasm"
    wasm_opt "$NODE_PKG/memlane_wasm_bg.wasm"
fi
mkdir -p bindings/wasm/www/vendor
cp bindings/wasm/node_modules/apache-arrow/Arrow.es2015.min.js bindings/wasm/www/vendor/
for f in memlane_wasm.js memlane_wasm.d.ts memlane_wasm_bg.wasm; do
    [ -f "$WEB_PKG/$f" ] && [ -f "$NODE_PKG/${f}" ] || { echo "check-wasm: FAIL: wasm-bindgen did not write $f" >&2; exit 1; }
done

# 7. Size budget of the .wasm the page loads.
raw=$(stat -c %s "$WEB_PKG/memlane_wasm_bg.wasm")
gz=$(gzip -9 -c "$WEB_PKG/memlane_wasm_bg.wasm" | wc -c)
echo "check-wasm: memlane_wasm_bg.wasm is $raw bytes raw ($(numfmt --to=iec-i --suffix=B "$raw")), $gz bytes gzip -9 ($(numfmt --to=iec-i --suffix=B "$gz")); budget $BUDGET raw"
if [ "$raw" -gt "$BUDGET" ]; then
    echo "check-wasm: FAIL: the .wasm is over its $BUDGET-byte budget; look for a new dependency in \`cargo tree --manifest-path $MANIFEST\`" >&2
    exit 1
fi
printf '{"raw_bytes": %s, "gzip_bytes": %s, "budget_bytes": %s}\n' "$raw" "$gz" "$BUDGET" > "$NODE_PKG/size.json"
