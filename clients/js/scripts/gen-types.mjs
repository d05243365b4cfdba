// Generate src/manifest.ts from manifest.schema.json (the schema `limner sync` writes).
// `node scripts/gen-types.mjs --check` exits 1 when src/manifest.ts is not what the schema gives.
import { readFile, writeFile } from "node:fs/promises";
import { compile } from "json-schema-to-typescript";

const here = new URL("..", import.meta.url);
const schemaPath = new URL("manifest.schema.json", here);
const outPath = new URL("src/manifest.ts", here);

const schema = JSON.parse(await readFile(schemaPath, "utf8"));
const banner = `/* eslint-disable */
/**
 * GENERATED from manifest.schema.json by scripts/gen-types.mjs (json-schema-to-typescript).
 * Do not edit by hand: run \`npm run gen:types\` after the schema changes.
 */`;
const generated = await compile(schema, "LimnerManifest", {
  bannerComment: banner,
  additionalProperties: false,
  unreachableDefinitions: true,
  style: { singleQuote: false, semi: true, printWidth: 100 },
});

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = await readFile(outPath, "utf8");
  } catch {}
  if (current !== generated) {
    console.error("src/manifest.ts is out of date with manifest.schema.json: run `npm run gen:types`");
    process.exit(1);
  }
  console.log("src/manifest.ts matches manifest.schema.json");
} else {
  await writeFile(outPath, generated);
  console.log("wrote src/manifest.ts");
}
