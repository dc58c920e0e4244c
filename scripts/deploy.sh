#!/usr/bin/env bash
# The whole deploy: `make deploy` builds, then runs this (docs/deploy.md).
#
#   scripts/deploy.sh             deploy the built Worker to the logged-in Cloudflare account
#   scripts/deploy.sh --dry-run   (or DRY_RUN=1) say what it would do and check the bundle with
#                                 `wrangler deploy --dry-run`; no call to Cloudflare
#
# 1. Checks the login (`wrangler whoami --json`) and picks the account (CLOUDFLARE_ACCOUNT_ID, else
#    the only one, else asks on a terminal).
# 2. Lists the Worker's secrets (`wrangler secret list`; a Worker that does not exist yet has none).
# 3. Only for a secret that is not set: SIGNING_KEY is a new Ed25519 private JWK; ADMIN_SECRET is
#    $ADMIN_SECRET from the environment, else asked for on a terminal (hidden; empty = generate),
#    else generated. A generated ADMIN_SECRET is shown once, at the end. Existing secrets are never
#    replaced (rotating the signing key is a procedure of its own: docs/deploy.md).
# 4. `wrangler deploy`, with the new secrets (if any) in a mode-600 file that only lives for the
#    call (`--secrets-file`: they arrive with the version, also on the very first deploy). On the
#    first deploy wrangler creates the KV namespace of the id-less RESOURCES binding; later
#    deploys keep the binding the Worker already has.
# 5. Prints the Worker's URL, read from wrangler's output file (WRANGLER_OUTPUT_FILE_PATH, the
#    deploy entry's `targets`), and whether it answers.
#
# Secrets never go on a command line, into the repository or into a log: they reach wrangler
# through that file, and node through stdin. Nothing waits for input unless stdin is a terminal.
# WRANGLER overrides the wrangler command (the tests use a stand-in).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

WRANGLER="${WRANGLER:-$NODE_BIN/wrangler}"
DRY_RUN="${DRY_RUN:-}"
case "$DRY_RUN" in 0 | false | no) DRY_RUN="" ;; esac
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (scripts/deploy.sh [--dry-run])" ;;
  esac
done

[ -f "$BUILD_DIR/index.js" ] || die "no build: run 'make deploy' (it builds first)"

worker_name="$(sed -n 's/^name *= *"\([^"]*\)".*/\1/p' wrangler.toml | head -n1)"
[ -n "$worker_name" ] || die "wrangler.toml has no name"

# Interactive only when both ends are a terminal and this is not CI.
interactive=""
if [ -t 0 ] && [ -t 1 ] && [ -z "${CI:-}" ]; then interactive=1; fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/edge-authorizer-deploy.XXXXXX")"
chmod 700 "$tmp"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# wrangler without a terminal on stdin: it then never prompts (and never waits).
wrangler_quiet() { "$WRANGLER" "$@" </dev/null; }

json_get() { # JS-EXPRESSION over `j` (the JSON on stdin); prints the result, one item a line
  node --input-type=module -e '
    let s = ""; for await (const c of process.stdin) s += c;
    const j = JSON.parse(s);
    const r = (0, eval)("(j) => " + process.argv[1])(j);
    for (const x of [].concat(r ?? [])) console.log(x);' "$1"
}

# FILE SIGNING(0/1) ADMIN(0/1), the admin secret on stdin: the JSON file for `--secrets-file`,
# mode 600 from the start. A new SIGNING_KEY is made inside node and goes nowhere but the file.
write_secrets_file() {
  (umask 077 && : >"$1")
  node --input-type=module -e '
    import { writeFileSync } from "node:fs";
    import { generateSigningJwk } from "./scripts/keys.mjs";
    let admin = ""; for await (const c of process.stdin) admin += c;
    const [file, signing, adminWanted] = process.argv.slice(1);
    const out = {};
    if (signing === "1") out.SIGNING_KEY = JSON.stringify(await generateSigningJwk());
    if (adminWanted === "1") out.ADMIN_SECRET = admin;
    writeFileSync(file, JSON.stringify(out), { mode: 0o600 });' "$@"
}

kv_has_id() { # the RESOURCES binding in wrangler.toml names its namespace
  awk '/^\[/ { in_kv = ($0 == "[[kv_namespaces]]") } in_kv && /^id *=/ { found = 1 } END { exit !found }' wrangler.toml
}

issuer_set() { # ISSUER given in wrangler.toml [vars] (not commented out)
  awk '/^\[/ { in_vars = ($0 == "[vars]") } in_vars && /^ISSUER *=/ { found = 1 } END { exit !found }' wrangler.toml
}

# ---- dry run: the plan, and the bundle checked offline ------------------------------------------
if [ -n "$DRY_RUN" ]; then
  if kv_has_id; then
    kv_plan="KV binding RESOURCES names its namespace (id in wrangler.toml): used as it is"
  else
    kv_plan="KV binding RESOURCES has no id: the first deploy creates \"$worker_name-resources\",
     later deploys keep the Worker's binding"
  fi
  cat <<PLAN
deploy plan for Worker "$worker_name" (dry run: nothing is sent to Cloudflare)
  1. check the login: wrangler whoami --json (not logged in: stop, run 'npx wrangler login')
  2. list the Worker's secrets: wrangler secret list (no Worker yet: no secrets)
  3. SIGNING_KEY not set: generate an Ed25519 private JWK; set: keep it
     ADMIN_SECRET not set: \$ADMIN_SECRET, else ask (terminal), else generate and show once; set: keep it
  4. wrangler deploy [--secrets-file <mode-600 temp file>]
     $kv_plan
  5. print the Worker's URL
PLAN
  # The same secrets file as a first deploy (throwaway values, never shown, removed on exit), so
  # wrangler checks its format too.
  log "checking the bundle and a secrets file: wrangler deploy --dry-run --secrets-file"
  node --input-type=module -e 'import { randomSecret } from "./scripts/keys.mjs"; process.stdout.write(randomSecret(32))' |
    write_secrets_file "$tmp/secrets-upload.json" 1 1
  wrangler_quiet deploy --dry-run --outdir "$tmp/dry-run" --secrets-file "$tmp/secrets-upload.json"
  echo
  echo "dry run done: nothing was deployed"
  exit 0
fi

# ---- 1. login and account -----------------------------------------------------------------------
log "checking the Cloudflare login (wrangler whoami)"
whoami_json="$tmp/whoami.json"
if ! wrangler_quiet whoami --json >"$whoami_json" 2>"$tmp/whoami.err" ||
  [ "$(json_get 'j.loggedIn === true' <"$whoami_json" 2>/dev/null)" != true ]; then
  die "not logged in to Cloudflare. Run 'npx wrangler login' (or set CLOUDFLARE_API_TOKEN), then 'make deploy' again."
fi
email="$(json_get 'j.email' <"$whoami_json" 2>/dev/null || true)"
accounts="$(json_get '(j.accounts ?? []).map(a => a.id + " " + a.name)' <"$whoami_json")" ||
  die "could not read the accounts wrangler whoami printed"
account_lines=()
[ -z "$accounts" ] || mapfile -t account_lines <<<"$accounts"

if [ -z "${CLOUDFLARE_ACCOUNT_ID:-}" ] && ! grep -qE '^account_id *=' wrangler.toml; then
  if [ "${#account_lines[@]}" -eq 1 ]; then
    CLOUDFLARE_ACCOUNT_ID="${account_lines[0]%% *}"
  elif [ "${#account_lines[@]}" -eq 0 ]; then
    die "this login sees no Cloudflare account (set CLOUDFLARE_ACCOUNT_ID)"
  elif [ -n "$interactive" ]; then
    echo "This login has ${#account_lines[@]} accounts:"
    for i in "${!account_lines[@]}"; do printf '  %d) %s\n' $((i + 1)) "${account_lines[$i]#* } (${account_lines[$i]%% *})"; done
    while :; do
      read -r -p "Deploy to which one? [1-${#account_lines[@]}] " pick || die "no answer"
      if [[ "$pick" =~ ^[0-9]+$ ]] && [ "$pick" -ge 1 ] && [ "$pick" -le "${#account_lines[@]}" ]; then break; fi
    done
    CLOUDFLARE_ACCOUNT_ID="${account_lines[$((pick - 1))]%% *}"
  else
    printf '  %s\n' "${account_lines[@]}" >&2
    die "this login has ${#account_lines[@]} accounts: set CLOUDFLARE_ACCOUNT_ID to the one to deploy to"
  fi
  export CLOUDFLARE_ACCOUNT_ID
fi
log "logged in${email:+ as $email}${CLOUDFLARE_ACCOUNT_ID:+, account $CLOUDFLARE_ACCOUNT_ID}"

# ---- 2. the secrets the Worker has --------------------------------------------------------------
log "listing the secrets of Worker \"$worker_name\" (wrangler secret list)"
first_deploy=""
if wrangler_quiet secret list --format json >"$tmp/secrets.json" 2>"$tmp/secrets.err"; then
  # (not `mapfile < <(...)`: a failure inside a process substitution would go unnoticed)
  names="$(json_get 'j.map(s => s.name)' <"$tmp/secrets.json" 2>/dev/null)" ||
    die "could not read the list of secrets wrangler printed; not deploying (an existing SIGNING_KEY must not be replaced)"
  mapfile -t secret_names <<<"$names"
elif grep -qi "not found" "$tmp/secrets.json" "$tmp/secrets.err" &&
  grep -qi "new Worker" "$tmp/secrets.json" "$tmp/secrets.err"; then
  first_deploy=1
  secret_names=()
else
  cat "$tmp/secrets.err" "$tmp/secrets.json" >&2
  die "could not list the Worker's secrets (above); not deploying (an existing SIGNING_KEY must not be replaced)"
fi
# A namespace left from an earlier deploy of this Worker (after `wrangler delete`, or a first
# deploy that failed after creating it) would make wrangler's create fail: say what to do first.
kv_title="$worker_name-resources"
if [ -n "$first_deploy" ] && ! kv_has_id; then
  if wrangler_quiet kv namespace list >"$tmp/kv.json" 2>"$tmp/kv.err"; then
    kv_id="$(json_get "j.filter(n => n.title === $(printf '"%s"' "$kv_title")).map(n => n.id)" <"$tmp/kv.json" 2>/dev/null | head -n1 || true)"
    if [ -n "$kv_id" ]; then
      die "the KV namespace \"$kv_title\" ($kv_id) exists already, from an earlier deploy. Keep its data: add
    id = \"$kv_id\"
  under [[kv_namespaces]] binding = \"RESOURCES\" in wrangler.toml. Or start empty: npx wrangler kv namespace delete $kv_title
  Then 'make deploy' again."
    fi
  else
    log "could not list KV namespaces (wrangler kv namespace list); going on"
  fi
fi

has_secret() { printf '%s\n' "${secret_names[@]}" | grep -qx "$1"; }

# ---- 3. the secrets that are missing ------------------------------------------------------------
need_signing=""
need_admin=""
has_secret SIGNING_KEY || need_signing=1
has_secret ADMIN_SECRET || need_admin=1
[ -n "$first_deploy" ] && log "first deploy: Worker \"$worker_name\" does not exist yet"
[ -z "$need_signing" ] && log "SIGNING_KEY is set: kept"
if [ -z "$need_admin" ]; then
  if [ -n "${ADMIN_SECRET:-}" ]; then
    log "ADMIN_SECRET is already set on the Worker: kept (the one in the environment is not used; change it with 'npx wrangler secret put ADMIN_SECRET')"
  else
    log "ADMIN_SECRET is set: kept"
  fi
fi

admin_secret=""
admin_generated=""
if [ -n "$need_admin" ]; then
  if [ -n "${ADMIN_SECRET:-}" ]; then
    # The docs have you `export ADMIN_SECRET=<the dev secret>` for `make dev`: that one lives in
    # plain text in .dev.vars and must not become the deployed root password by accident.
    [ "${#ADMIN_SECRET}" -ge 16 ] || die "ADMIN_SECRET in the environment is shorter than 16 characters; not deploying"
    dev_admin=""
    [ ! -f .dev.vars ] || dev_admin="$(sed -n 's/^ADMIN_SECRET=//p' .dev.vars | tr -d "'\"")"
    [ "$ADMIN_SECRET" != "$dev_admin" ] ||
      die "ADMIN_SECRET in the environment is the dev secret of .dev.vars; unset it (a secret is then asked for or generated) or export another one"
    admin_secret="$ADMIN_SECRET"
    log "ADMIN_SECRET: from the environment"
  elif [ -n "$interactive" ]; then
    echo "ADMIN_SECRET is the password of the built-in 'root' client (the admin API)."
    while :; do
      read -r -s -p "Type one (at least 16 characters), or press Enter to generate one: " admin_secret || die "no answer"
      echo
      if [ -z "$admin_secret" ]; then break; fi
      if [ "${#admin_secret}" -lt 16 ]; then echo "too short"; continue; fi
      read -r -s -p "Again: " again || die "no answer"
      echo
      [ "$again" = "$admin_secret" ] && break
      echo "the two do not match"
    done
    unset again
  fi
  if [ -z "$admin_secret" ]; then
    admin_secret="$(node --input-type=module -e 'import { randomSecret } from "./scripts/keys.mjs"; console.log(randomSecret(32))')"
    admin_generated=1
    log "ADMIN_SECRET: generated (shown once, below)"
  fi
fi

secrets_args=()
if [ -n "$need_signing" ] || [ -n "$need_admin" ]; then
  [ -n "$need_signing" ] && log "SIGNING_KEY: generating a new Ed25519 key"
  secrets_file="$tmp/secrets-upload.json"
  printf '%s' "$admin_secret" | write_secrets_file "$secrets_file" "${need_signing:-0}" "${need_admin:-0}"
  secrets_args=(--secrets-file "$secrets_file")
fi

# ---- 4. deploy ----------------------------------------------------------------------------------
log "wrangler deploy${secrets_args[*]:+ (with the new secrets: ${need_signing:+SIGNING_KEY }${need_admin:+ADMIN_SECRET})}"
output_file="$tmp/wrangler-output.ndjson"
: >"$tmp/deploy.log"
set +e
if [ -n "$interactive" ]; then
  # On a terminal wrangler may ask (to register the account's workers.dev subdomain, ...), so its
  # output is not piped; the URL comes from its output file.
  WRANGLER_OUTPUT_FILE_PATH="$output_file" "$WRANGLER" deploy "${secrets_args[@]}"
  deploy_rc=$?
else
  WRANGLER_OUTPUT_FILE_PATH="$output_file" "$WRANGLER" deploy "${secrets_args[@]}" </dev/null 2>&1 | tee "$tmp/deploy.log"
  deploy_rc="${PIPESTATUS[0]}"
fi
set -e
rm -f "${secrets_file:-}"
if [ "$deploy_rc" -ne 0 ]; then
  [ -n "$admin_generated" ] && log "the generated ADMIN_SECRET was not stored; a new one is made next time"
  die "wrangler deploy failed (exit $deploy_rc): see its output above"
fi

# ---- 5. where it runs ---------------------------------------------------------------------------
mapfile -t targets < <(
  if [ -s "$output_file" ]; then
    node --input-type=module -e '
      import { readFileSync } from "node:fs";
      for (const line of readFileSync(process.argv[1], "utf8").split("\n")) {
        if (!line.trim()) continue;
        const e = JSON.parse(line);
        if (e.type === "deploy") for (const t of e.targets ?? []) console.log(t);
      }' "$output_file"
  fi
)
if [ "${#targets[@]}" -eq 0 ]; then # an older output format: the lines after "Deployed ... triggers"
  mapfile -t targets < <(awk '/^Deployed .* triggers/ { on = 1; next } on && /^  / { sub(/^ +/, ""); print; next } on { exit }' "$tmp/deploy.log")
fi
urls=() # workers.dev URLs as printed, custom domains as https://host; plain routes are listed only
for t in "${targets[@]}"; do
  if [[ "$t" =~ ^https?://[^[:space:]]+$ ]]; then
    urls+=("${t%/}")
  elif [[ "$t" =~ ^([A-Za-z0-9.-]+)\ \(custom\ domain ]]; then
    urls+=("https://${BASH_REMATCH[1]}")
  fi
done
url="${urls[0]:-}"

echo
echo "Deployed Worker \"$worker_name\"."
if [ -n "$url" ]; then
  echo "  URL: $url   (from wrangler's deploy output)"
  for u in "${urls[@]:1}"; do echo "  also: $u"; done
  status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url/.well-known/openid-configuration" 2>/dev/null || true)"
  if [ "$status" = 200 ]; then
    echo "  running: GET $url/.well-known/openid-configuration answered 200"
  else
    echo "  not answering yet (${status:-no answer}): a new workers.dev subdomain can take a few minutes"
  fi
elif [ "${#targets[@]}" -gt 0 ]; then
  echo "  routes: ${targets[*]}"
else
  echo "  wrangler named no URL (no workers.dev subdomain and no routes?): see its output above"
fi
if ! issuer_set; then
  echo "  ISSUER is not set: tokens name the origin a request came in on. Set ISSUER in"
  echo "  wrangler.toml [vars] (and ORIGIN_URL, your API) and 'make deploy' again (docs/configuration.md)."
fi
if [ -n "$admin_generated" ]; then
  echo
  echo "  ADMIN_SECRET (password of the 'root' client) was generated. It is shown this once;"
  echo "  keep it in your password manager:"
  echo
  echo "    $admin_secret"
  echo
  echo "  Try it: curl -u root:<ADMIN_SECRET> ${url:-https://<your Worker>}/Client"
fi
