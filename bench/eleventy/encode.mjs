// eleventy-img "tuned" reference encoder for bench/bench_imaging.py --eleventy.
//
//   node bench/eleventy/encode.mjs JOBS.json
//
// JOBS.json (written by bench_imaging.py): {"outDir": "...", "jobs": [{"name", "input", "width", "formats"}]}.
// Each job encodes one PNG at one width with @11ty/eleventy-img: AVIF with the tuned
// options (sharp effort 2, 4:2:0 chroma), WebP and JPEG with eleventy-img's defaults
// (sharp quality 80).  A job whose width equals the input width is encoded as is;
// a smaller width is resized by sharp (eleventy-img's normal path).  Writes
// <outDir>/<name>.<ext> and <outDir>/results.json: one record per output with its
// bytes and the wall time of the eleventy-img call (one image, one format at a time).
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";

import Image from "@11ty/eleventy-img";
import sharp from "sharp";

export const TUNED = {
  sharpAvifOptions: { effort: 2, chromaSubsampling: "4:2:0" },
};

const [jobsPath] = process.argv.slice(2);
if (!jobsPath) {
  console.error("usage: node encode.mjs JOBS.json");
  process.exit(2);
}
const { outDir, jobs } = JSON.parse(fs.readFileSync(jobsPath, "utf8"));
fs.mkdirSync(outDir, { recursive: true });

// One image and one libvips thread at a time, so the wall times are comparable with
// limner's single-threaded encodes.
sharp.concurrency(1);
Image.concurrency = 1;

const results = [];
for (const job of jobs) {
  for (const format of job.formats) {
    const started = performance.now();
    const stats = await Image(job.input, {
      widths: [job.width],
      formats: [format],
      outputDir: outDir,
      urlPath: "/",
      useCache: false,
      filenameFormat: (_id, _src, _width, fmt) => `${job.name}.${fmt === "jpeg" ? "jpg" : fmt}`,
      ...TUNED,
    });
    const ms = performance.now() - started;
    for (const stat of stats[format]) {
      results.push({ name: job.name, format, width: stat.width, height: stat.height, bytes: stat.size, path: stat.outputPath, wall_ms: ms });
    }
  }
}
const versions = { node: process.versions.node, sharp: sharp.versions.sharp, vips: sharp.versions.vips, heif: sharp.versions.heif, aom: sharp.versions.aom, webp: sharp.versions.webp, mozjpeg: sharp.versions.mozjpeg };
const imgPkg = JSON.parse(fs.readFileSync(new URL("./node_modules/@11ty/eleventy-img/package.json", import.meta.url), "utf8"));
versions["eleventy-img"] = imgPkg.version;
fs.writeFileSync(path.join(outDir, "results.json"), JSON.stringify({ versions, options: TUNED, results }, null, 1));
console.log(`eleventy-img ${imgPkg.version} (sharp ${versions.sharp}, libvips ${versions.vips}, libheif ${versions.heif}, aom ${versions.aom}): ${results.length} outputs in ${outDir}`);
