/**
 * `<LimnerImage manifest id sizes priority />`: a `<picture>` with AVIF, WebP and JPEG sources, explicit
 * width and height (the browser reserves the space: no layout shift), lazy unless `priority`, and the
 * placeholder (committed low-resolution image over the dominant colour) behind the image until it loads.
 */
import { createElement, useCallback, useState, version } from "react";
import type { CSSProperties, ImgHTMLAttributes, ReactElement, SyntheticEvent } from "react";

import { getImageProps, getPictureSources } from "./index.js";
import type { ImagePropsOptions, LimnerManifest } from "./index.js";

export interface LimnerImageProps
  extends ImagePropsOptions,
    Omit<ImgHTMLAttributes<HTMLImageElement>, "src" | "srcSet" | "sizes" | "width" | "height" | "loading" | "placeholder"> {
  manifest: LimnerManifest;
  id: string;
  /** Rendered instead of the image for an unknown id (default: nothing). */
  fallback?: ReactElement | null;
}

const REACT_18 = version.startsWith("18.");

export function LimnerImage(props: LimnerImageProps): ReactElement | null {
  const { manifest, id, sizes, widths, priority, mode, base, format, placeholder, fallback = null, style, onLoad, alt, ...rest } = props;
  const [loaded, setLoaded] = useState(false);
  const handleLoad = useCallback(
    (event: SyntheticEvent<HTMLImageElement>) => {
      setLoaded(true);
      onLoad?.(event);
    },
    [onLoad],
  );
  const image = getImageProps(manifest, id, { sizes, widths, priority, mode, base, format, placeholder });
  if (!image) return fallback;
  const sources = getPictureSources(manifest, id, { sizes, widths, mode, base });
  const imgStyle: CSSProperties = {
    maxWidth: "100%",
    height: "auto",
    ...(loaded ? {} : image.style),
    ...style,
  };
  // React 19 knows fetchPriority; React 18 passes the lower-case attribute through
  const priorityAttr = REACT_18 ? { fetchpriority: image.fetchPriority } : { fetchPriority: image.fetchPriority };
  const img = createElement("img", {
    ...rest,
    src: image.src,
    srcSet: image.srcSet,
    sizes: image.sizes,
    width: image.width,
    height: image.height,
    alt: alt ?? image.alt,
    loading: image.loading,
    decoding: image.decoding,
    ...priorityAttr,
    style: imgStyle,
    onLoad: handleLoad,
    "data-limner-id": id,
  });
  return createElement(
    "picture",
    null,
    ...sources.map((s) => createElement("source", { key: s.type, type: s.type, srcSet: s.srcSet, sizes: s.sizes })),
    img,
  );
}

export default LimnerImage;
