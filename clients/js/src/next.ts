/**
 * A `next/image` loader: Next.js asks for a width, the loader answers with the nearest stored variant
 * (the narrowest at least that wide, else the widest). Pass the entry id as `src`:
 *
 *   const loader = createLoader(manifest);
 *   <Image loader={loader} src="exodus" width={e.width} height={e.height} alt={e.alt} sizes={manifest.sizes} />
 */
import { getEntry, joinUrl, nearestVariant, resolveBase } from "./index.js";
import type { ImageFormat, LimnerManifest, UrlOptions } from "./index.js";

export interface ImageLoaderProps {
  src: string;
  width: number;
  quality?: number;
}

export type ImageLoader = (props: ImageLoaderProps) => string;

export interface LoaderOptions extends UrlOptions {
  /** Variant format (next/image renders one `<img>`). Default `webp`, else the first stored. */
  format?: ImageFormat;
}

/**
 * A loader for `next/image`. `src` is an entry id. The base is chosen as by every other function:
 * `options.base` in either mode, else in production (`options.mode`, default `defaultMode()`, read
 * at each call) the manifest's `cdn_base`, else its `base`. Without a base (development, a local store)
 * the entry's committed placeholder, as `getImageUrl` gives. An unknown `src` comes back as given, so
 * next/image can still render a path passed as `src`.
 */
export function createLoader(manifest: LimnerManifest, options: LoaderOptions = {}): ImageLoader {
  return ({ src, width }) => {
    const entry = getEntry(manifest, src);
    if (!entry) return src;
    const base = resolveBase(manifest, { mode: options.mode, base: options.base });
    if (!base) return entry.placeholder;
    const order: ImageFormat[] = [options.format ?? "webp", "webp", "jpeg", "avif"];
    for (const format of order) {
      const v = nearestVariant(entry, format, width);
      if (v) return joinUrl(base, v[1]);
    }
    return entry.placeholder;
  };
}

export default createLoader;
