#!/usr/bin/env node
// A stand-in for wrangler 4.86 that scripts/deploy.sh talks to in tests/deploy/deploy.test.mjs.
// It answers the commands the script uses the way the real one does (output shapes and exit codes
// read from node_modules/wrangler/wrangler-dist/cli.js), keeps an "account" in
// $FAKE_WRANGLER_DIR/state.json and appends every call to $FAKE_WRANGLER_DIR/calls.ndjson:
// { argv, stdin, secretsFile: { mode, content } }.
//
// state.json: { loggedIn, accounts: [{id,name}], email, worker: null | { secrets: {NAME: value} },
//               kv: [{id,title}], url, failDeploy, failSecretList }
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

const dir = process.env.FAKE_WRANGLER_DIR;
if (!dir) throw new Error("FAKE_WRANGLER_DIR is not set");
const statePath = path.join(dir, "state.json");
const state = JSON.parse(readFileSync(statePath, "utf8"));
const argv = process.argv.slice(2);

// stdin: read whatever is there when it is not a terminal (the script gives /dev/null).
let stdin = null;
if (!process.stdin.isTTY) {
  stdin = "";
  for await (const c of process.stdin) stdin += c;
}

const call = { argv, stdin, env: { CLOUDFLARE_ACCOUNT_ID: process.env.CLOUDFLARE_ACCOUNT_ID ?? null } };
const flag = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const secretsFile = flag("--secrets-file");
if (secretsFile) {
  call.secretsFile = existsSync(secretsFile)
    ? { mode: statSync(secretsFile).mode & 0o777, content: readFileSync(secretsFile, "utf8") }
    : { missing: true };
}
appendFileSync(path.join(dir, "calls.ndjson"), JSON.stringify(call) + "\n");

const save = () => writeFileSync(statePath, JSON.stringify(state, null, 2));
const name = /^name *= *"([^"]+)"/m.exec(readFileSync("wrangler.toml", "utf8"))[1];
const out = (s) => process.stdout.write(s + "\n");
const err = (s) => process.stderr.write(s + "\n");

function needAccount() {
  if (!state.loggedIn) {
    err("✘ [ERROR] You are not logged in. Run `wrangler login`.");
    process.exit(1);
  }
  if (state.accounts.length > 1 && !process.env.CLOUDFLARE_ACCOUNT_ID) {
    err("✘ [ERROR] More than one account available but unable to select one in non-interactive mode.");
    process.exit(1);
  }
}

const cmd = argv.filter((a) => !a.startsWith("-")).slice(0, 3).join(" ");
if (cmd.startsWith("whoami")) {
  if (!argv.includes("--json")) throw new Error("the fake only answers whoami --json");
  if (!state.loggedIn) {
    // JsonFriendlyFatalError: the JSON, exit 1
    out(JSON.stringify({ loggedIn: false }));
    process.exit(1);
  }
  out(JSON.stringify({ loggedIn: true, authType: "OAuth Token", email: state.email, accounts: state.accounts, tokenPermissions: [] }));
} else if (cmd.startsWith("secret list")) {
  needAccount();
  if (state.failSecretList) {
    err("✘ [ERROR] A request to the Cloudflare API (/accounts/x/workers/scripts/y/secrets) failed.");
    process.exit(1);
  }
  if (!state.worker) {
    err(`✘ [ERROR] Worker "${name}" not found.\n\nIf this is a new Worker, run \`wrangler deploy\` first to create it.\nOtherwise, check that the Worker name is correct and you're logged into the right account.`);
    process.exit(1);
  }
  if (state.garbledSecretList) {
    out("⛅️ wrangler 4.86.0 (a banner where JSON was expected)");
    process.exit(0);
  }
  out(JSON.stringify(Object.keys(state.worker.secrets).map((n) => ({ name: n, type: "secret_text" })), null, "  "));
} else if (cmd.startsWith("kv namespace list")) {
  needAccount();
  out(JSON.stringify(state.kv, null, "  "));
} else if (cmd.startsWith("secret put")) {
  needAccount();
  state.worker ??= { secrets: {} };
  state.worker.secrets[argv[2]] = stdin;
  save();
  out(`✨ Success! Uploaded secret ${argv[2]}`);
} else if (cmd.startsWith("deploy")) {
  if (argv.includes("--dry-run")) {
    out("Total Upload: 1234.56 KiB / gzip: 600.00 KiB\n--dry-run: exiting now.");
    process.exit(0);
  }
  needAccount();
  out(" ⛅️ wrangler 4.86.0\n───────────────────");
  if (state.failDeploy) {
    err("✘ [ERROR] A request to the Cloudflare API failed: upload refused");
    process.exit(1);
  }
  if (!state.worker) {
    // provisioning of the id-less KV binding (autoCreate): a new namespace "<name>-resources"
    const title = `${name}-resources`;
    if (state.kv.some((n) => n.title === title)) {
      err("✘ [ERROR] A request to the Cloudflare API (/accounts/x/storage/kv/namespaces) failed.\n  a namespace with this account ID and title already exists [code: 10014]");
      process.exit(1);
    }
    out("Provisioning RESOURCES (KV Namespace)...");
    out(`🌀 Creating new KV Namespace "${title}"...`);
    state.kv.push({ id: "f".repeat(32), title });
    out("✨ RESOURCES provisioned 🎉");
  }
  state.worker ??= { secrets: {} };
  state.deploys = (state.deploys ?? 0) + 1;
  if (call.secretsFile?.content) Object.assign(state.worker.secrets, JSON.parse(call.secretsFile.content));
  save();
  out("Your Worker has access to the following bindings:");
  out("Binding                          Resource");
  for (const s of Object.keys(state.worker.secrets)) out(`env.${s} ("(hidden)")          Environment Variable`);
  out(`Uploaded ${name} (3.21 sec)`);
  out(`Deployed ${name} triggers (0.50 sec)`);
  out(`  ${state.url}`);
  out("Current Version ID: 00000000-1111-2222-3333-444444444444");
  if (process.env.WRANGLER_OUTPUT_FILE_PATH && !state.noOutputFile) {
    appendFileSync(
      process.env.WRANGLER_OUTPUT_FILE_PATH,
      JSON.stringify({ version: 1, type: "wrangler-session", wrangler_version: "4.86.0" }) +
        "\n" +
        JSON.stringify({ type: "deploy", version: 1, worker_name: name, version_id: "v", targets: [state.url] }) +
        "\n",
    );
  }
} else {
  err(`fake wrangler: no answer for ${argv.join(" ")}`);
  process.exit(2);
}
