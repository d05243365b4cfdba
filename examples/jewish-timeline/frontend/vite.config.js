// The example timeline. LIMNER_MANIFEST, LIMNER_PUBLIC_DIR and LIMNER_OUT_DIR point the build at another
// project's manifest and placeholders (the browser test builds a small catalogue in a temporary folder);
// VITE_LIMNER_MEDIA_BASE is the URL the variants are served from (`limner media serve` prints it).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));
const manifest = resolve(process.env.LIMNER_MANIFEST ?? resolve(here, "src/data/limner-manifest.json"));

export default defineConfig({
  publicDir: resolve(process.env.LIMNER_PUBLIC_DIR ?? resolve(here, "public")),
  resolve: {
    alias: { "virtual:limner-manifest": manifest },
    // limner-images is linked from clients/js: one React for the app and the component
    dedupe: ["react", "react-dom"],
  },
  build: { outDir: resolve(process.env.LIMNER_OUT_DIR ?? resolve(here, "dist")), emptyOutDir: true },
  plugins: [
    {
      name: "limner-manifest-present",
      buildStart() {
        if (!existsSync(manifest)) {
          this.error(`no Limner manifest at ${manifest}: run ./scripts/demo (or \`limner sync\`) first`);
        }
      },
    },
  ],
});
