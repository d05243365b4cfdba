/**
 * Inline previews from the manifest's BlurHash (needs the `blurhash` and `thumbhash` packages, optional
 * peer dependencies: BlurHash decodes the pixels, ThumbHash's encoder writes the PNG, with no canvas,
 * so it works in server rendering too).
 */
import { decode, isBlurhashValid } from "blurhash";
import { rgbaToDataURL } from "thumbhash";

import type { LimnerEntry } from "./index.js";

/**
 * A PNG data URL of the entry's BlurHash, `width` pixels wide (default 32) in the image's aspect ratio,
 * or `undefined` when the hash is not valid.
 */
export function blurhashDataURL(
  entry: Pick<LimnerEntry, "blurhash" | "width" | "height"> | undefined,
  width = 32,
): string | undefined {
  if (!entry?.blurhash || !isBlurhashValid(entry.blurhash).result) return undefined;
  const w = Math.max(1, Math.round(width));
  const h = Math.max(1, Math.round((w * entry.height) / Math.max(1, entry.width)));
  const pixels = decode(entry.blurhash, w, h);
  return rgbaToDataURL(w, h, pixels);
}
