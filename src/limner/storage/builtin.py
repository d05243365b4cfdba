"""Built-in storages, registered through the same hook as any plugin (by URL scheme)."""

from limner.plugins.hookspecs import hookimpl
from limner.registry import StorageSpec

BUILTIN_STORAGES = (
    StorageSpec("file", "limner.storage.local:LocalStorage", "A local folder (a path or file:// URL)."),
    StorageSpec("s3", "limner.storage.s3:S3Storage", "S3-compatible object storage: AWS S3, Cloudflare R2, MinIO, Supabase S3.",
                extra="s3"),
    StorageSpec("supabase", "limner.storage.supabase:SupabaseStorage", "Supabase Storage (REST API).", extra="supabase"),
)


@hookimpl
def register_storages(register):  # type: ignore[no-untyped-def]
    for spec in BUILTIN_STORAGES:
        register(spec)
