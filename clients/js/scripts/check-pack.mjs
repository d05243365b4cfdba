// Packaging check: what `npm pack` would publish. Every export target is in the tarball, with its types;
// no sources, tests or scripts; the core entry imports nothing outside the package.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const [report] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { encoding: "utf8" }));
const files = new Set(report.files.map((f) => f.path));
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const problems = [];

for (const [subpath, target] of Object.entries(pkg.exports)) {
  const targets = typeof target === "string" ? [target] : Object.values(target);
  for (const t of targets) {
    if (!files.has(t.replace(/^\.\//, ""))) problems.push(`export ${subpath} -> ${t} is not in the tarball`);
  }
  if (typeof target !== "string" && !target.types) problems.push(`export ${subpath} has no types`);
}
for (const f of files) {
  if (/^(src|test|scripts)\//.test(f) || f.endsWith(".tgz") || f.startsWith("node_modules/")) problems.push(`${f} should not be published`);
}
const core = readFileSync(new URL("../dist/index.js", import.meta.url), "utf8");
const imports = [...core.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/gm)].map((m) => m[1]);
for (const spec of imports) {
  if (!spec.startsWith("./")) problems.push(`the core entry imports ${spec}: it must have no runtime dependencies`);
}
if (pkg.dependencies && Object.keys(pkg.dependencies).length) problems.push("the package must have no dependencies");

if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(`npm pack: ${files.size} files, ${report.size} bytes packed; exports and types present`);
