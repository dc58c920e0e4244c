// Runs the shell examples of the docs against the built Worker (README.md and docs/*.md), so a
// changed endpoint breaks `make test` instead of the reader. The convention (COMMON18 / README
// "Docs examples"):
//
// - Every fenced block whose info string is exactly `sh` runs, unless the line right before its
//   fence is `<!-- not run: <reason> -->` (the reason is required).
// - The runnable blocks of one page run in order in ONE bash process (`set -eo pipefail`), so a
//   variable set in one block is visible in the next. Each page gets its own fresh Worker (the
//   built one, in workerd, through tests/e2e/harness.mjs: empty KV and state, the built-in demo
//   origin), `ADMIN_SECRET` exported, a fresh temporary directory as the working directory.
// - `<!-- docs-test: vars NAME=value NAME2='a value' -->` anywhere in a page sets Worker vars.
// - `curl` is a shell function that rewrites `http://127.0.0.1:8787` and `http://localhost:8787`
//   in every argument (also inside -d data) to the test Worker's URL and records the final HTTP
//   status of each call, without changing what the call prints on stdout.
// - The page states each call's expected status as `# => NNN` (optionally followed by words) on
//   the last line of the command that makes the call, or alone on the line after it. Calls and
//   expectations are paired in order; a call without one, or one without a call, fails.
//
//   node tests/docs/examples.mjs [page.md ...]   (default: README.md docs/*.md; after make build;
//                                                 DOCS_OUTPUT=1 also prints what the page printed)
//   node --test tests/docs/                      (the same, one test per page, plus self-tests)
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** The origin pages write; the runner's curl points it at the test Worker. */
export const DOC_ORIGINS = ["http://127.0.0.1:8787", "http://localhost:8787"];
const PAGE_TIMEOUT_MS = 90_000;
const BODY_EXCERPT = 300;

/** README.md and docs/*.md of the repository, in that order. */
export function findPages(root = ROOT) {
  const pages = [];
  if (existsSync(path.join(root, "README.md"))) pages.push(path.join(root, "README.md"));
  const docs = path.join(root, "docs");
  if (existsSync(docs)) {
    for (const f of readdirSync(docs).filter((f) => f.endsWith(".md")).sort()) pages.push(path.join(docs, f));
  }
  return pages;
}

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const NOT_RUN = /^\s*<!--\s*not run\b(.*?)-->\s*$/;
const VARS = /^\s*<!--\s*docs-test:\s*vars\b(.*?)-->\s*$/;
const EXPECT_MARK = /(?:^|\s)#\s*=>/;
const EXPECT = /(?:^|\s)#\s*=>\s*(\d{3})(?!\d)/;

/**
 * Parses a Markdown page: its `sh` blocks (runnable or not, with the reason), its expectations
 * (`# => NNN` in runnable blocks), its Worker vars, and the annotation errors it has.
 * Line numbers are 1-based lines of the page.
 */
export function parsePage(text) {
  const lines = text.split(/\r?\n/);
  const blocks = [];
  const errors = [];
  const vars = {};
  const usedNotRun = new Set();

  const fenced = new Set(); // lines inside fenced blocks (fences included): never annotations
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info] = open;
    // The closing fence: the same character, at least as long, nothing but spaces after it.
    let end = i + 1;
    const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    while (end < lines.length && !close.test(lines[end])) end++;
    for (let k = i; k <= end; k++) fenced.add(k);
    if (info.trim() === "sh") {
      const prev = i > 0 ? NOT_RUN.exec(lines[i - 1]) : null;
      let notRun = null;
      if (prev) {
        usedNotRun.add(i - 1);
        notRun = prev[1].replace(/^\s*:/, "").trim();
        if (!prev[1].trim().startsWith(":") || notRun === "") {
          errors.push({ line: i, message: "`<!-- not run -->` needs a reason: `<!-- not run: <reason> -->`" });
          notRun = notRun || "(no reason given)";
        }
      }
      const strip = (l) => l.replace(new RegExp(`^ {0,${indent.length}}`), "");
      blocks.push({ fenceLine: i + 1, firstLine: i + 2, lines: lines.slice(i + 1, end).map(strip), notRun });
    }
    i = end;
  }

  lines.forEach((l, i) => {
    if (fenced.has(i)) return;
    if (NOT_RUN.test(l) && !usedNotRun.has(i)) {
      errors.push({ line: i + 1, message: "`<!-- not run: ... -->` is not on the line right before a ```sh fence" });
    }
    const v = VARS.exec(l);
    if (!v) return;
    const re = /([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|'([^']*)'|(\S+))|(\S+)/g;
    for (const m of v[1].trim().matchAll(re)) {
      if (m[6] !== undefined) errors.push({ line: i + 1, message: `docs-test vars: "${m[6]}" is not NAME=value` });
      else vars[m[1]] = m[3] ?? m[4] ?? m[5];
    }
  });
  errors.sort((a, b) => a.line - b.line);

  const expectations = [];
  for (const b of blocks.filter((b) => b.notRun === null)) {
    b.lines.forEach((l, k) => {
      if (!EXPECT_MARK.test(l)) return;
      const m = EXPECT.exec(l);
      if (m) expectations.push({ line: b.firstLine + k, status: Number(m[1]), text: l.trim() });
      else errors.push({ line: b.firstLine + k, message: `"# =>" without a three-digit status: ${l.trim()}` });
    });
  }
  return { blocks, expectations, vars, errors };
}

/**
 * Which page lines belong to one shell command: for each line of the runnable blocks,
 * [first, last] of the command it is part of (backslash continuations, open quotes and
 * parentheses, trailing `|`, `&&`, `||`).
 */
export function commandSpans(blocks) {
  const spans = new Map();
  for (const b of blocks) {
    let start = null;
    let quote = null; // "'" | '"' | null
    let depth = 0;
    b.lines.forEach((l, k) => {
      const line = b.firstLine + k;
      if (start === null) start = line;
      let comment = false;
      for (let c = 0; c < l.length && !comment; c++) {
        const ch = l[c];
        if (quote === "'") {
          if (ch === "'") quote = null;
        } else if (ch === "\\") {
          c++;
        } else if (quote === '"') {
          if (ch === '"') quote = null;
        } else if (ch === "'" || ch === '"') {
          quote = ch;
        } else if (ch === "(") {
          depth++;
        } else if (ch === ")") {
          depth = Math.max(0, depth - 1);
        } else if (ch === "#" && (c === 0 || /\s/.test(l[c - 1]))) {
          comment = true;
        }
      }
      const code = l.replace(/(^|\s)#.*$/, "").trimEnd();
      const continues = quote !== null || depth > 0 || /\\$/.test(l) || /(\||&&|\|\|)$/.test(code);
      if (!continues) {
        for (let x = start; x <= line; x++) spans.set(x, [start, line]);
        start = null;
      }
    });
    if (start !== null) {
      const last = b.firstLine + b.lines.length - 1;
      for (let x = start; x <= last; x++) spans.set(x, [start, last]);
    }
  }
  return spans;
}

/** Commands the docs test never runs (see the prelude). */
const GUARDED = ["make", "git", "npx", "npm", "wrangler", "cargo", "xdg-open", "open"];
/** curl options whose next argument is a value (so an http(s) URL there is not fetched). */
const VALUE_OPTIONS = [
  "-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--json", "-H", "--header",
  "-e", "--referer", "-F", "--form", "--form-string", "-x", "--proxy", "-u", "--user", "-o",
  "--output", "-A", "--user-agent", "-b", "--cookie", "-c", "--cookie-jar", "-D", "--dump-header",
  "-X", "--request",
];
/** What curl's exit status means, for the ones a page is likely to hit. */
const CURL_EXIT = {
  3: "bad URL (an unset variable, such as $B?)",
  6: "could not resolve the host",
  7: "could not connect",
  22: "an HTTP error with --fail",
  28: "timed out",
  52: "empty reply",
  56: "connection reset",
};

/** The bash functions every page runs with (sourced before its blocks). */
function prelude() {
  const rewrites = DOC_ORIGINS.map((o) => `    a=\${a//${o.replaceAll("/", "\\/")}/$DOCS_BASE}`).join("\n");
  return `# docs-test prelude: curl records each call's status and line; failures say where.
trap 'echo "@@DOCS-ERR@@ $? $LINENO" >&2' ERR
# Commands a page must not run for real here (they build, deploy, clone, start servers or open a
# browser): the block that has them needs \`<!-- not run: <reason> -->\`.
for c in ${GUARDED.join(" ")}; do
  eval "$c() { echo \\"docs-test: '$c' does not run in the docs test: mark its block <!-- not run: <reason> -->\\" >&2; return 97; }"
done
curl() {
  local line=\${BASH_LINENO[0]} a w="" want_w=0 rc=0 f prev=""
  local args=()
  for a in "$@"; do
    if ((want_w)); then w=$a; want_w=0; continue; fi
    case $a in
      -w | --write-out) want_w=1; continue ;;
      -w?*) w=\${a#-w}; continue ;;
    esac
${rewrites}
    # A URL to fetch (not an option's value) must be the Worker's: the test reaches nothing else.
    if [[ $a =~ ^https?:// && ! $prev =~ ^(${VALUE_OPTIONS.join("|")})$ && $a != "$DOCS_BASE" &&
      $a != "$DOCS_BASE"/* && $a != "$DOCS_BASE"[?#]* ]]; then
      echo "docs-test: curl $a: the docs test reaches only http://127.0.0.1:8787 (\\$B); mark the block <!-- not run: <reason> --> for other hosts" >&2
      return 97
    fi
    prev=$a
    args+=("$a")
  done
  f=$(mktemp "$DOCS_TMP/call.XXXXXX")
  command curl -q --max-time 30 --no-progress-meter "\${args[@]}" --write-out "$w%{stderr}\\n@@DOCS-CALL@@ %{http_code}\\n" \\
    >"$f.out" 2>"$f.err" || rc=$?
  cat "$f.out"
  grep -v '^@@DOCS-CALL@@ ' "$f.err" | sed '\${/^$/d}' >&2 || true
  local code
  code=$(sed -n 's/^@@DOCS-CALL@@ //p' "$f.err" | tail -n 1)
  printf '%s\\t%s\\t%s\\t%s\\n' "\${code:-000}" "$line" "$rc" "$f.out" >>"$DOCS_CALLS"
  return "$rc"
}
`;
}

/** The body of a recorded response (after the header blocks, when `-i` printed them). */
function bodyExcerpt(file) {
  let buf;
  try {
    buf = readFileSync(file);
  } catch {
    return "(no output)";
  }
  let s = buf.toString("latin1");
  while (/^HTTP\/[\d.]+ \d{3}/.test(s)) {
    const cut = s.search(/\r?\n\r?\n/);
    if (cut < 0) break;
    s = s.slice(cut).replace(/^\r?\n\r?\n/, "");
  }
  const body = Buffer.from(s, "latin1").subarray(0, BODY_EXCERPT).toString("utf8");
  return body === "" ? "(empty body)" : body + (s.length > BODY_EXCERPT ? " ..." : "");
}

function runBash(script, { env, cwd, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn("bash", [script], { env, cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, signal, stdout, stderr, timedOut });
    });
  });
}

/**
 * Runs one page. `startWorker` is tests/e2e/harness.mjs's (or a stand-in with the same shape).
 * Returns { page, blocksRun, notRun: [{line, reason}], calls, checked, failures: [string] }.
 */
export async function runPage(file, { startWorker, root = ROOT, timeoutMs = PAGE_TIMEOUT_MS } = {}) {
  const rel = path.relative(root, file);
  const page = rel && !rel.startsWith("..") ? rel : file;
  const text = readFileSync(file, "utf8");
  const { blocks, expectations, vars, errors } = parsePage(text);
  const failures = errors.map((e) => `${page}:${e.line}: ${e.message}`);
  const runnable = blocks.filter((b) => b.notRun === null);
  const notRun = blocks.filter((b) => b.notRun !== null).map((b) => ({ line: b.fenceLine, reason: b.notRun }));
  const result = { page, blocksRun: runnable.length, notRun, calls: 0, checked: 0, failures };
  if (runnable.length === 0) return result;

  if (!startWorker) ({ startWorker } = await import("../e2e/harness.mjs"));
  const tmp = mkdtempSync(path.join(os.tmpdir(), "docs-test-"));
  const adminSecret = "docs-" + Math.random().toString(36).slice(2, 14);
  let worker;
  try {
    worker = await startWorker({ vars, adminSecret });
    // The script: `set -eo pipefail`, a line that sources the prelude, then the blocks' lines;
    // lineMap[scriptLine] = page line (0: not from the page).
    const lineMap = [0, 0, 0];
    const scriptLines = [`source ${JSON.stringify(path.join(tmp, "prelude.sh"))}`];
    for (const b of runnable) {
      b.lines.forEach((l, k) => {
        scriptLines.push(l);
        lineMap.push(b.firstLine + k);
      });
    }
    writeFileSync(path.join(tmp, "prelude.sh"), prelude());
    writeFileSync(path.join(tmp, "page.sh"), "set -eo pipefail\n" + scriptLines.join("\n") + "\n");
    const work = path.join(tmp, "work");
    const callsFile = path.join(tmp, "calls.tsv");
    writeFileSync(callsFile, "");
    mkdirSync(work);
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? tmp,
      LANG: process.env.LANG ?? "C.UTF-8",
      TERM: "dumb",
      ADMIN_SECRET: worker.adminSecret ?? adminSecret,
      DOCS_BASE: worker.url,
      DOCS_TMP: tmp,
      DOCS_CALLS: callsFile,
    };
    const run = await runBash(path.join(tmp, "page.sh"), { env, cwd: work, timeoutMs });
    const docLine = (scriptLine) => lineMap[scriptLine] ?? 0;
    result.stdout = run.stdout;
    result.stderr = run.stderr;

    const calls = readFileSync(callsFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [status, line, rc, out] = l.split("\t");
        return { status: Number(status), line: docLine(Number(line)), rc: Number(rc), out };
      });
    result.calls = calls.length;

    // Pair calls and expectations in order; an expectation belongs to a call when it is on the
    // lines of the call's command, or alone on the line after it.
    const spans = commandSpans(runnable);
    const pageLines = text.split(/\r?\n/);
    const windowOf = (line) => {
      const [first, last] = spans.get(line) ?? [line, line];
      const after = pageLines[last] ?? ""; // page line last+1 (0-based index `last`)
      return [first, /^\s*#\s*=>/.test(after) ? last + 1 : last];
    };
    let j = 0;
    for (const call of calls) {
      const [lo, hi] = windowOf(call.line);
      while (j < expectations.length && expectations[j].line < lo) {
        failures.push(`${page}:${expectations[j].line}: "${expectations[j].text}" has no curl call (none ran on that command)`);
        j++;
      }
      const e = expectations[j];
      if (!e || e.line > hi) {
        failures.push(
          `${page}:${call.line}: curl call (status ${statusText(call)}) has no "# => NNN" on its last line or the line after it\n` +
            `  response: ${bodyExcerpt(call.out)}`,
        );
        continue;
      }
      j++;
      result.checked++;
      if (e.status !== call.status) {
        failures.push(`${page}:${e.line}: expected ${e.status}, got ${statusText(call)}\n  response: ${bodyExcerpt(call.out)}`);
      }
    }

    if (run.code !== 0 || run.timedOut) {
      const err = /@@DOCS-ERR@@ (\d+) (\d+)/.exec(run.stderr);
      const where = err ? `${page}:${docLine(Number(err[2]))}` : page;
      // Expectations after the command that stopped the page are not reported one by one (the
      // stop is the failure); those before it are.
      const stopAt = err ? windowOf(docLine(Number(err[2])))[0] : 0;
      for (; j < expectations.length && expectations[j].line < stopAt; j++) {
        failures.push(`${page}:${expectations[j].line}: "${expectations[j].text}" has no curl call (none ran on that command)`);
      }
      const stderr = run.stderr.replace(/^@@DOCS-ERR@@.*\n?/gm, "").trim();
      const why = run.timedOut ? `timed out after ${timeoutMs / 1000} s` : `exit status ${err ? err[1] : run.code}`;
      failures.push(
        `${where}: the page's shell stopped (${why})` +
          (stderr ? `\n  stderr:\n${indentText(tail(stderr, 2000))}` : "") +
          (run.stdout.trim() ? `\n  stdout (end):\n${indentText(tail(run.stdout.trim(), 600))}` : ""),
      );
    } else {
      for (; j < expectations.length; j++) {
        failures.push(`${page}:${expectations[j].line}: "${expectations[j].text}" has no curl call (none ran on that command)`);
      }
    }
  } finally {
    await worker?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
  return result;
}

/** A call's status for messages: "401", or "000 (no HTTP answer: curl exit 6, could not resolve the host)". */
function statusText(call) {
  if (call.rc === 0 && call.status !== 0) return String(call.status);
  const why = CURL_EXIT[call.rc] ? `, ${CURL_EXIT[call.rc]}` : "";
  return call.status === 0 ? `000 (no HTTP answer: curl exit ${call.rc}${why})` : `${call.status} (curl exit ${call.rc}${why})`;
}

function tail(s, n) {
  return s.length > n ? "..." + s.slice(-n) : s;
}
function indentText(s) {
  return s
    .split("\n")
    .map((l) => "    " + l)
    .join("\n");
}

/** A human summary of page results. */
export function summarize(results) {
  const runPages = results.filter((r) => r.blocksRun > 0).length;
  const out = [
    `docs examples: ${results.length} pages (${runPages} with runnable blocks), ` +
      `${results.reduce((n, r) => n + r.blocksRun, 0)} blocks run, ` +
      `${results.reduce((n, r) => n + r.checked, 0)} calls checked ` +
      `(of ${results.reduce((n, r) => n + r.calls, 0)} made), ` +
      `${results.reduce((n, r) => n + r.notRun.length, 0)} blocks not run, ` +
      `${results.filter((r) => r.failures.length).length} pages failing`,
  ];
  for (const r of results) {
    for (const n of r.notRun) out.push(`  not run: ${r.page}:${n.line}: ${n.reason}`);
  }
  return out.join("\n");
}

// CLI: node tests/docs/examples.mjs [pages...]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : findPages();
  const results = [];
  for (const f of files) {
    const t0 = Date.now();
    const r = await runPage(f);
    results.push(r);
    const state = r.failures.length ? "FAIL" : "ok";
    console.log(`${state} ${r.page}: ${r.blocksRun} blocks run, ${r.checked}/${r.calls} calls checked, ${r.notRun.length} not run (${Date.now() - t0} ms)`);
    for (const f of r.failures) console.log("  " + f.replaceAll("\n", "\n  "));
    if (process.env.DOCS_OUTPUT && r.stdout !== undefined) console.log(`--- output of ${r.page}:\n${r.stdout}---`);
  }
  console.log(summarize(results));
  process.exitCode = results.some((r) => r.failures.length) ? 1 : 0;
}
