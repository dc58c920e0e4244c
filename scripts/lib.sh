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

# --- skipping a build whose inputs and outputs are unchanged -------------------------------------
# A build script calls `build_fingerprint NAME [setting...]` BEFORE it builds, `build_is_current
# NAME FINGERPRINT OUTPUT...` to skip, and `build_stamp_write NAME FINGERPRINT OUTPUT...` after a
# successful build. The stamp (build/.stamps/NAME) holds the fingerprint of the inputs and a hash
# of the outputs: the build is skipped only when both still match, so an edited, touched, added or
# removed input, a changed toolchain or build setting, or a missing or replaced output rebuilds.
# BUILD_FORCE=1 always rebuilds.
#
# Inputs: every file git tracks or would track (untracked, not ignored) except the folders and
# files no build reads (BUILD_INPUT_EXCLUDE: tests, docs, pages served as assets, top-level
# Markdown, wrangler.toml and dev.sh, which only `wrangler dev`/deploy read), each with its size,
# mtime and content hash; rustc and cargo versions; the tool binaries; the build environment
# (RUSTFLAGS, CARGO_*, ...). A new kind of input outside these files belongs in the `setting`
# arguments the build script passes.
BUILD_INPUT_EXCLUDE='^(tests|docs|benches|www|fuzz|\.ci|\.github)/|^[^/]*\.md$|^wrangler\.toml$|^scripts/dev\.sh$'
STAMP_DIR="$BUILD_DIR/.stamps"

build_input_files() { # NUL-separated, relative to $ROOT, sorted
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard
  else
    (cd "$ROOT" && find . \( -path ./target -o -path ./node_modules -o -path ./build -o -path ./.git \
      -o -path ./.tools -o -path ./.wrangler \) -prune -o -type f -print0) | sed -z 's|^\./||'
  fi | grep -zvE "$BUILD_INPUT_EXCLUDE" | sort -zu
}

build_fingerprint() { # NAME [setting...]: prints the fingerprint of the inputs
  local name="$1"
  shift
  {
    printf 'recipe %s\n' "$name"
    printf 'setting %s\n' "$@"
    (
      cd "$ROOT"
      # Files deleted but still in git's index are skipped (they are not inputs any more).
      build_input_files | xargs -0 -r stat -c 'file %n %s %.9Y' 2>/dev/null || true
      build_input_files | xargs -0 -r sha256sum 2>/dev/null || true
    )
    rustc -vV 2>&1 || true
    cargo -V 2>&1 || true
    local tool
    for tool in "$TOOLS_DIR/bin/worker-build" "$TOOLS_DIR/bin/wasm-bindgen" "$NODE_BIN/wasm-opt" "$(esbuild_bin)"; do
      stat -L -c 'tool %n %s %.9Y' "$tool" 2>/dev/null || echo "tool $tool missing"
    done
    env | grep -E '^(RUSTFLAGS|RUSTC[A-Z_]*|RUSTUP_TOOLCHAIN|CARGO_[A-Z0-9_]+|WASM_[A-Z_]+|ESBUILD_BIN)=' |
      grep -vE '^CARGO_(TERM_[A-Z_]+|MAKEFLAGS|HOME)=' | sort || true
  } | sha256sum | cut -d' ' -f1
}

build_outputs_hash() { # OUTPUT... (files or folders): one hash of their names and contents
  local out
  for out in "$@"; do
    [ -e "$out" ] || { echo "missing $out"; continue; }
    find "$out" -type f -print0 | sort -z | xargs -0 -r sha256sum
  done | sha256sum | cut -d' ' -f1
}

build_is_current() { # NAME FINGERPRINT OUTPUT...: true when the stamp matches both
  local name="$1" fingerprint="$2"
  shift 2
  [ "${BUILD_FORCE:-0}" != 1 ] || return 1
  [ -f "$STAMP_DIR/$name" ] || return 1
  [ "$(sed -n 1p "$STAMP_DIR/$name")" = "inputs $fingerprint" ] || return 1
  [ "$(sed -n 2p "$STAMP_DIR/$name")" = "outputs $(build_outputs_hash "$@")" ]
}

build_stamp_clear() { rm -f "$STAMP_DIR/$1"; }

build_stamp_write() { # NAME FINGERPRINT OUTPUT...
  local name="$1" fingerprint="$2"
  shift 2
  mkdir -p "$STAMP_DIR"
  printf 'inputs %s\noutputs %s\n' "$fingerprint" "$(build_outputs_hash "$@")" >"$STAMP_DIR/$name"
}
