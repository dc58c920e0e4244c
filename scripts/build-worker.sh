#!/usr/bin/env bash
# Builds the Worker: Rust -> wasm32 -> wasm-bindgen -> wasm-opt -> esbuild, all with local tools.
# Output: build/index.js (the module wrangler.toml's `main` points at) and build/index_bg.wasm.
# Then prints the wasm size (scripts/size.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh"
worker_build_env

log "worker-build --release --features worker"
"$TOOLS_DIR/bin/worker-build" --release --features worker

[ -f "$BUILD_DIR/index.js" ] || die "worker-build did not produce $BUILD_DIR/index.js"

# Drop the function-name and producers sections that worker-build keeps (about 240 KB raw,
# 65 KB gzipped); panics still print their messages. No feature flags: wasm-opt takes them
# from the module's target_features section (`-all` would re-encode imports in a form
# workerd cannot load). Then `--gufa -Os` on top of worker-build's `-O`: 2.4 KB less gzipped
# (docs/perf.md "Worker size").
for wasm in "$BUILD_DIR"/*.wasm; do
  "$WASM_OPT_BIN" "$wasm" --strip-debug --strip-producers --gufa -Os -o "$wasm"
done
"$ROOT/scripts/size.sh"
