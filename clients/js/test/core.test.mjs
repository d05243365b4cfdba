// Unit tests of the core entry (node --test, on the built dist/).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  asManifest,
  defaultMode,
  entriesInOrder,
  getImageProps,
  getImageUrl,
  getPictureSources,
  getSrcSet,
  joinUrl,
  nearestVariant,
} from "../dist/index.js";

const raw = JSON.parse(readFileSync(new URL("./fixtures/manifest.json", import.meta.url), "utf8"));
const local = asManifest(raw); // base: null, cdn_base: null
const hosted = asManifest({ ...raw, base: "https://img.example.org/media/", cdn_base: "https://cdn.example.org/" });
const publicOnly = asManifest({ ...raw, base: "https://img.example.org/media/", cdn_base: null });
const ID = "abraham-accords";
const entry = raw.entries[ID];

test("getImageUrl: placeholder in development, CDN (else public) URL in production", () => {
  assert.equal(getImageUrl(hosted, ID, { mode: "development" }), "/images/events/abraham-accords.webp");
  assert.equal(getImageUrl(hosted, ID, { mode: "production" }), "https://cdn.example.org/" + entry.image_key);
  assert.equal(getImageUrl(publicOnly, ID, { mode: "production" }), "https://img.example.org/media/" + entry.image_key);
  assert.equal(getImageUrl(hosted, ID, { mode: "production", base: "http://127.0.0.1:8765" }),
    "http://127.0.0.1:8765/" + entry.image_key);
  // a local store has no URL: production falls back to the committed placeholder
  assert.equal(getImageUrl(local, ID, { mode: "production" }), entry.placeholder);
});

test("unknown ids give undefined, never a throw", () => {
  for (const id of ["nope", "__proto__", "constructor", "toString", ""]) {
    assert.equal(getImageUrl(hosted, id, { mode: "production" }), undefined, id);
    assert.equal(getImageProps(hosted, id), undefined, id);
    assert.deepEqual(getPictureSources(hosted, id, { mode: "production" }), [], id);
    assert.equal(getSrcSet(hosted, id, "avif", { mode: "production" }), undefined, id);
  }
  assert.equal(getImageUrl(undefined, ID), undefined);
});

test("defaultMode reads NODE_ENV and never throws", () => {
  const saved = process.env.NODE_ENV;
  try {
    process.env.NODE_ENV = "production";
    assert.equal(defaultMode(), "production");
    assert.equal(getImageUrl(hosted, ID), "https://cdn.example.org/" + entry.image_key);
    process.env.NODE_ENV = "development";
    assert.equal(defaultMode(), "development");
    assert.equal(getImageUrl(hosted, ID), entry.placeholder);
    delete process.env.NODE_ENV;
    assert.equal(defaultMode(), "production");
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  }
});

test("getImageUrl in development: the placeholder, unless a base is given (then the real variant)", () => {
  // the URL `limner media serve` prints: in development it loads the real variants, as getImageProps does
  assert.equal(getImageUrl(local, ID, { mode: "development", base: "http://127.0.0.1:8799/" }),
    "http://127.0.0.1:8799/" + entry.image_key);
  assert.equal(getImageUrl(hosted, ID, { mode: "development", base: "http://127.0.0.1:8799" }),
    "http://127.0.0.1:8799/" + entry.image_key); // options.base overrides cdn_base in either mode
  assert.equal(getImageUrl(hosted, ID, { mode: "development" }), entry.placeholder);
  assert.equal(getImageUrl(local, ID, { mode: "development" }), entry.placeholder);
  assert.equal(getImageUrl(local, ID, { mode: "development", base: "" }), entry.placeholder); // an empty base is no base
});

test("defaultMode honours a bundler's build-time process.env.NODE_ENV, and never throws without process", async () => {
  // webpack, Next.js and esbuild replace the literal expression `process.env.NODE_ENV` in dependencies too;
  // Next.js's client has no globalThis.process, so that replacement is all the mode a browser bundle gets
  const source = readFileSync(new URL("../dist/index.js", import.meta.url), "utf8");
  const bundled = async (replacement) => {
    const code = source.replaceAll("process.env.NODE_ENV", replacement);
    return import("data:text/javascript;base64," + Buffer.from(code).toString("base64"));
  };
  const saved = process.env.NODE_ENV;
  try {
    process.env.NODE_ENV = "production"; // the real environment says otherwise: the replaced literal wins
    const dev = await bundled(JSON.stringify("development"));
    assert.equal(dev.defaultMode(), "development");
    assert.equal(dev.getImageUrl(hosted, ID), entry.placeholder);
    process.env.NODE_ENV = "development";
    assert.equal((await bundled(JSON.stringify("production"))).defaultMode(), "production");
    // a browser without a bundler: `process` is not defined (a ReferenceError), and the default is production
    const bare = await bundled("notDefinedInABrowser.env.NODE_ENV");
    assert.equal(bare.defaultMode(), "production");
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  }
});

test("getImageProps: everything an <img> needs", () => {
  const p = getImageProps(hosted, ID, { mode: "production", sizes: "50vw" });
  const jpeg = Object.entries(entry.variants.jpeg);
  assert.equal(p.src, "https://cdn.example.org/" + jpeg[jpeg.length - 1][1]);
  assert.equal(p.srcSet, jpeg.map(([w, k]) => `https://cdn.example.org/${k} ${w}w`).join(", "));
  assert.equal(p.sizes, "50vw");
  assert.equal(p.width, entry.width);
  assert.equal(p.height, entry.height);
  assert.equal(p.alt, entry.alt);
  assert.equal(p.loading, "lazy");
  assert.equal(p.decoding, "async");
  assert.equal(p.fetchPriority, "auto");
  assert.equal(p.style.backgroundColor, entry.color);
  assert.equal(p.style.backgroundImage, `url("${entry.placeholder}")`);
  const eager = getImageProps(hosted, ID, { mode: "production", priority: true, placeholder: "color" });
  assert.equal(eager.loading, "eager");
  assert.equal(eager.fetchPriority, "high");
  assert.equal(eager.sizes, hosted.sizes); // the manifest's recommended sizes
  assert.equal(eager.style.backgroundImage, undefined);
});

test("getImageProps in development: the placeholder, unless a base is given", () => {
  const dev = getImageProps(hosted, ID, { mode: "development" });
  assert.equal(dev.src, entry.placeholder);
  assert.equal(dev.srcSet, undefined);
  assert.equal(dev.sizes, undefined);
  const served = getImageProps(local, ID, { mode: "development", base: "http://127.0.0.1:8765/" });
  assert.match(served.src, /^http:\/\/127\.0\.0\.1:8765\/variants\/[0-9a-f]{16}-1024\.jpg$/);
  assert.equal(served.srcSet.split(", ").length, Object.keys(entry.variants.jpeg).length);
});

test("widths map to the nearest stored variant at least as wide", () => {
  const p = getImageProps(hosted, ID, { mode: "production", widths: [100, 300, 480, 5000] });
  assert.deepEqual(p.srcSet.split(", ").map((s) => s.split(" ")[1]), ["240w", "480w", "1024w"]);
  assert.deepEqual(nearestVariant(entry, "avif", 500), [768, entry.variants.avif["768"]]);
  assert.deepEqual(nearestVariant(entry, "avif", 99999), [1024, entry.variants.avif["1024"]]);
  assert.equal(nearestVariant(entry, "png", 10), undefined);
});

test("getPictureSources: AVIF, WebP, JPEG, best first; only stored formats", () => {
  const sources = getPictureSources(hosted, ID, { mode: "production" });
  assert.deepEqual(sources.map((s) => s.type), ["image/avif", "image/webp", "image/jpeg"]);
  for (const s of sources) {
    assert.equal(s.sizes, hosted.sizes);
    for (const item of s.srcSet.split(", ")) assert.match(item, /^https:\/\/cdn\.example\.org\/variants\/\S+ \d+w$/);
  }
  assert.deepEqual(getPictureSources(hosted, "webp-only", { mode: "production" }).map((s) => s.type), ["image/webp"]);
  assert.match(getImageProps(hosted, "webp-only", { mode: "production" }).src, /\.webp$/); // fallback format
  assert.deepEqual(getPictureSources(local, ID, { mode: "production" }), []);
});

test("entriesInOrder follows the catalogue, and the catalogue's fields are there", () => {
  assert.deepEqual(entriesInOrder(local).map((e) => e.id), ["abraham-journey-to-canaan", "webp-only", "abraham-accords"]);
  assert.equal(local.entries["abraham-journey-to-canaan"].year, -1800);
});

test("asManifest refuses other versions with a clear message", () => {
  assert.throws(() => asManifest({ ...raw, version: 1 }), /version 1, this package reads version 2/);
  assert.throws(() => asManifest(null), /not a Limner manifest/);
});

test("joinUrl puts exactly one slash between base and key", () => {
  assert.equal(joinUrl("https://a/b/", "variants/x.jpg"), "https://a/b/variants/x.jpg");
  assert.equal(joinUrl("https://a/b", "/variants/x.jpg"), "https://a/b/variants/x.jpg");
});
