#!/usr/bin/env bash
# Builds the browser verifier package: Rust (feature `browser`) -> wasm32 -> wasm-bindgen
# (--target web, an ES module) -> wasm-opt -Oz, with the local tools.
# Output: build/verifier/ (the npm-shaped package: package.json, README.md, edge_authorizer.js,
# edge_authorizer.d.ts, edge_authorizer_bg.wasm, dpop.js) and a copy of the module and the wasm in
# www/app/pkg/, where the Worker serves them to the demo SPA (/app/pkg/...).
#
# Its own cargo target directory (target/browser): the Worker build compiles the same crate with
# other features into target/, and the two may then run in any order, even at once.
#
# Skipped when no input changed since the last build and its outputs are as that build left them
# (build/.stamps/browser; scripts/lib.sh, build_fingerprint). BUILD_FORCE=1 rebuilds anyway.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

WASM_BINDGEN="$TOOLS_DIR/bin/wasm-bindgen"
WASM_OPT="$NODE_BIN/wasm-opt"
[ -x "$WASM_BINDGEN" ] || die "$WASM_BINDGEN missing: run scripts/bootstrap.sh (make bootstrap)"
[ -x "$WASM_OPT" ] || die "$WASM_OPT missing: run npm ci (make bootstrap)"

OUT="$BUILD_DIR/verifier"
PKG_SRC="$ROOT/packages/verifier"
SPA_PKG="$ROOT/www/app/pkg"

print_size() {
  local wasm="$OUT/edge_authorizer_bg.wasm" raw gz
  raw=$(stat -c %s "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  printf '%s: %d bytes raw (%d KiB), %d bytes gzipped (%d KiB)\n' \
    "${wasm#"$ROOT"/}" "$raw" $(((raw + 1023) / 1024)) "$gz" $(((gz + 1023) / 1024))
}

OUTPUTS=("$OUT" "$SPA_PKG")
fingerprint="$(build_fingerprint browser "cargo --lib --no-default-features --features browser; wasm-bindgen --target web; wasm-opt -Oz --converge")"
if build_is_current browser "$fingerprint" "${OUTPUTS[@]}"; then
  log "browser package up to date (no input changed since the last build; BUILD_FORCE=1 rebuilds)"
  print_size
  exit 0
fi
build_stamp_clear browser

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

log "cargo build --release --target $WASM_TARGET --lib --no-default-features --features browser"
CARGO_TARGET_DIR="$ROOT/target/browser" \
  cargo build --release --target "$WASM_TARGET" --lib --no-default-features --features browser
cp "$ROOT/target/browser/$WASM_TARGET/release/edge_authorizer.wasm" "$STAGE/edge_authorizer.wasm"

log "wasm-bindgen --target web"
rm -rf "$OUT"
mkdir -p "$OUT"
"$WASM_BINDGEN" --target web --out-dir "$OUT" --out-name edge_authorizer "$STAGE/edge_authorizer.wasm"

log "wasm-opt -Oz --converge"
# No feature flags: wasm-opt reads them from the module's target_features section (`-all` would
# let it rewrite imports into stringref, which browsers do not load). --converge repeats -Oz
# until nothing shrinks: about 350 bytes gzipped for 20 s of build time.
"$WASM_OPT" "$OUT/edge_authorizer_bg.wasm" -Oz --converge --strip-debug --strip-producers \
  -o "$OUT/edge_authorizer_bg.wasm"

cp "$PKG_SRC/package.json" "$PKG_SRC/README.md" "$PKG_SRC/dpop.js" "$PKG_SRC/dpop.d.ts" "$OUT/"

mkdir -p "$SPA_PKG"
rm -f "$SPA_PKG"/edge_authorizer* "$SPA_PKG"/dpop.js
cp "$OUT/edge_authorizer.js" "$OUT/edge_authorizer_bg.wasm" "$OUT/dpop.js" "$SPA_PKG/"

build_stamp_write browser "$fingerprint" "${OUTPUTS[@]}"
print_size
