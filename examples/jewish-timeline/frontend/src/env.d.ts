/// <reference types="vite/client" />
declare module "virtual:limner-manifest" {
  const data: unknown;
  export default data;
}
interface ImportMetaEnv {
  readonly VITE_LIMNER_MEDIA_BASE?: string;
}
