// The bounded load run of `make test`: the mixed workload of tests/load/load.mjs (token
// issuance, refresh, protected calls allowed and denied, admin writes/reads/deletes, revocation
// and use of revoked tokens) at 64 connections against the built Worker in workerd, then the
// checks afterwards. `make soak` runs the full one (tests/load/soak.mjs).
//
// LOAD_TEST_REQUESTS (default 1500) and LOAD_TEST_CONCURRENCY (default 64) scale it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runLoad, formatReport } from "../load/load.mjs";

const requests = Number(process.env.LOAD_TEST_REQUESTS ?? 1500);
const concurrency = Number(process.env.LOAD_TEST_CONCURRENCY ?? 64);

test(`${requests} mixed requests at ${concurrency} connections: no unexpected answer, writes readable, revocations hold`, async (t) => {
  const report = await runLoad({ requests, concurrency, seed: 42 });
  for (const line of formatReport(report).split("\n")) t.diagnostic(line);
  assert.ok(report.requests >= requests, `only ${report.requests} requests were sent`);
  assert.equal(report.unexpected, 0, formatReport(report));
  assert.equal(report.verify.admin.failed, 0, formatReport(report));
  assert.equal(report.verify.revoked.failed, 0, formatReport(report));
  assert.equal(report.verify.origin.violations, 0, formatReport(report));
  // The mix really ran: every flow, and the outcomes that make the checks meaningful.
  for (const flow of ["cc", "password", "pool", "revokeAt", "revokeRt", "revoked", "client", "user", "policy"]) {
    assert.ok(report.flows[flow] > 0, `flow ${flow} never ran`);
  }
  assert.ok(report.byKind["api.denied"]?.statuses[403] > 0, "no request was denied");
  assert.ok(report.byKind["api.revoked"]?.statuses[401] > 0, "no revoked token was presented");
  assert.ok(report.byKind["admin.get.deleted"]?.statuses[404] > 0, "no deleted resource was read");
  assert.ok(report.verify.admin.checked > 0 && report.verify.revoked.checked > 0, "nothing was verified");
  assert.ok(report.ok);
});
