// The shell examples of README.md and docs/*.md, run against the built Worker in workerd: one
// test per page, so a failure names the page (and, in its message, the line, the expected and
// the actual status, and the response). The convention is in tests/docs/examples.mjs.
//
//   node --test tests/docs/examples.test.mjs      (after `make build`)
import { test, after } from "node:test";
import path from "node:path";
import { findPages, runPage, summarize, ROOT } from "./examples.mjs";

const results = [];

for (const file of findPages()) {
  test(path.relative(ROOT, file), { timeout: 120_000 }, async (t) => {
    const r = await runPage(file);
    results.push(r);
    t.diagnostic(`${r.blocksRun} blocks run, ${r.checked} of ${r.calls} calls checked, ${r.notRun.length} not run`);
    if (r.failures.length) {
      throw new Error(`${r.failures.length} problem(s) in ${r.page}:\n` + r.failures.join("\n"));
    }
  });
}

after(() => {
  console.log(summarize(results));
});
