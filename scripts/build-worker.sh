#!/usr/bin/env bash
# Builds the Worker: Rust -> wasm32 -> wasm-bindgen -> wasm-opt -> esbuild, all with local tools.
# Output: build/index.js (the module wrangler.toml's `main` points at) and build/index_bg.wasm.
# Then prints the wasm size (scripts/size.sh).
#
# Skipped (in well under a second) when no input changed since the last build and its outputs
# are as that build left them (build/.stamps/worker; scripts/lib.sh, build_fingerprint).
# BUILD_FORCE=1 rebuilds anyway.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh"
worker_build_env

# The outputs: index.js and index_bg.wasm by name (either missing rebuilds), and every other
# module worker-build writes (build/*.js, *.mjs, *.wasm, worker/).
outputs() {
  local extra=()
  shopt -s nullglob
  extra=("$BUILD_DIR"/*.{js,mjs,wasm})
  shopt -u nullglob
  printf '%s\0' "$BUILD_DIR/index.js" "$BUILD_DIR/index_bg.wasm" "$BUILD_DIR/worker" "${extra[@]}" | sort -zu
}
fingerprint="$(build_fingerprint worker "worker-build --release --features worker")"
mapfile -d '' OUTPUTS < <(outputs)
if build_is_current worker "$fingerprint" "${OUTPUTS[@]}"; then
  log "Worker up to date (no input changed since the last build; BUILD_FORCE=1 rebuilds)"
  "$ROOT/scripts/size.sh"
  exit 0
fi
build_stamp_clear worker

log "worker-build --release --features worker"
"$TOOLS_DIR/bin/worker-build" --release --features worker

[ -f "$BUILD_DIR/index.js" ] || die "worker-build did not produce $BUILD_DIR/index.js"
# A plain entry module in front of worker-build's bundle (scripts/worker-entry.mjs).
mv "$BUILD_DIR/index.js" "$BUILD_DIR/app.mjs"
cp "$ROOT/scripts/worker-entry.mjs" "$BUILD_DIR/index.js"

# Drop the function-name and producers sections that worker-build keeps (about 240 KB raw,
# 65 KB gzipped); panics still print their messages. No feature flags: wasm-opt takes them
# from the module's target_features section (`-all` would re-encode imports in a form
# workerd cannot load). Then `--gufa -Os` on top of worker-build's `-O`: 2.4 KB less gzipped
# (docs/perf.md "Worker size").
for wasm in "$BUILD_DIR"/*.wasm; do
  "$WASM_OPT_BIN" "$wasm" --strip-debug --strip-producers --gufa -Os -o "$wasm"
done
mapfile -d '' OUTPUTS < <(outputs)
build_stamp_write worker "$fingerprint" "${OUTPUTS[@]}"
"$ROOT/scripts/size.sh"
