// The original design, as the seed notes describe it: a Bull queue on Redis, one job per entry, a worker
// with `concurrency` slots calling Replicate through the official client (Prefer: wait) and writing each
// image to disk. Prints {"elapsed_s", "done", "failed", "started_at", "finished_at"} as JSON.
//   node run.mjs <entries> <concurrency> <out-dir>   (REPLICATE_API_TOKEN, REPLICATE_BASE_URL, REDIS_URL)
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Queue from "bull";
import Replicate from "replicate";

const t0 = performance.now();
const startedAt = Date.now() / 1000;
const [entries, concurrency, outDir] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
mkdirSync(outDir, { recursive: true });
const replicate = new Replicate({
  auth: process.env.REPLICATE_API_TOKEN,
  baseUrl: `${process.env.REPLICATE_BASE_URL}/v1`,
  useFileOutput: false,
});
const name = `limner-bench-${process.pid}`;
const queue = new Queue(name, process.env.REDIS_URL || "redis://127.0.0.1:6379");
await queue.empty();

let done = 0;
let failed = 0;
const finished = new Promise((resolve) => {
  const check = () => { if (done + failed === entries) resolve(); };
  queue.on("completed", () => { done += 1; check(); });
  queue.on("failed", () => { failed += 1; check(); });
});

queue.process(concurrency, async (job) => {
  const { id, seed } = job.data;
  const output = await replicate.run("black-forest-labs/flux-schnell", {
    input: { prompt: `Entry ${id}`, seed, aspect_ratio: "3:2", output_format: "png", num_outputs: 1 },
  });
  const url = Array.isArray(output) ? output[0] : output;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`download ${response.status}`);
  writeFileSync(join(outDir, `${id}.png`), Buffer.from(await response.arrayBuffer()));
});

await queue.addBulk(Array.from({ length: entries }, (_, i) => ({ data: { id: `e-${String(i).padStart(5, "0")}`, seed: i },
  opts: { attempts: 4, backoff: { type: "exponential", delay: 1000 }, removeOnComplete: true } })));
await finished;
const elapsed = (performance.now() - t0) / 1000;
await queue.obliterate({ force: true });
await queue.close();
console.log(JSON.stringify({ elapsed_s: elapsed, done, failed, started_at: startedAt, finished_at: Date.now() / 1000 }));
