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
"$ROOT/scripts/size.sh"
