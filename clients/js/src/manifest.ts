/* eslint-disable */
/**
 * GENERATED from manifest.schema.json by scripts/gen-types.mjs (json-schema-to-typescript).
 * Do not edit by hand: run `npm run gen:types` after the schema changes.
 */

/**
 * Limner image manifest: what an app needs to show each catalogue entry's image.
 */
export interface LimnerManifest {
  $schema?: string;
  version: 2;
  /**
   * Public URL of the storage (ends in /); keys are relative to it. null: a local folder with no public URL (serve it with `limner media serve`).
   */
  base: string | null;
  /**
   * storage.cdn_base_url (ends in /), or null when no CDN is set.
   */
  cdn_base: string | null;
  /**
   * Recommended `sizes` attribute.
   */
  sizes: string;
  entries: {
    [k: string]: LimnerEntry;
  };
}
/**
 * This interface was referenced by `LimnerManifest`'s JSON-Schema
 * via the `definition` "entry".
 */
export interface LimnerEntry {
  id: string;
  /**
   * Position of the entry in the catalogue (0-based).
   */
  order: number;
  title?: string;
  /**
   * The catalogue's year (negative: BCE).
   */
  year?: number;
  /**
   * The catalogue's date label.
   */
  date?: string;
  era?: string;
  width: number;
  height: number;
  alt: string;
  /**
   * URL path of the committed git placeholder
   */
  placeholder: string;
  placeholder_width?: number;
  placeholder_height?: number;
  variants: LimnerVariants;
  /**
   * Key of the largest JPEG variant (else WebP, else any): a single fallback src.
   */
  image_key: string;
  /**
   * Key of the full-resolution master.
   */
  master_key: string;
  /**
   * Stable key of the entry's image (storage.alias_pattern).
   */
  alias_key?: string;
  blurhash: string;
  thumbhash: string;
  color: string;
  generated_at: string;
  provider: string;
  model: string;
  seed?: number;
  fingerprint?: string;
}
/**
 * Per format (avif, webp, jpeg), the variant keys by width in pixels, widths ascending.
 */
export interface LimnerVariants {
  avif?: LimnerWidthKeys;
  webp?: LimnerWidthKeys;
  jpeg?: LimnerWidthKeys;
}
/**
 * Variant key by width in pixels (a decimal string), widths ascending.
 *
 * This interface was referenced by `LimnerManifest`'s JSON-Schema
 * via the `definition` "widths".
 */
export interface LimnerWidthKeys {
  [k: string]: string;
}
