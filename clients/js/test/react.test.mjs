// Server render of <LimnerImage> with react-dom/server: the markup a browser receives.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";

import { LimnerImage } from "../dist/react.js";

const raw = JSON.parse(readFileSync(new URL("./fixtures/manifest.json", import.meta.url), "utf8"));
const hosted = { ...raw, base: "https://img.example.org/", cdn_base: "https://cdn.example.org/" };
const ID = "abraham-accords";
const entry = raw.entries[ID];

function render(props) {
  return renderToStaticMarkup(createElement(LimnerImage, { manifest: hosted, id: ID, ...props }));
}

test("a <picture> with AVIF, WebP and JPEG sources and a sized, lazy <img>", () => {
  const html = render({ mode: "production", sizes: "(min-width: 800px) 50vw, 100vw" });
  assert.match(html, /^<picture><source type="image\/avif" srcSet="[^"]+" sizes="\(min-width: 800px\) 50vw, 100vw"\/><source type="image\/webp"[^>]*\/><source type="image\/jpeg"[^>]*\/><img [^>]+\/><\/picture>$/);
  const avif = html.match(/type="image\/avif" srcSet="([^"]+)"/)[1];
  assert.equal(avif, Object.entries(entry.variants.avif).map(([w, k]) => `https://cdn.example.org/${k} ${w}w`).join(", "));
  const img = html.match(/<img [^>]+\/>/)[0];
  assert.match(img, new RegExp(`width="${entry.width}"`));
  assert.match(img, new RegExp(`height="${entry.height}"`));
  assert.match(img, /loading="lazy"/);
  assert.match(img, /decoding="async"/);
  assert.match(img, /fetchPriority="auto"/);
  assert.match(img, new RegExp(`alt="${entry.alt.replace(/[()]/g, "\\$&")}"`));
  assert.match(img, new RegExp(`src="https://cdn.example.org/${entry.variants.jpeg["1024"]}"`));
  // the placeholder sits behind the image until it loads
  assert.match(img, new RegExp(`background-color:${entry.color}`));
  assert.match(img, /background-image:url\(&quot;\/images\/events\/abraham-accords\.webp&quot;\)/);
  assert.match(img, /max-width:100%;height:auto/);
  assert.match(img, /data-limner-id="abraham-accords"/);
});

test("priority makes it eager with a high fetch priority", () => {
  const img = render({ mode: "production", priority: true }).match(/<img [^>]+\/>/)[0];
  assert.match(img, /loading="eager"/);
  assert.match(img, /fetchPriority="high"/);
});

test("development: the placeholder alone, still sized", () => {
  const html = render({ mode: "development" });
  assert.doesNotMatch(html, /<source/);
  assert.match(html, /<img [^>]*src="\/images\/events\/abraham-accords\.webp"/);
  assert.match(html, new RegExp(`width="${entry.width}" height="${entry.height}"`));
});

test("an unknown id renders the fallback (nothing by default), no throw", () => {
  assert.equal(render({ id: "nope", mode: "production" }), "");
  assert.equal(renderToStaticMarkup(createElement(LimnerImage, { manifest: hosted, id: "nope", fallback: createElement("span", null, "missing") })),
    "<span>missing</span>");
});
