/**
 * limner-images: read a Limner manifest (`limner sync`) and turn an entry id into URLs and `<img>` /
 * `<picture>` attributes. No runtime dependencies; never throws for an unknown id (the result is
 * `undefined`), so it is safe in render code.
 */
import type { LimnerEntry, LimnerManifest, LimnerVariants, LimnerWidthKeys } from "./manifest.js";

export type { LimnerEntry, LimnerManifest, LimnerVariants, LimnerWidthKeys } from "./manifest.js";

/** The manifest format version this package reads. */
export const MANIFEST_VERSION = 2;

/** `development`: the committed placeholders. `production`: the stored variants (CDN, else public URL). */
export type Mode = "development" | "production";
export type ImageFormat = "avif" | "webp" | "jpeg";

/** The formats of a `<picture>`, best first. */
export const FORMATS: readonly ImageFormat[] = ["avif", "webp", "jpeg"];
export const MIME_TYPES: Readonly<Record<ImageFormat, string>> = {
  avif: "image/avif",
  webp: "image/webp",
  jpeg: "image/jpeg",
};

export interface UrlOptions {
  /** Default: {@link defaultMode}(). */
  mode?: Mode;
  /**
   * Base URL the keys are relative to; overrides the manifest's `cdn_base` and `base`. In development,
   * passing one (e.g. the URL `limner media serve` prints) loads the real variants instead of the
   * placeholder.
   */
  base?: string;
}

export interface ImagePropsOptions extends UrlOptions {
  /** The `sizes` attribute. Default: the manifest's recommended `sizes`. */
  sizes?: string;
  /** Only these widths in `srcset` (each mapped to the nearest stored variant at least as wide). */
  widths?: readonly number[];
  /** Above the fold: eager loading and high fetch priority. Default false: lazy. */
  priority?: boolean;
  /** Format of the `<img>`'s own `src`/`srcSet` (the `<picture>` fallback). Default `jpeg` when stored. */
  format?: ImageFormat;
  /**
   * What shows behind the image until it loads: `"image"` (default) the committed placeholder over the
   * dominant colour, `"color"` the colour only, or a data URL (from `limner-images/thumbhash` or
   * `limner-images/blurhash`) over the colour.
   */
  placeholder?: "image" | "color" | string;
}

/** A background, as a React `style` object (camelCase keys) and as a CSS declaration string. */
export interface PlaceholderStyle {
  backgroundColor: string;
  backgroundImage?: string;
  backgroundSize: "cover";
  backgroundPosition: "center";
  backgroundRepeat: "no-repeat";
}

export interface ImageProps {
  src: string;
  srcSet?: string;
  sizes?: string;
  width: number;
  height: number;
  alt: string;
  loading: "lazy" | "eager";
  decoding: "async";
  fetchPriority: "high" | "auto";
  /** The dominant colour, `#rrggbb`. */
  color: string;
  /** The placeholder behind the image: use as `style` until the image has loaded. */
  style: PlaceholderStyle;
}

export interface PictureSource {
  type: string;
  srcSet: string;
  sizes: string;
}

// Node's `process`, declared here so that the build needs no Node types. Only read as the literal
// `process.env.NODE_ENV`, which bundlers replace at build time; in a browser without one it is not defined.
declare const process: { env: Record<string, string | undefined> };

/**
 * The mode from the usual signals, never throwing in a browser: Vite's `import.meta.env.PROD`/`DEV`,
 * then `process.env.NODE_ENV` (replaced at build time by webpack, Next.js and esbuild; read at run time
 * in Node); `"production"` when neither says anything. Every function's `mode` defaults to it, read at
 * each call.
 */
export function defaultMode(): Mode {
  try {
    const env = (import.meta as unknown as { env?: { PROD?: unknown; DEV?: unknown; MODE?: unknown } }).env;
    if (env && typeof env === "object") {
      if (env.PROD === true) return "production";
      if (env.DEV === true) return "development";
    }
  } catch {
    // import.meta.env is not defined here
  }
  try {
    // the literal expression, not globalThis.process (absent in Next.js's client): bundlers replace it
    const nodeEnv = process.env.NODE_ENV;
    if (nodeEnv === "production") return "production";
    if (nodeEnv === "development" || nodeEnv === "test") return "development";
  } catch {
    // no process in a browser without a bundler
  }
  return "production";
}

/** Check that `data` (the parsed manifest JSON) is a version this package reads, and type it. */
export function asManifest(data: unknown): LimnerManifest {
  const doc = data as Partial<LimnerManifest> | null;
  if (!doc || typeof doc !== "object" || typeof doc.entries !== "object" || doc.entries === null) {
    throw new TypeError("limner-images: not a Limner manifest (no `entries`)");
  }
  if (doc.version !== MANIFEST_VERSION) {
    throw new TypeError(
      `limner-images: manifest version ${String(doc.version)}, this package reads version ${MANIFEST_VERSION}; ` +
        "run `limner sync` with a matching Limner, or upgrade limner-images",
    );
  }
  return doc as LimnerManifest;
}

/** The entry, or `undefined` for an unknown id (or a missing manifest). */
export function getEntry(manifest: LimnerManifest | null | undefined, id: string): LimnerEntry | undefined {
  const entries = manifest?.entries;
  if (!entries || !Object.prototype.hasOwnProperty.call(entries, id)) return undefined;
  return entries[id];
}

/** The entries in catalogue order (`order`), for a timeline. */
export function entriesInOrder(manifest: LimnerManifest): LimnerEntry[] {
  return Object.values(manifest.entries).sort((a, b) => a.order - b.order || (a.id < b.id ? -1 : 1));
}

/** `base` joined with `key`, with exactly one `/` between. */
export function joinUrl(base: string, key: string): string {
  return base.replace(/\/+$/, "") + "/" + key.replace(/^\/+/, "");
}

/**
 * The base the variants are loaded from, or `undefined` (placeholders only): `options.base` in either
 * mode; in production (`options.mode`, default {@link defaultMode}()) the manifest's `cdn_base`, else
 * its `base`. Every function decides with this one.
 */
export function resolveBase(manifest: LimnerManifest, options: UrlOptions = {}): string | undefined {
  if (options.base) return options.base;
  if ((options.mode ?? defaultMode()) === "development") return undefined;
  return manifest.cdn_base ?? manifest.base ?? undefined;
}

/**
 * One URL for the entry's image: the largest JPEG variant (`image_key`) under `options.base` (in either
 * mode), else in production under the manifest's `cdn_base`, else its `base`; otherwise (development
 * without `options.base`, or a local store) the committed placeholder (`placeholder`). Unknown id:
 * `undefined`.
 */
export function getImageUrl(manifest: LimnerManifest, id: string, options: UrlOptions = {}): string | undefined {
  const entry = getEntry(manifest, id);
  if (!entry) return undefined;
  const base = resolveBase(manifest, options);
  return base ? joinUrl(base, entry.image_key) : entry.placeholder;
}

/** Stored widths of one format, ascending, with their keys. */
export function variantWidths(entry: LimnerEntry, format: ImageFormat): Array<[number, string]> {
  const keys: LimnerWidthKeys | undefined = entry.variants[format as keyof LimnerVariants];
  if (!keys) return [];
  return Object.entries(keys)
    .map(([w, key]): [number, string] => [Number(w), key])
    .filter(([w]) => Number.isFinite(w) && w > 0)
    .sort((a, b) => a[0] - b[0]);
}

/** The stored variant for a requested width: the narrowest at least as wide, else the widest. */
export function nearestVariant(entry: LimnerEntry, format: ImageFormat, width: number): [number, string] | undefined {
  const stored = variantWidths(entry, format);
  return stored.find(([w]) => w >= width) ?? stored[stored.length - 1];
}

function pick(entry: LimnerEntry, format: ImageFormat, widths?: readonly number[]): Array<[number, string]> {
  if (!widths || widths.length === 0) return variantWidths(entry, format);
  const chosen = new Map<number, string>();
  for (const w of widths) {
    const v = nearestVariant(entry, format, w);
    if (v) chosen.set(v[0], v[1]);
  }
  return [...chosen.entries()].sort((a, b) => a[0] - b[0]);
}

/** A `srcset` string for one format (`<url> <width>w, ...`), or `undefined` when that format is not stored. */
export function getSrcSet(
  manifest: LimnerManifest,
  id: string,
  format: ImageFormat,
  options: UrlOptions & { widths?: readonly number[] } = {},
): string | undefined {
  const entry = getEntry(manifest, id);
  const base = resolveBase(manifest, options);
  if (!entry || !base) return undefined;
  const items = pick(entry, format, options.widths);
  return items.length ? items.map(([w, key]) => `${joinUrl(base, key)} ${w}w`).join(", ") : undefined;
}

function fallbackFormat(entry: LimnerEntry, wanted?: ImageFormat): ImageFormat | undefined {
  const order: ImageFormat[] = wanted ? [wanted, "jpeg", "webp", "avif"] : ["jpeg", "webp", "avif"];
  return order.find((f) => variantWidths(entry, f).length > 0);
}

function cssUrl(url: string): string {
  return `url(${JSON.stringify(url)})`;
}

/** The background to show behind an entry's image until it loads. */
export function placeholderStyle(entry: LimnerEntry, placeholder: ImagePropsOptions["placeholder"] = "image"): PlaceholderStyle {
  const style: PlaceholderStyle = {
    backgroundColor: entry.color,
    backgroundSize: "cover",
    backgroundPosition: "center",
    backgroundRepeat: "no-repeat",
  };
  if (placeholder === "image") style.backgroundImage = cssUrl(entry.placeholder);
  else if (placeholder !== "color" && placeholder) style.backgroundImage = cssUrl(placeholder);
  return style;
}

/**
 * Everything an `<img>` needs. With a base (production, or `options.base`): `src` is the largest chosen
 * variant of `format` and `srcSet` lists the chosen widths; without one (development): `src` is the
 * committed placeholder and there is no `srcSet`. `width`/`height` are the image's own (set both to
 * reserve the space: no layout shift). Unknown id: `undefined`.
 */
export function getImageProps(manifest: LimnerManifest, id: string, options: ImagePropsOptions = {}): ImageProps | undefined {
  const entry = getEntry(manifest, id);
  if (!entry) return undefined;
  const priority = options.priority === true;
  const props: ImageProps = {
    src: entry.placeholder,
    width: entry.width,
    height: entry.height,
    alt: entry.alt,
    loading: priority ? "eager" : "lazy",
    decoding: "async",
    fetchPriority: priority ? "high" : "auto",
    color: entry.color,
    style: placeholderStyle(entry, options.placeholder),
  };
  const base = resolveBase(manifest, options);
  const format = fallbackFormat(entry, options.format);
  if (base && format) {
    const items = pick(entry, format, options.widths);
    const largest = items[items.length - 1];
    if (largest) {
      props.src = joinUrl(base, largest[1]);
      props.srcSet = items.map(([w, key]) => `${joinUrl(base, key)} ${w}w`).join(", ");
      props.sizes = options.sizes ?? manifest.sizes;
    }
  }
  return props;
}

/**
 * `<source>` attributes for a `<picture>`: AVIF, WebP and JPEG (those stored), best first. Empty when
 * there is no base (development without `options.base`): the `<img>` alone shows the placeholder.
 */
export function getPictureSources(
  manifest: LimnerManifest,
  id: string,
  options: Pick<ImagePropsOptions, "mode" | "base" | "sizes" | "widths"> = {},
): PictureSource[] {
  const entry = getEntry(manifest, id);
  const base = resolveBase(manifest, options);
  if (!entry || !base) return [];
  const sizes = options.sizes ?? manifest.sizes;
  const sources: PictureSource[] = [];
  for (const format of FORMATS) {
    const items = pick(entry, format, options.widths);
    if (items.length) {
      sources.push({ type: MIME_TYPES[format], srcSet: items.map(([w, key]) => `${joinUrl(base, key)} ${w}w`).join(", "), sizes });
    }
  }
  return sources;
}
