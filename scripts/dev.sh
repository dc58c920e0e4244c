#!/usr/bin/env bash
# Runs the built Worker with `wrangler dev` on 127.0.0.1:${PORT:-8787}, local state in
# .wrangler/state. `make dev` builds first; this script does not build.
#
# .dev.vars (gitignored) holds the dev secrets. It is created once, with a random ADMIN_SECRET
# and a fresh SIGNING_KEY, and kept after that (tokens stay valid across restarts).
# ADMIN_SECRET in the environment overrides the one in .dev.vars for this run; ORIGIN_URL in
# the environment points the dev server at your own API for this run (default: the built-in
# demo FHIR origin).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

PORT="${PORT:-8787}"
[ -f "$BUILD_DIR/index.js" ] || die "no build: run 'make dev' (or 'make build' first)"

if [ ! -f .dev.vars ]; then
  log "creating .dev.vars (dev ADMIN_SECRET and SIGNING_KEY; never commit it)"
  umask 077
  {
    echo "# Dev secrets for wrangler dev, made by scripts/dev.sh. Not for production."
    echo "ADMIN_SECRET=$(node -e 'import("./scripts/keys.mjs").then(m => console.log(m.randomSecret(18)))')"
    echo "SIGNING_KEY='$(node scripts/gen-key.mjs)'"
  } >.dev.vars
fi

extra_args=()
if [ -n "${ADMIN_SECRET:-}" ]; then
  admin_secret="$ADMIN_SECRET"
  admin_from="the ADMIN_SECRET environment variable"
  extra_args+=(--var "ADMIN_SECRET:$ADMIN_SECRET")
else
  admin_secret="$(sed -n 's/^ADMIN_SECRET=//p' .dev.vars | tr -d "'\"")"
  admin_from=".dev.vars (ADMIN_SECRET=...)"
fi

if [ -n "${ORIGIN_URL:-}" ]; then
  [[ "$ORIGIN_URL" =~ ^https?://[^[:space:]]+$ ]] ||
    die "ORIGIN_URL must be an http(s) URL such as http://127.0.0.1:8080 (got '$ORIGIN_URL')"
  extra_args+=(--var "ORIGIN_URL:$ORIGIN_URL")
  origin_line="origin: $ORIGIN_URL (from the ORIGIN_URL environment variable)"
else
  origin_line="origin: the built-in demo FHIR origin (set ORIGIN_URL to use your own API)"
fi

base="http://127.0.0.1:$PORT"
cat <<MSG

  edge-authorizer dev server: $base
  admin user: root, admin secret: from $admin_from
  $origin_line

  Try the Aidbox tutorial (in another shell):

    export ADMIN_SECRET='$admin_secret'

    # 1. a client that may use Basic auth
    curl -i -u root:\$ADMIN_SECRET -X PUT $base/Client/basic \\
      -H 'content-type: application/json' \\
      -d '{"secret":"s3cret","grant_types":["basic"]}'

    # 2. a policy that lets it in
    curl -i -u root:\$ADMIN_SECRET -X PUT $base/AccessPolicy/basic-policy \\
      -H 'content-type: application/json' \\
      -d '{"engine":"allow","link":[{"id":"basic","resourceType":"Client"}]}'

    # 3. call the API as that client (demo FHIR origin unless ORIGIN_URL is set)
    curl -i -u basic:s3cret $base/Patient

    # 4. client credentials: a client, a policy, a token, a call with the token
    curl -i -u root:\$ADMIN_SECRET -X PUT $base/Client/api-client \\
      -H 'content-type: application/json' \\
      -d '{"secret":"verysecret","grant_types":["client_credentials"]}'
    curl -i -u root:\$ADMIN_SECRET -X PUT $base/AccessPolicy/api-client-policy \\
      -H 'content-type: application/json' \\
      -d '{"engine":"allow","link":[{"id":"api-client","resourceType":"Client"}]}'
    curl -s -u api-client:verysecret -X POST $base/auth/token \\
      -d grant_type=client_credentials
    curl -i -H "Authorization: Bearer <access_token from above>" $base/Patient

  Discovery: $base/.well-known/openid-configuration

  Demo SPA ($base/app/): register its client, then sign in there (with a User and policy
  as in the password-grant step of docs/getting-started.md):
    curl -u root:\$ADMIN_SECRET -X PUT $base/Client/spa-demo -H 'content-type: application/json' \\
      -d '{"grant_types":["authorization_code"],"first_party":true,"auth":{"authorization_code":{"redirect_uri":"$base/app/","refresh_token":true}}}'

MSG

exec "$NODE_BIN/wrangler" dev \
  --ip 127.0.0.1 --port "$PORT" \
  --persist-to .wrangler/state \
  "${extra_args[@]}"
