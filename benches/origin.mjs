// The protected API of the benchmark: a tiny node HTTP server that answers every request with
// the same small JSON (benches/lib.mjs startOrigin). Run as its own process by run.mjs; prints
// `listening <port>` when ready.
import { startOrigin } from "./lib.mjs";

const origin = await startOrigin();
console.log(`listening ${origin.port}`);
process.on("SIGTERM", () => process.exit(0));
