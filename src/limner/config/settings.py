"""Settings model and loader.

Precedence, highest first: command-line overrides, environment variables,
``.env`` in the project directory, ``limner.toml``, built-in defaults.

Environment names are ``LIMNER_<FIELD>`` for top-level fields and
``LIMNER_<SECTION>_<FIELD>`` for sections, e.g. ``LIMNER_CATALOG``,
``LIMNER_PROVIDER``, ``LIMNER_DATABASE_URL``, ``LIMNER_STORAGE_URL``,
``LIMNER_GENERATE_CONCURRENCY``. Every setting is listed in docs/configuration.md.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from dotenv import dotenv_values
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic_settings import (BaseSettings, InitSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
                               SettingsError)

from limner.errors import ConfigError, did_you_mean
from limner.keys import validate_pattern

CONFIG_FILENAME = "limner.toml"
STATE_DIRNAME = ".limner"


class _Section(BaseModel):
    # inf and nan are no numbers a setting can use (TOML writes them inf and nan, a variable "inf"): refused,
    # with what leaving the setting out means (:func:`_not_finite`)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ProjectSettings(_Section):
    #: style used by entries that name none (and whose era has no mapping)
    default_style: str = "illuminated-manuscript"
    #: era -> style, applied before ``default_style``
    era_styles: dict[str, str] = Field(default_factory=dict)
    #: folder of project style files (``*.toml``), relative to the project
    styles_dir: str = "styles"
    #: catalogue field names kept as extra fields although they look like a typo of a known field
    allow_fields: list[str] = Field(default_factory=list)


class GenerateSettings(_Section):
    #: long side of generated images, in pixels
    size: int = Field(1024, ge=64, le=4096)
    #: aspect ratio when neither the entry nor its style gives one
    aspect: str = "3:2"
    #: concurrent provider calls when the provider section sets none
    concurrency: int = Field(4, ge=1, le=256)
    #: attempts per entry for retryable errors (429, 5xx, timeouts, blank images)
    max_attempts: int = Field(4, ge=1, le=20)
    #: first backoff in seconds; doubles each attempt, with jitter
    backoff_initial_s: float = Field(1.0, ge=0)
    #: longest single backoff in seconds (our own exponential backoff)
    backoff_max_s: float = Field(60.0, ge=0)
    #: longest wait a provider's Retry-After is honoured for; a server asking for more is waited on
    #: this long, then retried
    retry_after_max_s: float = Field(600.0, ge=0)
    #: overall deadline of one provider call in seconds (create, wait, download), unless the provider's
    #: own ``timeout_s`` sets one; a call past it is recorded and asked about again, never silently dropped
    call_timeout_s: float = Field(600.0, gt=0)
    #: stop starting calls once spend would pass this (USD); none = no cap
    budget_usd: float | None = Field(None, ge=0)
    #: CPU workers for validation and derivation (0 = number of CPUs)
    workers: int = Field(0, ge=0, le=64)
    #: variant widths and formats
    widths: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [240, 480, 768, 1024, 1536, 2048])
    formats: list[Literal["avif", "webp", "jpeg"]] = Field(default_factory=lambda: ["avif", "webp", "jpeg"])
    #: decoding caps against decompression bombs; at least 1 (a cap of 0 or less would refuse every image,
    #: after it was paid for)
    max_image_bytes: int = Field(50_000_000, ge=1)
    max_image_pixels: int = Field(40_000_000, ge=1)
    #: perceptual-hash distance (bits of 64) at or below which a new image is flagged as a near
    #: duplicate of a published one; 0 flags only identical hashes
    near_duplicate_distance: int = Field(4, ge=0, le=16)
    #: provenance in published variants and placeholders: compact (no prompt, model or seed) or full
    variant_provenance: Literal["compact", "full"] = "compact"

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str) -> str:
        from limner.catalog.models import normalize_aspect

        return normalize_aspect(v)


#: where a secret found in provider settings belongs (they may come from limner.toml, .env or LIMNER_PROVIDERS)
_SECRETS_GO = ("secrets go in their own environment variables or .env (see docs/providers.md), "
               "never in provider settings")


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str | None = None
    concurrency: int | None = Field(None, ge=1, le=256)
    rate_limit_per_minute: float | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    price_usd: float | None = Field(None, ge=0)  # spend is recorded: a finite number

    @model_validator(mode="after")
    def _no_secrets(self) -> ProviderSettings:
        for key, value in (self.model_extra or {}).items():
            found = find_secret(key, value)
            if found:
                raise ValueError(f"{found} looks like a secret: {_SECRETS_GO}")
        for name in ("model",):  # a declared field may not hold a secret either
            value = getattr(self, name)
            if isinstance(value, str) and secret_shaped(value):
                raise ValueError(f"the value of {name!r} looks like a secret: {_SECRETS_GO}")
        return self


#: key names that hold credentials, matched on the name lower-cased with ``-``/spaces/camelCase as ``_``:
#: token, secret, password/passwd/pwd/passphrase, credential(s), cookie, session id, bearer, authorization,
#: authentication, a name ending in auth or oauth (not author, nor auth_fail), signature, any name ending in
#: ``key`` as its own word (api_key, x_key, access_key, private_key, key) or carrying a key id
_SECRET_KEY = re.compile(
    r"(token|secret|passw|passphrase|(^|_)pwd($|_)|credential|cookie|session_?id|bearer|"
    r"(^|_)o?auth(_(token|header|key|secret|password|value|string))?$|authori[sz]ation|authentication|"
    r"signature|(^|_)sig($|_)|"
    r"(^|_)key$|(^|_)(api|access|private|secret|client|x|app|license|signing|ssh|aws)_?keys?($|_)|apikey|"
    r"key_?(id|secret|file)$)")
#: values shaped like credentials: an Authorization scheme, a known provider prefix, a JWT, a URL with a
#: password, a PEM key
_SECRET_VALUE = re.compile(
    r"^\s*(bearer|basic|token|digest)\s+\S{8,}|"  # an Authorization header value
    r"\b(r8_|sk-|sk_|pk_live_|rk_live_|hf_|ghp_|gho_|ghs_|github_pat_|xox[abprs]-|glpat-|AKIA|ASIA|AIza|fal_|key-)"
    r"[A-Za-z0-9_\-]{12,}|"
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.|"  # a JWT
    r"://[^/\s:@]*:[^/\s@]+@|"  # user:password@ in a URL
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    re.IGNORECASE)
_OPAQUE = re.compile(r"[A-Za-z0-9+=]{32,}")


def _entropy(text: str) -> float:
    import math
    from collections import Counter

    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_shaped(value: str) -> bool:
    """True for a value shaped like a credential: ``Bearer ...``, ``r8_...``, ``sk-...``, a JWT, a URL with a
    password, a PEM private key, or a long opaque high-entropy string (32+ letters and digits mixed, without
    separators, not hexadecimal: model version ids and hashes are hex)."""
    if _SECRET_VALUE.search(value):
        return True
    for run in _OPAQUE.findall(value):
        if re.fullmatch(r"[0-9a-fA-F\-]+", run):
            continue
        if (any(c.isupper() for c in run) and any(c.islower() for c in run) and sum(c.isdigit() for c in run) >= 3
                and _entropy(run) >= 4.2):
            return True
    return False


def _key_words(name: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def find_secret(key: str, value: Any, path: str = "", depth: int = 0) -> str | None:
    """Where a setting holds a secret (``'key'`` or ``the value of 'a.b'``), by the key's name (nested
    tables and lists included) or by the value's shape; None when none does."""
    where = f"{path}.{key}" if path else str(key)
    if _SECRET_KEY.search(_key_words(key)):
        return repr(where)
    if depth > 20:
        return None
    if isinstance(value, str):
        return f"the value of {where!r}" if secret_shaped(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = find_secret(str(k), v, where, depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = find_secret(str(i), v, where, depth + 1) if not isinstance(v, str) else (
                f"the value of {where!r}" if secret_shaped(v) else None)
            if found:
                return found
    return None


class DatabaseSettings(_Section):
    #: SQLAlchemy URL; relative sqlite paths are relative to the project directory
    url: str = f"sqlite:///{STATE_DIRNAME}/limner.db"


class StorageSettings(_Section):
    #: where masters and variants go: a folder path or file:// URL (s3:// and supabase:// come with plugins)
    url: str = f"{STATE_DIRNAME}/media"
    #: base URL the files are served from (manifest URLs); defaults to file:// URLs
    public_base_url: str | None = None
    #: CDN base URL, when a CDN fronts the public URL
    cdn_base_url: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    #: stable key per published entry, e.g. "events/{id}.jpg" (its largest JPEG variant); none: no aliases
    alias_pattern: str | None = None

    @field_validator("public_base_url", "cdn_base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        """An absolute http(s) URL: the manifest's ``base`` / ``cdn_base`` and the events table's URLs are built
        on it (``cdn.example.org`` made keys relative to the app's own path, and a manifest its schema refuses)."""
        if not v:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        # what the manifest the app ships must not carry (keys are appended to the base; sync.manifest.check_base
        # asks the same of a storage's own public URL): credentials, a query (a signature), a fragment. Never
        # quoted. A path is the site's own, whatever it looks like (a folder named key-art-collection)
        held = ("a user name or password" if parts.username is not None or parts.password is not None
                else "a query string (a signature or token?)" if parts.query or "?" in v
                else "a fragment" if parts.fragment or "#" in v else None)
        if held:
            raise ValueError(f"the URL holds {held} (not shown): the manifest the app ships is built on it, and "
                             "keys are appended to it; give the plain public address (scheme, host, path)")
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in v):
            shown = "the value (not shown)" if secret_shaped(v) else repr(v)
            plausible = "://" not in v and v.strip("/") and not any(c.isspace() for c in v) and not secret_shaped(v)
            example = "https://" + v.lstrip("/") if plausible else "https://images.example.org"
            raise ValueError(f"{shown} is not an absolute http(s) URL: give its scheme and host, such as {example}")
        return v

    @field_validator("alias_pattern")
    @classmethod
    def _alias_pattern(cls, v: str | None) -> str | None:
        if not v:
            return None
        try:
            return validate_pattern(v)
        except ConfigError as exc:
            raise ValueError(exc.message) from None


class SyncSettings(_Section):
    #: where git placeholders are written (committed with the app)
    placeholder_dir: str = "frontend/public/images/events"
    #: URL path the app serves that folder under
    placeholder_url_prefix: str = "/images/events"
    placeholder_format: Literal["webp", "jpeg"] = "webp"
    placeholder_width: int = Field(480, ge=16, le=2048)
    placeholder_max_bytes: int = Field(100_000, ge=1_000)
    #: the manifest JSON the app reads; its JSON Schema is written beside it
    manifest: str = "frontend/src/data/limner-manifest.json"
    #: the manifest's recommended `sizes` attribute; unset: "(min-width: <widest>px) <widest>px, 100vw"
    sizes: str | None = None
    #: the app's database, to write image_url / image_cdn_url / image_generated_at back (unset: no write-back)
    events_database_url: str | None = None
    #: the app's events table and its id column (ids are the catalogue ids)
    events_table: str = "timeline_events"
    events_id_column: str = "id"


class ReviewSettings(_Section):
    #: new renders wait for a person's approval before they are published (sync, manifest, write-back)
    required: bool = False
    #: address and port of ``limner serve``; binding anything but a loopback address needs a token
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)


class QueueSettings(_Section):
    """Queue workers on PostgreSQL (``limner worker``, ``generate --enqueue``): see docs/scaling.md."""

    #: a worker writes its heartbeat this often (seconds)
    heartbeat_s: float = Field(10.0, gt=0)
    #: a worker silent for this long (seconds) is dead: its running jobs go back to the queue
    stalled_after_s: float = Field(30.0, gt=0, validate_default=True)
    #: jobs one worker runs at once (``limner worker --concurrency`` wins)
    concurrency: int = Field(8, ge=1, le=256)
    #: provider ``concurrency`` holds across every worker (PostgreSQL advisory locks), not per worker
    global_limits: bool = True
    #: cron expression (UTC; a sixth field is seconds) of the periodic "enqueue what is missing or stale",
    #: run by exactly one worker per tick; empty: none
    schedule: str = "0 3 * * 1"

    @field_validator("stalled_after_s")
    @classmethod
    def _longer_than_a_heartbeat(cls, v: float, info: ValidationInfo) -> float:
        """A live worker beats once per ``heartbeat_s``: judged dead after less, its running jobs went back to
        the queue while it ran them."""
        heartbeat = info.data.get("heartbeat_s")
        if heartbeat is not None and v <= heartbeat:
            raise ValueError(f"{v:g} s is not longer than queue.heartbeat_s ({heartbeat:g} s): every worker would "
                             "be judged dead between two heartbeats and its running jobs queued again; keep it "
                             "several heartbeats long")
        return v


class Settings(BaseSettings):
    """All of Limner's settings. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="LIMNER_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        allow_inf_nan=False,
        case_sensitive=False,
        # a CI job passes a secret that was never created as an empty variable: it means unset (an empty
        # LIMNER_PROVIDER replaced the project's provider by the offline sketch)
        env_ignore_empty=True,
    )

    #: catalogue file (YAML, JSON, JSONL or CSV), relative to the project directory
    catalog: str = "catalog.yaml"
    #: default provider; ``sketch`` (offline) when unset
    provider: str | None = None
    project: ProjectSettings = Field(default_factory=ProjectSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    styles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    #: extra plugin modules to load (comma separated in LIMNER_PLUGINS)
    plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # not settings: where they came from
    project_dir: Path = Field(default=Path("."), exclude=True)
    config_file: Path | None = Field(default=None, exclude=True)
    #: the command-line values this load was given (``load_settings(overrides=...)``), for :meth:`source_of`
    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("plugins", mode="before")
    @classmethod
    def _split_plugins(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = InitSettingsSource(settings_cls, settings_cls._toml_data)  # type: ignore[attr-defined]
        return (init_settings, env_settings, dotenv_settings, toml)

    #: the parsed limner.toml, lowest-priority source; set per load on a throwaway subclass
    _toml_data: ClassVar[dict[str, Any]] = {}

    # ----- paths -------------------------------------------------------------------
    def path(self, value: str | Path) -> Path:
        """Resolve ``value`` against the project directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.project_dir / p)

    @property
    def state_dir(self) -> Path:
        return self.project_dir / STATE_DIRNAME

    @property
    def catalog_path(self) -> Path:
        return self.path(self.catalog)

    def _in_project(self, url: str) -> str:
        """A SQLite URL with a relative path (``sqlite:///.limner/limner.db``) made absolute from the project
        folder, as every relative path in the settings is; any other URL as it is."""
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
            return prefix + str(self.path(url[len(prefix):]).resolve())
        return url

    @property
    def database_url(self) -> str:
        return self._in_project(self.database.url)

    @property
    def events_database_url(self) -> str | None:
        """``sync.events_database_url``, a relative SQLite path read from the project folder (not from the
        folder the command runs in)."""
        url = self.sync.events_database_url
        return self._in_project(url) if url else None

    def provider_settings(self, name: str) -> ProviderSettings:
        return self.providers.get(name) or ProviderSettings()

    def source_of(self, *loc: str) -> str:
        """Where the setting at ``loc`` (``"provider"``, ``"project", "default_style"``) came from, for an error
        message about its value: ``command-line option``, ``environment variable LIMNER_...``, ``<dir>/.env:
        LIMNER_...``, ``<limner.toml>:<line>``, or ``settings`` (a built-in default)."""
        return _source_of(tuple(loc), self._overrides, self.project_dir, self.config_file, default_means_builtin=True)

    # ----- secrets -----------------------------------------------------------------
    def secret(self, name: str) -> str | None:
        """A secret from the environment, else from the project's ``.env``. Never logged."""
        value = os.environ.get(name)
        if value:
            return value
        return project_dotenv(self.project_dir).get(name) or None

    def __repr_args__(self):  # keep reprs short; settings hold no secrets but stay tidy
        yield "project_dir", self.project_dir
        yield "config_file", self.config_file


def project_dotenv(project_dir: Path) -> dict[str, str | None]:
    """The project's .env, parsed once per change of the file (secrets are looked up on every call)."""
    env_file = project_dir / ".env"
    try:
        stamp = env_file.stat().st_mtime_ns
    except OSError:
        return {}
    return _parse_dotenv(str(env_file), stamp)


@lru_cache(maxsize=16)
def _parse_dotenv(path: str, _stamp: int) -> dict[str, str | None]:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    text = _utf8(Path(path), data)
    _check_dotenv_lines(Path(path), text)
    return dict(dotenv_values(stream=io.StringIO(text)))


#: the start of a line that names a variable (what a .env line that cannot be read is shown by: never its value)
_VARIABLE_START = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)")


def _check_dotenv_lines(path: Path, text: str) -> None:
    """A line of .env that python-dotenv cannot read (``NAME value`` without ``=``, an unclosed quote) was
    skipped with a warning that named no file, and its variable then read as unset: a :class:`ConfigError`
    naming the file, the line and the variable (never the value)."""
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            found = _VARIABLE_START.match(binding.original.string)
            name = f" (it starts with {found[1]})" if found else ""
            raise ConfigError(f"{path}:{binding.original.line}: cannot read this line{name}: a .env line is "
                              "NAME=value (or export NAME=value), a # comment, or empty")


def _utf8(path: Path, data: bytes) -> str:
    """The text of a configuration file, or a :class:`ConfigError` naming the line and byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = _utf8(path, path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    if text.startswith("\ufeff"):  # a byte-order mark, as some Windows editors write: TOML's parser said only
        raise ConfigError(f"{path}:1: starts with a byte-order mark (BOM), which TOML does not allow; save it as "
                          "UTF-8 without BOM")  # "Invalid statement (at line 1, column 1)"
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except ValueError:  # int() of an integer longer than Python reads: a bare ValueError naming no line
        raise ConfigError(_long_toml_number(path)) from None


#: an integer in TOML: digits, maybe with a sign and underscores
_TOML_INTEGER = re.compile(r"[+-]?[0-9][0-9_]*")


def _long_toml_number(path: Path) -> str:
    """``file:line: invalid TOML: ...`` for an integer longer than Python reads from text."""
    limit = sys.get_int_max_str_digits()
    text = path.read_text(encoding="utf-8", errors="replace")
    for found in _TOML_INTEGER.finditer(text):
        digits = sum(c.isdigit() for c in found.group())
        if digits > limit:
            line = text.count("\n", 0, found.start()) + 1
            return (f"{path}: invalid TOML: a number of {digits:,} digits (at line {line}): more than the {limit:,} "
                    "digits an integer may have")
    return f"{path}: invalid TOML: a number of more than the {limit:,} digits an integer may have"  # pragma: no cover


def _toml_line(path: Path, section: tuple[str, ...]) -> int | None:
    """Best-effort line of a dotted key in a TOML file, for error messages."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    header = None
    for i, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("["):
            header = line.strip("[]").strip()
            continue
        key = line.split("=", 1)[0].strip() if "=" in line else None
        if key is None:
            continue
        if len(section) >= 2 and header == ".".join(section[:-1]) and key == section[-1]:
            return i
        if len(section) == 1 and header is None and key == section[0]:
            return i
    for i, raw in enumerate(lines, 1):
        if raw.strip().strip("[]").strip() == ".".join(section):
            return i
    return None


def _has(data: Any, loc: tuple[str, ...]) -> bool:
    for part in loc:
        if isinstance(data, list) and part.isdigit():
            return True  # an item of a list that was given
        if not isinstance(data, dict):
            return False
        match = next((k for k in data if str(k).lower() == part.lower()), None)
        if match is None:
            return False
        data = data[match]
    return True


def _variable_gives(value: str | None, rest: tuple[str, ...]) -> bool:
    """Whether an environment variable's value gives the setting ``rest`` below the one it names.

    Lists and tables come as JSON (``LIMNER_PROVIDERS='{"sketch": {...}}'``); a value that is no JSON
    gives nothing below the setting it names.
    """
    if not rest:
        return True
    try:
        data = json.loads(value or "")
    except ValueError:
        return False
    return _has(data, rest)


def _variable_for(loc: tuple[str, ...], variables: dict[str, str | None]) -> str | None:
    """The ``LIMNER_...`` variable (as spelt in ``variables``) that gave the setting at ``loc``, if any.

    A setting comes from ``LIMNER_<FIELD>`` or, below a section or table, ``LIMNER_<FIELD>_<KEY>``; either
    may be JSON giving what is deeper (``LIMNER_PROVIDERS='{"sketch": {"concurrency": 0}}'`` gives
    ``providers.sketch.concurrency``). The longer name is merged over the shorter, so it is looked at first.
    """
    by_upper = {name.upper(): name for name in variables}
    for parts in (2, 1):
        if len(loc) < parts:
            continue
        name = by_upper.get("LIMNER_" + "_".join(loc[:parts]).upper())
        if name is not None and _variable_gives(variables[name], loc[parts:]):
            return name
    return None


def _source_of(loc: tuple[str, ...], overrides: dict[str, Any], root: Path, config_file: Path | None, *,
               default_means_builtin: bool = False) -> str:
    """Where a bad value came from, highest precedence first, so an error never blames the wrong file.

    A location deeper than any source gives (pydantic adds the branch of a union to it) is looked up again
    one part shorter. ``default_means_builtin``: a setting no source gives is a built-in default
    (``settings``), not limner.toml's.
    """
    env = dict(os.environ)
    dotenv = project_dotenv(root)
    toml = _toml_data_of(config_file)
    for end in range(len(loc), 0, -1):
        part = loc[:end]
        if _has(overrides, part):
            return "command-line option"
        name = _variable_for(part, env)
        if name is not None:
            return f"environment variable {name}"
        name = _variable_for(part, dotenv)
        if name is not None:
            return f"{root / '.env'}: {name}"
        if config_file and _has(toml, part):
            break
    else:
        if default_means_builtin:
            return "settings"
    if config_file:
        # an item of a list (``generate.widths.1``) is on its list's line
        line = next((found for end in range(len(loc), 0, -1) if (found := _toml_line(config_file, loc[:end]))), None)
        return f"{config_file}:{line}" if line else str(config_file)
    return "settings"


def _toml_data_of(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {}
    try:
        return _read_toml(config_file)
    except ConfigError:  # pragma: no cover - it was read a moment ago
        return {}


_SETTINGS_ERROR = re.compile(r'field "(?P<field>[^"]+)" from source "(?P<source>[^"]+)"')


def _not_json(exc: SettingsError, root: Path) -> str:
    """``environment variable LIMNER_...: setting '...': not valid JSON ...`` for a variable (or a line of
    ``.env``) that gives a list or table but holds no JSON: pydantic-settings says only which field."""
    found = _SETTINGS_ERROR.search(str(exc))
    field_name = found["field"] if found else ""
    from_dotenv = bool(found) and "DotEnv" in found["source"]
    variables: dict[str, str | None] = dict(project_dotenv(root)) if from_dotenv else dict(os.environ)
    cause = exc.__cause__
    stem = f"LIMNER_{field_name}".upper()
    named = [name for name in variables if name.upper() == stem or name.upper().startswith(stem + "_")]
    # the variable whose text failed to decode; else those that are no JSON
    bad = [name for name in named if isinstance(cause, json.JSONDecodeError) and variables[name] == cause.doc]
    if not bad:
        bad = [name for name in named if not _is_json(variables[name])] or named
    name = bad[0] if bad else stem
    where = f"{root / '.env'}: {name}" if from_dotenv else f"environment variable {name}"
    rest = name[len(stem) + 1:].lower() if len(name) > len(stem) else ""
    setting = f"{field_name}.{rest}" if rest else field_name
    why = f"{cause.msg} at column {cause.colno}" if isinstance(cause, json.JSONDecodeError) else str(cause or exc)
    if (long := re.search(r"value has (\d+) digits", why)) is not None:  # int() of an integer too long to read
        return (f"{where}: setting {setting!r}: a number of {int(long[1]):,} digits: more than the "
                f"{sys.get_int_max_str_digits():,} digits an integer may have")
    return (f"{where}: setting {setting!r}: not valid JSON ({why}); lists and tables are given as JSON, "
            """e.g. '[480, 1024]' or '{"medieval": "oil-painting"}' (see docs/configuration.md)""")


def _is_json(value: str | None) -> bool:
    try:
        json.loads(value or "")
    except ValueError:
        return False
    return True


def _fields_at(path: tuple[str, ...]) -> list[str]:
    """The setting names a section at ``path`` takes (``("generate",)`` -> concurrency, budget_usd...)."""
    model: type[BaseModel] = Settings
    for part in path:
        field = model.model_fields.get(part)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


#: what leaving out a number setting whose default is none means, for the error refusing inf or nan in it
_LEFT_OUT = {"budget_usd": "no cap", "rate_limit_per_minute": "the provider's own limit (none for most)",
             "timeout_s": "generate.call_timeout_s", "price_usd": "the provider's price table"}


def _field_at(loc: tuple[str, ...]) -> Any:
    """The declared field at ``loc`` (``("providers", "replicate", "timeout_s")`` included), or None."""
    import typing

    model: type[BaseModel] = Settings
    parts = list(loc)
    while parts:
        field = model.model_fields.get(parts.pop(0))
        if field is None or not parts:
            return field
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:  # [providers.NAME]: the name, then the table's fields
            annotation = typing.get_args(annotation)[1]
            parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return None


def _not_finite(loc: tuple[str, ...], value: Any) -> str:
    """Why inf or nan is refused where a setting wants a number: each is "no number" to a cap, a deadline or
    a price (``budget_usd = inf`` read as no cap, ``call_timeout_s = inf`` as no deadline, a price as an infinite
    spend that JSON cannot hold); the way to ask for what it meant is to leave the setting out."""
    try:
        shown = str(float(value))  # inf, -inf or nan, however it was spelt (1e400, "Infinity", NaN)
    except (TypeError, ValueError):
        shown = "a number that is not finite"
    field = _field_at(loc)
    if field is None:  # a provider's own option (poll_interval_s, cost_per_hour_usd, ...)
        left_out = "the provider's default"
    elif field.default is None:
        left_out = _LEFT_OUT.get(loc[-1], "none")
    else:
        left_out = f"the default, {field.default:g}"
    return f"must be a finite number, got {shown}; leave it out for {left_out}"


def _non_finite_options(settings: Settings) -> list[tuple[tuple[str, ...], float]]:
    """Each inf or nan in a provider's own options (``[providers.fal] max_wait_s = inf``; in nested tables and
    lists too), which ``ProviderSettings`` passes on unchecked: where, and the value."""
    import math

    found: list[tuple[tuple[str, ...], float]] = []

    def walk(value: Any, loc: tuple[str, ...], depth: int) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            found.append((loc, value))
        elif depth < 20 and isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*loc, str(key)), depth + 1)
        elif depth < 20 and isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*loc, str(i)), depth + 1)

    for name, conf in settings.providers.items():
        for key, value in (conf.model_extra or {}).items():
            walk(value, ("providers", name, key), 0)
    return found


def _not_a_file(path: Path) -> str | None:
    """Why ``path``, which is there, is no configuration file (a folder, a link to nothing); None when nothing
    is there."""
    if path.is_dir():
        return "a folder, not a file"
    if path.is_symlink() and not path.exists():
        return f"a link to {os.readlink(path)}, which does not exist"
    if path.exists() and not path.is_file():
        return "not a regular file"
    return None


def load_settings(
    config: str | Path | None = None,
    *,
    project_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load settings for a project.

    ``config`` is a path to ``limner.toml``; its folder is the project directory.
    Without it, ``./limner.toml`` is used when present (the project is then the
    current directory) and built-in defaults otherwise.
    """
    if config is not None:
        given = Path(config).expanduser()
        config_file: Path | None = given.resolve()
        if not config_file.is_file():
            if (why := _not_a_file(given)) is not None:
                raise ConfigError(f"{config}: {why}", hint=f"--config names the project's {CONFIG_FILENAME}")
            raise ConfigError(f"{config}: configuration file not found", hint="run `limner init` to create one")
        root = config_file.parent
    else:
        root = Path(project_dir or os.getcwd()).resolve()
        candidate = root / CONFIG_FILENAME
        config_file = candidate if candidate.is_file() else None
        if config_file is None and (why := _not_a_file(candidate)) is not None:  # not passed over for the defaults
            raise ConfigError(f"{candidate}: {why}", hint=f"the project's settings are the file {CONFIG_FILENAME}")
    data = _read_toml(config_file) if config_file else {}
    typed: dict[tuple[str, ...], str] = {}  # values of limner.toml of a type their setting does not take
    if data:
        from limner.config.toml_types import type_problems

        typed = {loc: f"{_source_of(loc, {}, root, config_file)}: setting {'.'.join(loc)!r}: {msg}"
                 for loc, msg in type_problems(data, Settings)}
    project_dotenv(root)  # .env that is not UTF-8 is reported naming its line, before pydantic-settings reads it
    # a subclass per load carries this file's values: no shared state between loads or threads
    loaded = type("Settings", (Settings,), {"_toml_data": data, "__module__": __name__})
    try:
        settings = loaded(
            _env_file=root / ".env" if (root / ".env").is_file() else None,
            **(overrides or {}),
        )
    except ValidationError as exc:
        messages = list(typed.values())
        for err in exc.errors():
            loc = tuple(str(x) for x in err["loc"])
            if loc in typed:
                continue  # said already, as the wrong TOML type it is
            where = _source_of(loc, overrides or {}, root, config_file)
            msg = err["msg"]
            if err["type"] == "extra_forbidden" and loc:  # a mistyped name, most of the time
                msg = f"unknown setting{did_you_mean(loc[-1], _fields_at(loc[:-1]))}; see docs/configuration.md"
            elif err["type"] == "finite_number":
                msg = _not_finite(loc, err["input"])
            messages.append(f"{where}: setting {'.'.join(loc)!r}: {msg}")
        raise ConfigError("invalid configuration; nothing was changed:\n  " + "\n  ".join(messages)) from None
    except SettingsError as exc:  # a list or table in a variable that is no JSON
        raise ConfigError("invalid configuration; nothing was changed:\n  " + _not_json(exc, root)) from None
    if typed:
        raise ConfigError("invalid configuration; nothing was changed:\n  " + "\n  ".join(typed.values()))
    known = set(Settings.model_fields) - {"project_dir", "config_file"}
    unknown = sorted(set(data) - known)
    if unknown:  # each on its line, as an unknown name inside a section is
        lines = {name: _toml_line(config_file, (name,)) for name in unknown} if config_file else {}
        said = [f"{config_file}{f':{lines[name]}' if lines.get(name) else ''}: unknown setting {name!r}"
                f"{did_you_mean(name, known)}; see docs/configuration.md" for name in unknown]
        raise ConfigError("invalid configuration; nothing was changed:\n  " + "\n  ".join(said))
    not_finite = _non_finite_options(settings)
    if not_finite:  # a provider's own option, passed on as it is: inf and nan are no numbers here either
        said = [f"{_source_of(loc, overrides or {}, root, config_file)}: setting {'.'.join(loc)!r}: "
                f"{_not_finite(loc, value)}" for loc, value in not_finite]
        raise ConfigError("invalid configuration; nothing was changed:\n  " + "\n  ".join(said))
    settings.project_dir = root
    settings.config_file = config_file
    settings._overrides = dict(overrides or {})
    return settings
