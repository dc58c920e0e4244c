// The Worker's entry module (build/index.js), in front of worker-build's bundle (build/app.mjs):
// docs/perf.md "Request entry and exit". worker-build's default export is a WorkerEntrypoint
// subclass behind a Proxy, constructed per request, whose traps wrap `fetch` in a new Proxy
// per call; a plain handler object calls the same `fetch` without them. Panic recovery does not
// need them: wasm-bindgen's abort handler (worker::init registers schedule_reinit) makes a fresh
// wasm instance after a trap. The Durable Object classes are worker-build's, unchanged.
import Entrypoint from "./app.mjs";
export * from "./app.mjs";

const fetch = Entrypoint.prototype.fetch;

export default {
  fetch(request, env, ctx) {
    return fetch.call({ env, ctx }, request);
  },
};
