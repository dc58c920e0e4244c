#!/usr/bin/env bash
# Prints the size of the built Worker's wasm, raw and gzipped (what Cloudflare's limits count).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

shopt -s nullglob
wasm_files=("$BUILD_DIR"/*.wasm)
[ ${#wasm_files[@]} -gt 0 ] || die "no wasm in $BUILD_DIR: run 'make build' first"
for wasm in "${wasm_files[@]}"; do
  raw=$(stat -c %s "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  printf '%s: %d bytes raw (%d KiB), %d bytes gzipped (%d KiB)\n' \
    "${wasm#"$ROOT"/}" "$raw" $(((raw + 1023) / 1024)) "$gz" $(((gz + 1023) / 1024))
done
