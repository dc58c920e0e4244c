// Self-tests of the docs-examples runner (tests/docs/examples.mjs): small synthetic pages in a
// temporary directory, run against the built Worker like the real pages, each of which must fail
// with the message that says what is wrong (or, for the correct page, pass).
//
//   node --test tests/docs/runner.test.mjs      (after `make build`)
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parsePage, runPage, summarize } from "./examples.mjs";

const TEST = { timeout: 60_000 };
const fence = "```";
let dir;
before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "docs-runner-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a page (lines joined) and runs it; the page is named `name`.md in the tmp dir. */
async function run(name, lines) {
  const file = path.join(dir, `${name}.md`);
  writeFileSync(file, lines.join("\n") + "\n");
  return runPage(file, { root: dir });
}

describe("docs runner: a correct page passes", () => {
  test("statuses, a token across blocks, -i, a pipe, vars, a not-run block", TEST, async () => {
    const r = await run("good", [
      "# Good",
      "<!-- docs-test: vars ISSUER=https://auth.example.com -->",
      "",
      `${fence}sh`,
      "B=http://127.0.0.1:8787",
      "curl -s $B/.well-known/openid-configuration | jq -e '.issuer == \"https://auth.example.com\"'  # => 200",
      "curl -s $B/Patient                                   # => 401 no credentials",
      "curl -s -u root:$ADMIN_SECRET -X PUT $B/Client/api-client \\",
      "  -H 'content-type: application/json' \\",
      "  -d '{\"secret\":\"verysecret\",\"grant_types\":[\"client_credentials\"]}'",
      "# => 201",
      fence,
      "",
      "Text between blocks.",
      "",
      `${fence}sh`,
      "TOKEN=$(curl -s -u api-client:verysecret $B/auth/token -d grant_type=client_credentials | jq -r .access_token)  # => 200",
      "test \"$TOKEN\" != null",
      "curl -i -H \"Authorization: Bearer $TOKEN\" $B/Patient   # => 403 no policy yet",
      fence,
      "",
      "<!-- not run: needs a browser -->",
      `${fence}sh`,
      "curl $B/never   # => 999",
      fence,
    ]);
    assert.deepEqual(r.failures, []);
    assert.equal(r.blocksRun, 2);
    assert.equal(r.calls, 5);
    assert.equal(r.checked, 5);
    assert.deepEqual(r.notRun, [{ line: 23, reason: "needs a browser" }]);
    assert.match(summarize([r]), /1 pages .* 2 blocks run, 5 calls checked .* 1 blocks not run, 0 pages failing/);
    assert.match(summarize([r]), /not run: good\.md:23: needs a browser/);
  });
});

describe("docs runner: each kind of mistake fails with page:line and what is wrong", () => {
  test("a wrong expected status: expected vs got and the response body", TEST, async () => {
    const r = await run("wrong", [
      `${fence}sh`,
      "curl -s http://localhost:8787/.well-known/jwks.json  # => 200",
      "curl -s http://127.0.0.1:8787/Patient   # => 200 (it is 401)",
      fence,
    ]);
    assert.equal(r.failures.length, 1, r.failures.join("\n"));
    assert.match(r.failures[0], /^wrong\.md:3: expected 200, got 401\n {2}response: \{.*"error"/);
    assert.equal(r.checked, 2);
  });

  test("a curl call without `# => NNN`", TEST, async () => {
    const r = await run("missing", [
      `${fence}sh`,
      "B=http://127.0.0.1:8787",
      "curl -s $B/Patient   # => 401",
      "curl -s $B/Patient",
      "curl -s $B/.well-known/jwks.json",
      "# => 200",
      fence,
    ]);
    assert.equal(r.failures.length, 1, r.failures.join("\n"));
    assert.match(r.failures[0], /^missing\.md:4: curl call \(status 401\) has no "# => NNN"/);
  });

  test("a `# => NNN` without a curl call", TEST, async () => {
    const r = await run("extra", [
      `${fence}sh`,
      "B=http://127.0.0.1:8787",
      "echo hello   # => 200",
      "curl -s $B/Patient   # => 401",
      "true",
      "# => 204",
      fence,
    ]);
    assert.equal(r.failures.length, 2, r.failures.join("\n"));
    assert.match(r.failures[0], /^extra\.md:3: "echo hello {3}# => 200" has no curl call/);
    assert.match(r.failures[1], /^extra\.md:6: "# => 204" has no curl call/);
  });

  test("a failing command stops the page: its line, exit status and stderr", TEST, async () => {
    const r = await run("fails", [
      `${fence}sh`,
      "curl -s http://127.0.0.1:8787/Patient   # => 401",
      fence,
      "",
      `${fence}sh`,
      "ls /no/such/dir-for-docs-test",
      "curl -s http://127.0.0.1:8787/Patient   # => 401",
      fence,
    ]);
    assert.equal(r.failures.length, 1, r.failures.join("\n"));
    assert.match(r.failures[0], /^fails\.md:6: the page's shell stopped \(exit status 2\)\n {2}stderr:\n.*No such file or directory/s);
    assert.equal(r.checked, 1);
  });

  test("a failing pipeline (pipefail): jq -e on a 401 body", TEST, async () => {
    const r = await run("pipe", [
      `${fence}sh`,
      "curl -s http://127.0.0.1:8787/Patient | jq -e .access_token   # => 401",
      "echo not reached",
      fence,
    ]);
    assert.equal(r.failures.length, 1, r.failures.join("\n"));
    assert.match(r.failures[0], /^pipe\.md:2: the page's shell stopped \(exit status 1\)/);
  });

  test("a URL of another host, and `make` in a runnable block, stop the page with what to do", TEST, async () => {
    const other = await run("otherhost", [
      `${fence}sh`,
      "curl -s -X PUT -u root:$ADMIN_SECRET http://127.0.0.1:8787/Client/x -H 'content-type: application/json' \\",
      "  -d '{\"grant_types\":[\"authorization_code\"],\"auth\":{\"authorization_code\":{\"redirect_uri\":\"https://app.example/cb\"}}}'",
      "# => 201 a URL as an option's value is data, not fetched",
      "curl -s -e https://app.example/page http://127.0.0.1:8787/.well-known/jwks.json   # => 200 a Referer is a value too",
      "curl -s https://auth.example.com/auth/register   # => 201",
      fence,
    ]);
    assert.equal(other.failures.length, 1, other.failures.join("\n"));
    assert.match(other.failures[0], /^otherhost\.md:6: the page's shell stopped \(exit status 97\)\n.*curl https:\/\/auth\.example\.com\/auth\/register: the docs test reaches only http:\/\/127\.0\.0\.1:8787/s);
    assert.equal(other.checked, 2);

    const make = await run("make", [`${fence}sh`, "make dev", fence]);
    assert.equal(make.failures.length, 1, make.failures.join("\n"));
    assert.match(make.failures[0], /^make\.md:2: the page's shell stopped \(exit status 97\)\n.*'make' does not run in the docs test: mark its block <!-- not run: <reason> -->/s);
  });

  test("a call that gets no HTTP answer says why (an unset $B)", TEST, async () => {
    const r = await run("unset", [`${fence}sh`, "curl -s $B/Patient   # => 401", fence]);
    assert.equal(r.failures.length, 2, r.failures.join("\n"));
    assert.match(r.failures[0], /^unset\.md:2: expected 401, got 000 \(no HTTP answer: curl exit 3, bad URL \(an unset variable, such as \$B\?\)\)/);
    assert.match(r.failures[1], /^unset\.md:2: the page's shell stopped \(exit status 3\)/);
  });

  test("`<!-- not run -->` without a reason, and one not right before a fence", TEST, async () => {
    const r = await run("noreason", [
      "<!-- not run -->",
      `${fence}sh`,
      "make dev",
      fence,
      "<!-- not run: -->",
      `${fence}sh`,
      "make dev",
      fence,
      "<!-- not run: a blank line follows -->",
      "",
      `${fence}sh`,
      "curl -s http://127.0.0.1:8787/Patient   # => 401",
      fence,
    ]);
    assert.deepEqual(
      r.failures.map((f) => f.split(": `")[0]),
      ["noreason.md:1", "noreason.md:5", "noreason.md:9"],
      r.failures.join("\n"),
    );
    assert.match(r.failures[0], /needs a reason/);
    assert.match(r.failures[1], /needs a reason/);
    assert.match(r.failures[2], /not on the line right before a ```sh fence/);
    assert.equal(r.blocksRun, 1);
    assert.equal(r.checked, 1);
  });
});

describe("docs runner: parsing", () => {
  test("only `sh` blocks; indented and tilde fences; `# =>` of not-run blocks ignored", () => {
    const p = parsePage(
      [
        "```bash",
        "curl x   # => 200",
        "```",
        "1. a step",
        "   ```sh",
        "   curl -s $B/a   # => 201 created",
        "   ```",
        "~~~~sh",
        "```",
        "curl b # => 404",
        "~~~~",
        "<!-- not run: needs make dev -->",
        "```sh",
        "curl c # => 500",
        "```",
        "```sh",
        "curl d # => ok",
        "```",
      ].join("\n"),
    );
    assert.deepEqual(
      p.blocks.map((b) => [b.fenceLine, b.notRun, b.lines]),
      [
        [5, null, ["curl -s $B/a   # => 201 created"]],
        [8, null, ["```", "curl b # => 404"]],
        [13, "needs make dev", ["curl c # => 500"]],
        [16, null, ["curl d # => ok"]],
      ],
    );
    assert.deepEqual(
      p.expectations.map((e) => [e.line, e.status]),
      [
        [6, 201],
        [10, 404],
      ],
    );
    assert.deepEqual(p.errors, [{ line: 17, message: '"# =>" without a three-digit status: curl d # => ok' }]);
  });

  test("docs-test vars", () => {
    const p = parsePage("x\n<!-- docs-test: vars A=1 B='two words' C=\"x=y\" -->\n");
    assert.deepEqual(p.vars, { A: "1", B: "two words", C: "x=y" });
    assert.deepEqual(parsePage("<!-- docs-test: vars oops -->").errors, [
      { line: 1, message: 'docs-test vars: "oops" is not NAME=value' },
    ]);
  });

  test("annotations shown in code blocks or inline code are not annotations", () => {
    const p = parsePage(
      [
        "Write `<!-- docs-test: vars A=1 -->` on a line of its own, like this:",
        "```text",
        "<!-- docs-test: vars B=2 -->",
        "<!-- not run: an example of the annotation -->",
        "```",
        "```sh",
        "curl -s $B/x   # => 200",
        "```",
      ].join("\n"),
    );
    assert.deepEqual(p.vars, {});
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.blocks.map((b) => b.notRun), [null]);
  });
});
