/**
 * Inline previews from the manifest's ThumbHash (needs the `thumbhash` package, an optional peer
 * dependency): a PNG data URL to pass as `placeholder` to `getImageProps` or `<LimnerImage>`.
 */
import { thumbHashToDataURL, thumbHashToAverageRGBA } from "thumbhash";

import type { LimnerEntry } from "./index.js";

function bytes(base64: string): Uint8Array {
  const binary = globalThis.atob(base64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** A small PNG data URL (about 32 px) of the entry's ThumbHash, or `undefined` when it cannot be decoded. */
export function thumbhashDataURL(entry: Pick<LimnerEntry, "thumbhash"> | undefined): string | undefined {
  if (!entry?.thumbhash) return undefined;
  try {
    return thumbHashToDataURL(bytes(entry.thumbhash));
  } catch {
    return undefined;
  }
}

/** The ThumbHash's average colour as `rgba(r, g, b, a)`, or `undefined`. */
export function thumbhashColor(entry: Pick<LimnerEntry, "thumbhash"> | undefined): string | undefined {
  if (!entry?.thumbhash) return undefined;
  try {
    const { r, g, b, a } = thumbHashToAverageRGBA(bytes(entry.thumbhash));
    return `rgba(${Math.round(r * 255)}, ${Math.round(g * 255)}, ${Math.round(b * 255)}, ${a.toFixed(3)})`;
  } catch {
    return undefined;
  }
}
