// The connect storm with Node's ws package: N clients, K in flight, each connects,
// reads F frames, closes and waits for the close; prints one JSON line.
// node storm.mjs --url ws://127.0.0.1:8000/ --connections 1000 --concurrency 100 --frames 5
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    connections: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "100" },
    frames: { type: "string", default: "5" },
    timeout: { type: "string", default: "30" },
  },
});
const connections = Number(values.connections);
const concurrency = Number(values.concurrency);
const frames = Number(values.frames);
const timeoutMs = Number(values.timeout) * 1000;

const latencies = []; // ms, connect start -> last frame read
let errors = 0;
let firstError = "";
let firstFrames = null;
let remaining = connections;

function once() {
  return new Promise((resolve) => {
    const start = performance.now();
    const got = [];
    let done = false;
    const ws = new WebSocket(values.url, { perMessageDeflate: false });
    const fail = (reason) => {
      if (done) return;
      done = true;
      errors += 1;
      firstError ||= reason;
      ws.terminate();
      resolve();
    };
    const timer = setTimeout(() => fail(`timed out after ${values.timeout} s`), timeoutMs);
    ws.on("message", (data) => {
      got.push(data.toString());
      if (got.length === frames) {
        latencies.push(performance.now() - start);
        firstFrames ??= got;
        ws.close(1000);
      }
    });
    ws.on("error", (err) => fail(`${err.name}: ${err.message}`));
    ws.on("close", () => {
      clearTimeout(timer);
      if (got.length < frames) return fail(`closed after ${got.length} of ${frames} frames`);
      if (!done) {
        done = true;
        resolve();
      }
    });
  });
}

async function worker() {
  while (remaining > 0) {
    remaining -= 1;
    await once();
  }
}

const began = performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, connections) }, worker));
const wall = (performance.now() - began) / 1000;
process.stdout.write(
  JSON.stringify({ latencies_ms: latencies, errors, first_error: firstError, wall_s: wall, frames: firstFrames ?? [] }) + "\n",
);
