// The protected API of the benchmark: a tiny node HTTP server that answers every request with
// the same small JSON. Run as its own process by run.mjs; prints `listening <port>` when ready.
import http from "node:http";

const BODY = JSON.stringify({ resourceType: "Patient", id: "pt-1", name: [{ family: "Bench" }] });
const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(BODY) });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => process.exit(0));
