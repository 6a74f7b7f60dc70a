#!/usr/bin/env bash
# Build memlane-core for wasm32-unknown-unknown and keep its dependency tree wasm-clean.
#
# rustup's toolchain here has no wasm32 target and none can be downloaded, so this uses
# Debian's rustc-web (which ships the std sources) with -Zbuild-std, in a target dir of its
# own (a different rustc than rustup's). See shared/docs/toolchain.md, "WASM".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WASM_TARGET_DIR="${MEMLANE_WASM_TARGET_DIR:-$HOME/.cache/memlane/wasm-target}"
TARGET=wasm32-unknown-unknown
CRATE=memlane-core
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

# 2. Build the core for wasm32 with build-std.
echo "check-wasm: building $CRATE for $TARGET (target dir $WASM_TARGET_DIR)"
CARGO_TARGET_DIR="$WASM_TARGET_DIR" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    /usr/bin/cargo build --release --target "$TARGET" -Zbuild-std=std,panic_abort -p "$CRATE"

# 3. Dependency guard. `cargo tree` resolves only (it builds nothing), so rustup's cargo is
#    fine here; fall back to Debian's.
TREE_CARGO=cargo
command -v cargo >/dev/null 2>&1 || TREE_CARGO=/usr/bin/cargo
crates="$("$TREE_CARGO" tree -p "$CRATE" --target "$TARGET" -e normal --prefix none --format '{p}' \
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
        "$TREE_CARGO" tree -p "$CRATE" --target "$TARGET" -e normal -i "$c" >&2 || true
    done
    exit 1
fi
echo "check-wasm: dependency guard ok ($(wc -l <<<"$crates") crates; none of: $FORBIDDEN)"

# 4. Size of what was built.
rlib="$WASM_TARGET_DIR/$TARGET/release/lib${CRATE//-/_}.rlib"
if [ ! -f "$rlib" ]; then
    echo "check-wasm: FAIL: expected $rlib after the build" >&2
    exit 1
fi
size=$(stat -c %s "$rlib")
echo "check-wasm: ok: $rlib is $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))"
