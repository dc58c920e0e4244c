// A local stand-in for the part of the Cloudflare API that wrangler 4.86 uses in `make deploy`
// (whoami, secret list, kv namespace list, deploy with provisioning), so the real wrangler can be
// run offline against it: CLOUDFLARE_API_BASE_URL=<url>/client/v4 CLOUDFLARE_API_TOKEN=<anything>.
// Routes and answer shapes were read from node_modules/wrangler/wrangler-dist/cli.js; it keeps one
// account "acc1" with at most the one Worker, "edge-authorizer", and answers 404 to anything else
// (listed in `unknown`, so a new wrangler that calls more shows up as a failed test, not a hang).
import http from "node:http";

const ok = (result, extra = {}) => ({ success: true, errors: [], messages: [], result, ...extra });
const fail = (code, message) => ({ success: false, errors: [{ code, message }], messages: [], result: null });

/** The `metadata` part of a multipart Worker upload. */
function uploadMetadata(raw, contentType) {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  const sep = "--" + (boundary[1] ?? boundary[2]);
  for (const part of raw.toString("latin1").split(sep)) {
    const [head, ...rest] = part.split("\r\n\r\n");
    if (/name="metadata"/.test(head)) return JSON.parse(rest.join("\r\n\r\n").replace(/\r\n$/, ""));
  }
  throw new Error("no metadata part in the upload");
}

export async function startCloudflareApi({ subdomain = "deploy-test" } = {}) {
  const state = { worker: null, kv: [], secrets: {} };
  const requests = []; // "METHOD /path"
  const uploads = []; // metadata of each Worker upload (script PUT or version POST)
  const unknown = [];
  const W = "/accounts/acc1/workers/scripts/edge-authorizer";

  function recordUpload(meta) {
    uploads.push(meta);
    for (const b of meta.bindings) if (b.type === "secret_text") state.secrets[b.name] = b.text;
    const previous = state.worker?.bindings ?? [];
    const bindings = meta.bindings
      .filter((b) => b.type !== "secret_text")
      .map((b) => (b.type === "inherit" ? previous.find((o) => o.name === b.name) : b))
      .filter(Boolean);
    for (const name of Object.keys(state.secrets)) bindings.push({ name, type: "secret_text" });
    state.worker = { bindings, migration_tag: meta.migrations?.new_tag ?? state.worker?.migration_tag };
  }

  const server = http.createServer(async (req, res) => {
    let raw = Buffer.alloc(0);
    for await (const c of req) raw = Buffer.concat([raw, c]);
    const u = new URL(req.url, "http://x");
    const p = u.pathname.replace(/^\/client\/v4/, "");
    const m = req.method;
    const page = Number(u.searchParams.get("page") ?? 1);
    requests.push(`${m} ${p}`);
    let status = 200;
    let body;
    const noWorker = () => {
      status = 404;
      body = fail(10007, "This Worker does not exist on your account.");
    };
    if (m === "GET" && p === "/user/tokens/verify") body = ok({ id: "t", status: "active" });
    else if (m === "GET" && p === "/user") body = ok({ email: "me@example.com" });
    else if (m === "GET" && p === "/accounts") body = ok(page > 1 ? [] : [{ id: "acc1", name: "Test account" }]);
    else if (m === "GET" && p === "/accounts/acc1/storage/kv/namespaces") body = ok(page > 1 ? [] : state.kv);
    else if (m === "POST" && p === "/accounts/acc1/storage/kv/namespaces") {
      const { title } = JSON.parse(raw);
      if (state.kv.some((n) => n.title === title)) {
        status = 400;
        body = fail(10014, "a namespace with this account ID and title already exists");
      } else {
        const ns = { id: (state.kv.length + 1).toString(16).padStart(32, "c"), title };
        state.kv.push(ns);
        body = ok(ns);
      }
    } else if (m === "GET" && p === W + "/secrets") {
      if (!state.worker) noWorker();
      else body = ok(Object.keys(state.secrets).map((name) => ({ name, type: "secret_text" })));
    } else if (m === "GET" && p === W + "/settings") {
      if (!state.worker) noWorker();
      else body = ok({ bindings: state.worker.bindings });
    } else if (m === "GET" && p === "/accounts/acc1/workers/services/edge-authorizer") {
      if (!state.worker) {
        status = 404;
        body = fail(10090, "workers.api.error.service_not_found");
      } else body = ok({ id: "edge-authorizer", default_environment: { environment: "production", script: { tag: "t", migration_tag: state.worker.migration_tag } } });
    } else if (m === "GET" && p === W + "/deployments") body = ok({ deployments: [] });
    else if (m === "GET" && p === "/accounts/acc1/workers/scripts") body = ok(state.worker ? [{ id: "edge-authorizer", migration_tag: state.worker.migration_tag }] : []);
    else if (m === "POST" && p === W + "/assets-upload-session") body = ok({ jwt: "completion-token", buckets: [] });
    else if (m === "PUT" && p === W) {
      recordUpload(uploadMetadata(raw, req.headers["content-type"]));
      body = ok({ id: "edge-authorizer", etag: "e1", startup_time_ms: 5, has_preview: false });
    } else if (m === "POST" && p === W + "/versions") {
      recordUpload(uploadMetadata(raw, req.headers["content-type"]));
      body = ok({ id: `v${uploads.length}`, startup_time_ms: 5, metadata: { has_preview: false }, resources: { script: { etag: "e" } } });
    } else if (m === "POST" && p === W + "/deployments") body = ok({ id: "d" });
    else if (m === "PATCH" && p === W + "/script-settings") body = ok({ logpush: false });
    else if (m === "GET" && p === "/accounts/acc1/workers/subdomain") body = ok({ subdomain });
    else if (m === "GET" && p === W + "/subdomain") body = ok({ enabled: !!state.subdomainOn, previews_enabled: !!state.subdomainOn });
    else if (m === "POST" && p === W + "/subdomain") {
      state.subdomainOn = true;
      body = ok({ enabled: true, previews_enabled: true });
    } else {
      unknown.push(`${m} ${p}`);
      status = 404;
      body = fail(7003, `stand-in API: no route ${m} ${p}`);
    }
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    baseUrl: `http://127.0.0.1:${server.address().port}/client/v4`,
    workerUrl: `https://edge-authorizer.${subdomain}.workers.dev`,
    state,
    requests,
    uploads,
    unknown,
    close: () => new Promise((r) => server.close(r)),
  };
}
