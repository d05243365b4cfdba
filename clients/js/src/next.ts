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
 * A loader for `next/image`. `src` is an entry id (or a variant key of the manifest). Without a base
 * (development, local store) or for an unknown id, `src` comes back as given, so next/image can still
 * render a placeholder path passed as `src`.
 */
export function createLoader(manifest: LimnerManifest, options: LoaderOptions = {}): ImageLoader {
  return ({ src, width }) => {
    const entry = getEntry(manifest, src);
    const base = resolveBase(manifest, { mode: options.mode ?? "production", base: options.base });
    if (!entry || !base) return src;
    const order: ImageFormat[] = [options.format ?? "webp", "webp", "jpeg", "avif"];
    for (const format of order) {
      const v = nearestVariant(entry, format, width);
      if (v) return joinUrl(base, v[1]);
    }
    return src;
  };
}

export default createLoader;
