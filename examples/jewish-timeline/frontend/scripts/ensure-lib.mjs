// Build limner-images (clients/js, linked with file:) when its dist/ is missing or older than its sources.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const lib = fileURLToPath(new URL("../../../../clients/js/", import.meta.url));
const built = lib + "dist/index.js";
const newest = Math.max(...readdirSync(lib + "src").map((f) => statSync(lib + "src/" + f).mtimeMs),
  statSync(lib + "package.json").mtimeMs);
if (!existsSync(built) || statSync(built).mtimeMs < newest) {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  if (!existsSync(lib + "node_modules/typescript")) execFileSync(npm, ["ci", "--no-audit", "--no-fund"], { cwd: lib, stdio: "inherit" });
  execFileSync(npm, ["run", "build"], { cwd: lib, stdio: "inherit" });
}
