# Shared settings for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

# Local tools (worker-build, wasm-bindgen). Default: .tools in the repo (gitignored).
# .ci/run points it at a per-machine cache so reruns are fast.
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
mkdir -p "$TOOLS_DIR"
TOOLS_DIR="$(cd "$TOOLS_DIR" && pwd)"
export TOOLS_DIR

WORKER_BUILD_VERSION="0.8.7"
WASM_TARGET="wasm32-unknown-unknown"
BUILD_DIR="$ROOT/build"

# wrangler must never phone home or look for an account during dev and tests.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false

NODE_BIN="$ROOT/node_modules/.bin"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The wasm-bindgen version in Cargo.lock: the CLI must match the library exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

# Native esbuild from node_modules (worker-build bundles the shim with it).
esbuild_bin() {
  local native
  for native in "$ROOT"/node_modules/@esbuild/*/bin/esbuild; do
    if [ -x "$native" ]; then echo "$native"; return; fi
  done
  echo "$NODE_BIN/esbuild"
}

# Environment that makes worker-build use local tools instead of downloading them.
worker_build_env() {
  export WASM_BINDGEN_BIN="$TOOLS_DIR/bin/wasm-bindgen"
  export WASM_OPT_BIN="$NODE_BIN/wasm-opt"
  ESBUILD_BIN="$(esbuild_bin)"
  export ESBUILD_BIN
}
