// The optional subpaths: the Next.js loader and the ThumbHash / BlurHash previews.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { createLoader } from "../dist/next.js";
import { thumbhashColor, thumbhashDataURL } from "../dist/thumbhash.js";
import { blurhashDataURL } from "../dist/blurhash.js";

const raw = JSON.parse(readFileSync(new URL("./fixtures/manifest.json", import.meta.url), "utf8"));
const hosted = { ...raw, base: "https://img.example.org/", cdn_base: "https://cdn.example.org/" };
const entry = raw.entries["abraham-accords"];

test("the next/image loader maps a width to the nearest stored variant", () => {
  const loader = createLoader(hosted, { mode: "production" });
  assert.equal(loader({ src: "abraham-accords", width: 640 }), "https://cdn.example.org/" + entry.variants.webp["768"]);
  assert.equal(loader({ src: "abraham-accords", width: 768 }), "https://cdn.example.org/" + entry.variants.webp["768"]);
  assert.equal(loader({ src: "abraham-accords", width: 3840 }), "https://cdn.example.org/" + entry.variants.webp["1024"]);
  assert.equal(loader({ src: "abraham-accords", width: 16 }), "https://cdn.example.org/" + entry.variants.webp["240"]);
  const avif = createLoader(hosted, { format: "avif", base: "http://127.0.0.1:8765/" });
  assert.equal(avif({ src: "abraham-accords", width: 500 }), "http://127.0.0.1:8765/" + entry.variants.avif["768"]);
  assert.equal(loader({ src: "/images/events/nope.webp", width: 640 }), "/images/events/nope.webp"); // unknown: as given
});

test("the loader without a base gives the entry's placeholder, never the bare id", () => {
  // a local store (no base, no cdn_base): the id as a URL would be relative and 404
  for (const mode of ["production", "development", undefined]) {
    assert.equal(createLoader(raw, { mode })({ src: "abraham-accords", width: 640 }), entry.placeholder, String(mode));
    assert.equal(createLoader(raw, { mode })({ src: "webp-only", width: 16 }), raw.entries["webp-only"].placeholder);
  }
  assert.equal(createLoader(hosted, { mode: "development" })({ src: "abraham-accords", width: 640 }), entry.placeholder);
  // an entry with no variant of any format under a base: the placeholder too, as getImageProps does
  const bare = { ...hosted, entries: { x: { ...entry, id: "x", variants: {} } } };
  assert.equal(createLoader(bare, { mode: "production" })({ src: "x", width: 640 }), entry.placeholder);
  assert.equal(createLoader(raw)({ src: "/images/events/nope.webp", width: 640 }), "/images/events/nope.webp"); // unknown: as given
});

test("the loader's mode defaults to defaultMode(), like every other function", () => {
  const saved = process.env.NODE_ENV;
  try {
    const loader = createLoader(hosted); // read at each call, as getImageUrl does
    process.env.NODE_ENV = "development";
    assert.equal(loader({ src: "abraham-accords", width: 640 }), entry.placeholder);
    assert.equal(createLoader(hosted, {})({ src: "abraham-accords", width: 640 }), entry.placeholder);
    // in development a base (`limner media serve`) loads the real variants
    assert.equal(createLoader(hosted, { base: "http://127.0.0.1:8799/" })({ src: "abraham-accords", width: 640 }),
      "http://127.0.0.1:8799/" + entry.variants.webp["768"]);
    process.env.NODE_ENV = "production";
    assert.equal(loader({ src: "abraham-accords", width: 640 }), "https://cdn.example.org/" + entry.variants.webp["768"]);
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  }
});

function pngSize(dataUrl) {
  assert.match(dataUrl, /^data:image\/png;base64,/);
  const png = Buffer.from(dataUrl.split(",")[1], "base64");
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

test("ThumbHash and BlurHash give PNG data URLs in the image's aspect ratio", () => {
  const [tw, th] = pngSize(thumbhashDataURL(entry));
  assert.ok(Math.abs(tw / th - entry.width / entry.height) < 0.2, `${tw}x${th}`);
  const [bw, bh] = pngSize(blurhashDataURL(entry, 40));
  assert.deepEqual([bw, bh], [40, Math.round((40 * entry.height) / entry.width)]);
  assert.match(thumbhashColor(entry), /^rgba\(\d+, \d+, \d+, [01]\.\d{3}\)$/);
  assert.equal(thumbhashDataURL(undefined), undefined);
  assert.equal(blurhashDataURL({ ...entry, blurhash: "not a hash" }), undefined);
});
