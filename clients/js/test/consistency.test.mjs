// Every exported function agrees on where the image comes from: the same default mode (defaultMode()),
// `base` honoured in either mode, and the entry's placeholder when there is no base.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";

import { asManifest, getImageProps, getImageUrl, getPictureSources, getSrcSet, joinUrl } from "../dist/index.js";
import { createLoader } from "../dist/next.js";
import { LimnerImage } from "../dist/react.js";

const raw = JSON.parse(readFileSync(new URL("./fixtures/manifest.json", import.meta.url), "utf8"));
const manifests = {
  local: asManifest(raw),
  hosted: asManifest({ ...raw, base: "https://img.example.org/media/", cdn_base: "https://cdn.example.org/" }),
  publicOnly: asManifest({ ...raw, base: "https://img.example.org/media/", cdn_base: null }),
};
const ID = "abraham-accords";
const entry = raw.entries[ID];
const SERVED = "http://127.0.0.1:8799/"; // what `limner media serve` prints

/** The base every function must use, or undefined (the placeholder). */
function expectedBase(manifest, mode, base) {
  if (base) return base;
  if (mode === "development") return undefined;
  return manifest.cdn_base ?? manifest.base ?? undefined;
}

function withNodeEnv(value, fn) {
  const saved = process.env.NODE_ENV;
  try {
    if (value === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = value;
    fn();
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  }
}

const urlsOf = (srcSet) => srcSet.split(", ").map((item) => item.split(" ")[0]);

test("all functions agree on mode default, base and the missing-base fallback", () => {
  const environments = [
    ["development", "development"],
    ["test", "development"],
    ["production", "production"],
    [undefined, "production"],
  ];
  for (const [nodeEnv, envMode] of environments) {
    withNodeEnv(nodeEnv, () => {
      for (const [name, manifest] of Object.entries(manifests)) {
        for (const mode of ["development", "production", undefined]) {
          for (const base of [undefined, SERVED]) {
            const options = { ...(mode ? { mode } : {}), ...(base ? { base } : {}) };
            const where = `NODE_ENV=${nodeEnv} manifest=${name} options=${JSON.stringify(options)}`;
            const expected = expectedBase(manifest, mode ?? envMode, base);

            assert.equal(getImageUrl(manifest, ID, options), expected ? joinUrl(expected, entry.image_key) : entry.placeholder,
              `getImageUrl ${where}`);

            const props = getImageProps(manifest, ID, options);
            assert.equal(props.src, expected ? joinUrl(expected, entry.variants.jpeg["1024"]) : entry.placeholder,
              `getImageProps ${where}`);
            assert.equal(props.srcSet !== undefined, Boolean(expected), `getImageProps srcSet ${where}`);

            const srcSet = getSrcSet(manifest, ID, "webp", options);
            assert.equal(srcSet !== undefined, Boolean(expected), `getSrcSet ${where}`);

            const sources = getPictureSources(manifest, ID, options);
            assert.equal(sources.length, expected ? 3 : 0, `getPictureSources ${where}`);
            for (const url of [props.srcSet, srcSet, ...sources.map((s) => s.srcSet)].filter(Boolean).flatMap(urlsOf)) {
              assert.ok(url.startsWith(expected), `${url} not under ${expected}: ${where}`);
            }

            assert.equal(createLoader(manifest, options)({ src: ID, width: 640 }),
              expected ? joinUrl(expected, entry.variants.webp["768"]) : entry.placeholder, `createLoader ${where}`);

            const html = renderToStaticMarkup(createElement(LimnerImage, { manifest, id: ID, ...options }));
            assert.equal(html.includes("<source"), Boolean(expected), `LimnerImage ${where}`);
          }
        }
      }
    });
  }
});
