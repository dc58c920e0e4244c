# edge-authorizer: build, run and test the Worker.
#
#   make dev        install what is missing, build what changed, run `wrangler dev` on 127.0.0.1:$(PORT)
#   make test       fmt, clippy, native tests, wasm build, wrangler dry-run deploy, deploy script, e2e tests, docs examples
#   make test-docs  the `sh` examples of README.md and docs/*.md, run against the built Worker (part of make test)
#   make conformance  build, then the official MCP conformance runner (authorization server) in workerd
#   make build      build the browser verifier package and the Worker into build/ (and print sizes);
#                   each is skipped when nothing it is built from changed (BUILD_FORCE=1 rebuilds)
#   make size       print the wasm sizes (Worker and browser package), raw and gzipped
#   make soak       build, then the full load run in workerd (LOAD_REQUESTS, LOAD_CONCURRENCY, LOAD_SEED)
#   make bench      build, then benchmark against the peers in benches/ (not part of make test)
#   make scale      build, then Durable Object/KV work per request at SCALE_SHARDS shards and the scale model (not in make test)
#   make bootstrap  install the wasm32 target, npm packages, worker-build, wasm-bindgen-cli
#   make deploy     build, then the whole deploy: KV namespace, secrets, `wrangler deploy`, the URL
#                   (needs `npx wrangler login` once; DRY_RUN=1 only says what it would do; docs/deploy.md)
#   make clean      remove build output (keeps .dev.vars and .wrangler/state)
#   make fuzz       run each cargo-fuzz target for FUZZ_SECONDS (default 60); nightly, not in make test
#
# TOOLS_DIR (default .tools) is where worker-build, wasm-bindgen-cli and Node 22 (for the MCP
# conformance runner) are installed.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
# Steps run one after another, in the order written, even under `make -j`.
.NOTPARALLEL:

export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false

PORT ?= 8787
WRANGLER := node_modules/.bin/wrangler
section = @printf '\n==== %s ====\n' "$(1)"

.PHONY: help dev test build size bench scale bootstrap deploy clean soak fuzz \
        fmt-check clippy test-native test-model dry-run test-deploy test-e2e test-docs test-browser \
        conformance test-conformance

help:
	@sed -n 's/^#   //p' Makefile

bootstrap:
	$(call section,bootstrap)
	@scripts/bootstrap.sh

build: bootstrap
	$(call section,build: browser verifier package (build/verifier, www/app/pkg))
	@scripts/build-browser.sh
	$(call section,build: wasm Worker)
	@scripts/build-worker.sh

size:
	@scripts/size.sh
	@wasm=build/verifier/edge_authorizer_bg.wasm; test -f $$wasm || { echo "$$wasm missing: run 'make build'"; exit 1; }; \
	  printf '%s: %d bytes raw, %d bytes gzipped (browser package)\n' $$wasm $$(stat -c %s $$wasm) $$(gzip -9 -c $$wasm | wc -c)

# One run, one Markdown table (also build/bench.md) and docs/bench.png; BENCH_ROUNDS,
# BENCH_DURATION, BENCH_CONNECTIONS, BENCH_PARTS (see benches/run.mjs) make a quick run possible.
bench: build
	$(call section,bench: peers and load generator (benches/package.json))
	@test benches/node_modules/.package-lock.json -nt benches/package-lock.json || \
	  npm ci --prefix benches --ignore-scripts --no-audit --no-fund
	$(call section,bench: benches/run.mjs)
	node benches/run.mjs

dev: build
	@scripts/dev.sh

# scripts/deploy.sh: login check, missing secrets made (never replaced), `wrangler deploy` (which
# creates the id-less RESOURCES namespace on the first deploy), the URL. DRY_RUN=1: no Cloudflare.
deploy: build
	$(call section,deploy (scripts/deploy.sh))
	@scripts/deploy.sh

# --- make test: each step stops the run on failure ----------------------------------------------
test: bootstrap fmt-check clippy test-native test-model build dry-run test-deploy test-e2e test-docs test-browser test-conformance
	$(call section,all checks passed)

fmt-check:
	$(call section,cargo fmt --check)
	cargo fmt --all --check

clippy:
	$(call section,cargo clippy (native))
	cargo clippy --all-targets -- -D warnings
	$(call section,cargo clippy (wasm32 + worker))
	cargo clippy --target wasm32-unknown-unknown --features worker --lib -- -D warnings
	$(call section,cargo clippy (wasm32 + browser package))
	cargo clippy --target wasm32-unknown-unknown --no-default-features --features browser --lib -- -D warnings

test-native:
	$(call section,cargo test (native))
	cargo test

# The scale model's arithmetic (tests/scale/model.mjs; well under a second, no Worker needed).
test-model:
	$(call section,scale model (node --test tests/scale/model.test.mjs))
	node --test tests/scale/model.test.mjs

dry-run:
	$(call section,wrangler deploy --dry-run)
	@out="$$(mktemp -d)"; trap 'rm -rf "$$out"' EXIT; \
	  $(WRANGLER) deploy --dry-run --outdir "$$out"

# scripts/deploy.sh, offline: against a stand-in wrangler (tests/deploy/fake-wrangler.mjs), and
# with the real wrangler against a local stand-in for the Cloudflare API (needs the build).
test-deploy:
	$(call section,deploy script (node --test tests/deploy/))
	node --test --test-concurrency=1 tests/deploy/*.test.mjs

test-e2e:
	$(call section,end-to-end tests (node --test tests/e2e/ tests/aidbox/))
	@test -f build/index.js || { echo "build/index.js missing: run 'make build'"; exit 1; }
	node --test --test-concurrency=1 tests/e2e/*.test.mjs tests/aidbox/*.test.mjs

# The shell examples of the docs (README.md, docs/*.md), each page's `sh` blocks in one bash
# against a fresh built Worker; `# => NNN` after each curl call is its expected status
# (tests/docs/examples.mjs has the convention; `node tests/docs/examples.mjs PAGE.md` runs one page).
test-docs:
	$(call section,docs examples (node --test tests/docs/))
	@test -f build/index.js || { echo "build/index.js missing: run 'make build'"; exit 1; }
	@command -v jq >/dev/null || { echo "jq missing (the docs examples use it): apt-get install -y jq, or make bootstrap"; exit 1; }
	node --test --test-concurrency=1 tests/docs/*.test.mjs

test-browser:
	$(call section,browser tests (node --test tests/browser/))
	@test -f build/index.js || { echo "build/index.js missing: run 'make build'"; exit 1; }
	@test -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" || { echo "Chromium missing: apt-get install -y chromium (or set CHROMIUM_PATH)"; exit 1; }
	node --test --test-concurrency=1 tests/browser/*.test.mjs

# The official MCP conformance runner (npm @modelcontextprotocol/conformance, on Node 22 from
# $TOOLS_DIR/node22) against the built Worker, its browser step done by Chromium through the real
# login and consent pages; fails unless every check is SUCCESS (docs/development.md "Checked by others' code").
# Run twice, about 10 s each: without and with an RFC 8707 resource (--resource sends the issuer,
# CONFORMANCE_RESOURCE=<uri> another one).
test-conformance:
	$(call section,MCP conformance: authorization server (tests/conformance/run.mjs))
	@test -f build/index.js || { echo "build/index.js missing: run 'make build'"; exit 1; }
	node tests/conformance/run.mjs
	node tests/conformance/run.mjs --resource

conformance: build test-conformance

# Full load and soak run (docs/performance.md "Load and soak"); exits non-zero on any unexpected answer.
soak: build
	$(call section,load and soak (tests/load/soak.mjs))
	node tests/load/soak.mjs

# docs/performance.md "Scale": the mixed load per STATE_SHARDS in SCALE_SHARDS (default 1,4,16) for
# SCALE_SECONDS (20) each, then the model on build/scale.json; MODEL_FLAGS go to the model
# (e.g. MODEL_FLAGS="--shards 128 --feeds 16"). Fails on any unexpected answer in the mix.
scale: build
	$(call section,scale: tests/scale/run.mjs)
	node tests/scale/run.mjs | tee build/scale.md
	$(call section,scale: tests/scale/model.mjs $(MODEL_FLAGS))
	node tests/scale/model.mjs build/scale.json $(MODEL_FLAGS) | tee -a build/scale.md

clean:
	rm -rf build .wrangler/tmp
	@echo "kept .dev.vars and .wrangler/state (local dev data); remove them by hand to reset"

# --- make fuzz: libFuzzer through cargo-fuzz on nightly (docs/development.md, "Fuzzing") ----------------------
# One process per target, one after another (the targets share the machine); new corpus entries
# go to fuzz/corpus/<target> (ignored by git), crashes to fuzz/artifacts/<target>. Each target
# starts from the inputs kept in fuzz/regressions/<target>, which `cargo test` replays on stable.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := jwt form basic policy smart_scopes

fuzz:
	$(call section,cargo-fuzz: $(FUZZ_SECONDS)s per target)
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	cd fuzz && cargo +nightly fuzz build -O
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  printf '\n==== fuzz %s ====\n' "$$t"; mkdir -p fuzz/corpus/$$t; \
	  (cd fuzz && cargo +nightly fuzz run -O $$t corpus/$$t regressions/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets failed:$$failed (inputs in fuzz/artifacts/)"; exit 1; fi
