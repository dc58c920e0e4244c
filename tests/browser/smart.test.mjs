// SMART standalone launch in headless Chromium: a practitioner signs in to a SMART app asking
// for launch/patient, picks one of the patients the AccessPolicies let them see, approves the
// scopes, and the token response carries that patient (and the access token's claims too).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, decodeJwt, form, FORM } from "../e2e/harness.mjs";
import { launchBrowser, openPage, startCallbackServer, pkce, signIn, decide, explain } from "./helpers.mjs";

const FHIR = "https://fhir.example/r4";
let w, browser, callback;

before(async () => {
  w = await startWorker();
  callback = await startCallbackServer();
  browser = await launchBrowser();
  const put = async (p, b) => {
    const r = await w.admin("PUT", p, b);
    assert.ok([200, 201].includes(r.status), `${p}: ${r.status} ${await r.text()}`);
  };
  await put("/Client/growth-chart", {
    type: "smart-app", "fhir-base-url": FHIR, name: "Growth Chart", grant_types: ["authorization_code"],
    // The scopes it is registered for (a client without a list gets no clinical scope).
    scope: ["launch/patient", "openid", "fhirUser", "patient/*.rs"],
    auth: { authorization_code: { redirect_uri: callback.redirectUri } },
  });
  await put("/User/dr-smith", { password: "pass123", fhirUser: "Practitioner/pr-1", name: { givenName: "Jane", familyName: "Smith" } });
  await put("/AccessPolicy/dr-smith", {
    engine: "matcho", matcho: { "request-method": "get", uri: "#^/Patient/pt-[12]$" },
    link: [{ id: "dr-smith", resourceType: "User" }],
  });
});
after(async () => {
  await browser?.close();
  await callback?.dispose();
  await w?.dispose();
});

test("standalone launch: pick a patient in the browser, get it back as launch context", { timeout: 30_000 }, async () => {
  const { page, context, errors } = await openPage(browser);
  try {
    const { verifier, challenge } = pkce();
    const q = new URLSearchParams({
      response_type: "code", client_id: "growth-chart", redirect_uri: callback.redirectUri,
      scope: "launch/patient openid fhirUser patient/*.rs", state: "st-1", aud: FHIR,
      code_challenge: challenge, code_challenge_method: "S256",
    });
    await page.goto(`${w.url}/auth/authorize?${q}`);
    await signIn(page, "dr-smith", "pass123");
    await explain(page, "expected the patient picker", async () => {
      await page.waitForURL((u) => u.pathname === "/auth/ui/patient.html");
      await page.getByRole("radio", { name: "Anna Windsor" }).waitFor();
    });
    const offered = await page.getByRole("radio").evaluateAll((els) => els.map((e) => e.value));
    assert.deepEqual(offered, ["pt-1", "pt-2"], "only the patients the policies allow");
    await page.getByRole("radio", { name: "Anna Windsor" }).check();
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/auth/ui/consent.html"),
      page.getByRole("button", { name: "Continue" }).click(),
    ]);
    const query = await decide(page, callback, "allow");
    assert.equal(query.state, "st-1");
    const res = await w.fetch("/auth/token", {
      method: "POST", headers: FORM,
      body: form({ grant_type: "authorization_code", client_id: "growth-chart", code: query.code, redirect_uri: callback.redirectUri, code_verifier: verifier }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.patient, "pt-2");
    assert.equal(decodeJwt(body.access_token).payload.patient, "pt-2");
    assert.equal(decodeJwt(body.id_token).payload.fhirUser, `${FHIR}/Practitioner/pr-1`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
