"""The provider contract: an async call from a request to image bytes.

A provider is a class with a ``name``, its :class:`Capabilities`, and an async
``generate(request) -> GenerationResult``. It raises only the typed errors of
:mod:`limner.providers.errors`. Providers are registered through the plugin
hook ``register_providers`` (see :mod:`limner.plugins`), built-ins included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

from limner.providers.errors import AuthFailed, ProviderError
from limner.urls import Redactor, control_characters, unsendable_secret


#: the ``[providers.<name>]`` settings every provider takes, read by Limner itself (the fields of
#: ``limner.config.settings.ProviderSettings``): a provider's :attr:`Provider.accepted_settings` need not list them
COMMON_SETTINGS: frozenset[str] = frozenset({"model", "concurrency", "rate_limit_per_minute", "timeout_s", "price_usd"})


_slot_release: ContextVar[Callable[[], None] | None] = ContextVar("limner_slot_release", default=None)


def release_slot() -> None:
    """Called by a provider once the remote work is done and only fetching the output is left:
    the runner gives the concurrency slot to the next call (providers' limits count running
    generations, not downloads). Calling it outside a run, or twice, does nothing."""
    release = _slot_release.get()
    if release is not None:
        release()


_call_id_sink: ContextVar[Callable[[str], None] | None] = ContextVar("limner_call_id_sink", default=None)


def report_call_id(external_id: str) -> None:
    """Called by a provider as soon as the service has named the paid call (a prediction or job id),
    before waiting on it: the runner writes it into the ledger at once, so a failed download, a timeout or
    a killed process is followed by :meth:`Provider.fetch_known` with this id instead of a new paid call.
    A provider that reports ids must implement ``fetch_known``. Outside a run it does nothing."""
    sink = _call_id_sink.get()
    if sink is not None and external_id:
        sink(str(external_id))


_call_deadline: ContextVar[float | None] = ContextVar("limner_call_deadline", default=None)


def time_left() -> float | None:
    """Seconds left before the runner gives up on the current call (its deadline, ``[generate] call_timeout_s``
    or the provider's ``timeout_s``), or None outside a run. A provider that asks a service to hold its answer
    (Replicate's ``Prefer: wait``) keeps the hold inside it: a call cut before the service named it cannot be
    asked about by id."""
    deadline = _call_deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@contextmanager
def call_deadline_in(seconds: float) -> Iterator[None]:
    """The runner's side of :func:`time_left`: inside the block, the call must end within ``seconds``."""
    token = _call_deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _call_deadline.reset(token)


@contextmanager
def slot_released_by(release: Callable[[], None]) -> Iterator[None]:
    """The runner's side of :func:`release_slot`: inside the block (and the tasks it starts),
    ``release_slot()`` calls ``release``."""
    token = _slot_release.set(release)
    try:
        yield
    finally:
        _slot_release.reset(token)


@contextmanager
def call_ids_to(sink: Callable[[str], None]) -> Iterator[None]:
    """The runner's side of :func:`report_call_id`: inside the block (and the tasks it starts),
    ``report_call_id(id)`` calls ``sink(id)``."""
    token = _call_id_sink.set(sink)
    try:
        yield
    finally:
        _call_id_sink.reset(token)


@dataclass(frozen=True)
class GenerationRequest:
    """What the runner asks a provider for. Everything that shapes the image is here."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    model: str
    #: provider parameters from the style / entry (steps, guidance, ...)
    params: dict[str, Any] = field(default_factory=dict)
    #: catalogue context (id, title, year, era, ...) for providers that draw from it
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def aspect(self) -> str:
        from math import gcd

        g = gcd(self.width, self.height) or 1
        return f"{self.width // g}:{self.height // g}"


@dataclass(frozen=True)
class GenerationResult:
    """What a provider answers: the image bytes and what the call cost."""

    data: bytes
    seed: int
    cost_usd: float = 0.0
    model: str = ""
    #: anything the provider reports worth keeping (prediction id, timings, ...); no secrets
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KnownCall:
    """What :meth:`Provider.fetch_known` found out about a call made earlier (by id):

    * ``done``: it succeeded; ``result`` holds the image, fetched again (no new charge);
    * ``failed``: it ended without an image; ``error`` says why, ``billed_usd`` what it cost;
    * ``gone``: the provider no longer knows it (expired, canceled) or this provider cannot look calls up
      (``unsupported``); ``billed_usd`` when known (None: keep the estimate). A new paid call is then fair.
    """

    state: str
    result: GenerationResult | None = None
    error: ProviderError | None = None
    billed_usd: float | None = None

    @classmethod
    def unsupported(cls) -> KnownCall:
        return cls("unsupported")


@dataclass(frozen=True)
class Price:
    """A list price: per image or per megapixel, with the date and page it was read from."""

    usd_per_image: float | None = None
    usd_per_megapixel: float | None = None
    as_of: str = ""
    source: str = ""
    #: pixels in the megapixel a provider bills by whole units (``2**20``: 1024 x 1024 is one), rounding up;
    #: None: billed in proportion, a megapixel being a million pixels
    whole_megapixels_of: int | None = None

    def cost(self, width: int = 1024, height: int = 1024) -> float:
        if self.usd_per_image is not None:
            return self.usd_per_image
        if self.usd_per_megapixel is not None:
            if self.whole_megapixels_of:
                return round(self.usd_per_megapixel * math.ceil(width * height / self.whole_megapixels_of), 6)
            return round(self.usd_per_megapixel * width * height / 1_000_000, 6)
        return 0.0


@dataclass(frozen=True)
class Capabilities:
    supports_seed: bool = True
    supports_negative_prompt: bool = True
    #: the provider's default concurrency, answered by ``Provider.concurrency_hint()`` (None:
    #: ``[generate] concurrency``); ``[providers.<name>] concurrency`` wins
    max_concurrency: int | None = None
    rate_limit_per_minute: float | None = None
    #: largest side in pixels the provider accepts
    max_side: int = 2048
    #: sizes are snapped to multiples of this
    size_multiple: int = 16


def redact_value(value: Any, redact: Callable[[str], str], depth: int = 0) -> Any:
    """``value`` with every string in it (nested dicts, lists and tuples included) passed through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {redact_value(k, redact, depth + 1): redact_value(v, redact, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, redact, depth + 1) for v in value)
    return value


def redact_error(exc: ProviderError, redact: Callable[[str], str]) -> None:
    """Remove secrets from a provider error's message, in place (``str``, ``repr`` and ``args``)."""
    exc.message = redact(exc.message)
    exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)


def _redacted_result(provider: Provider, result: GenerationResult) -> GenerationResult:
    return dataclasses.replace(result, model=provider._redact(result.model),
                               metadata=redact_value(result.metadata, provider._redact))


def _redacting(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``generate``/``check``: every provider error raised, and every string of a result's metadata,
    passes through the provider's :meth:`Provider._redact` before it can be logged or stored."""
    if getattr(method, "_limner_redacting", False):
        return method

    @functools.wraps(method)
    async def wrapper(self: Provider, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await method(self, *args, **kwargs)
        except ProviderError as exc:
            redact_error(exc, self._redact)
            raise
        if isinstance(result, GenerationResult):
            result = _redacted_result(self, result)
        elif isinstance(result, KnownCall):
            if result.error is not None:
                redact_error(result.error, self._redact)
            if result.result is not None:
                result = dataclasses.replace(result, result=_redacted_result(self, result.result))
        elif isinstance(result, str):
            result = self._redact(result)
        return result

    wrapper._limner_redacting = True  # type: ignore[attr-defined]
    return wrapper


class Provider(ABC):
    """Base class for providers. Subclasses set ``name`` and implement ``generate``.

    Every subclass's ``generate`` and ``check`` are wrapped so that the messages of the provider errors
    they raise, the strings of a result's metadata and ``check``'s answer are redacted
    (:meth:`_secret_values`) before anything logs or stores them: text copied from a provider's answer
    (a failed prediction's ``error``, an error body) may echo a token."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("generate", "check", "fetch_known"):
            method = cls.__dict__.get(attr)
            if method is not None and callable(method) and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, attr, _redacting(method))

    name: ClassVar[str]
    default_model: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: USD per image when a model has no entry in ``prices`` (self-hosted: 0)
    price_usd: ClassVar[float] = 0.0
    #: list prices per model (see each provider module for as_of and source)
    prices: ClassVar[dict[str, Price]] = {}
    #: environment variables this provider needs (names only, never values)
    required_env: ClassVar[tuple[str, ...]] = ()
    #: optional environment variables holding credentials (a proxy's token, a hub token), checked like
    #: ``required_env`` when set: a value with a line break in it is refused before any call
    credential_env: ClassVar[tuple[str, ...]] = ()
    #: true when the provider needs neither network nor GPU (used as default)
    offline: ClassVar[bool] = False
    #: ``[providers.<name>]`` settings that change the image (quality, workflow, sampler, ...): part of
    #: the fingerprint, so changing one makes the provider's entries stale
    image_settings: ClassVar[tuple[str, ...]] = ()
    #: the ``[providers.<name>]`` settings this provider reads besides :data:`COMMON_SETTINGS` (which every
    #: provider takes): any other key in its section is an error naming its line, with a "did you mean" (a
    #: misspelt ``concurency`` was passed on and never read). None: not declared, and every key is passed on
    #: as given (a plugin written before providers declared their settings keeps working)
    accepted_settings: ClassVar[frozenset[str] | None] = None
    #: True when the provider's concurrency counts the slots of this machine (a local GPU's devices), not of a
    #: service every worker shares: queue workers then keep it per worker, rather than across all of them
    concurrency_is_per_machine: ClassVar[bool] = False
    #: the IPTC digital source type written into every image's XMP: ``trainedAlgorithmicMedia`` (a
    #: trained model made it), or ``algorithmicMedia`` (code drew it without training data, as ``sketch``)
    digital_source_type: ClassVar[str] = "trainedAlgorithmicMedia"

    def __init__(self, *, model: str | None = None, settings: dict[str, Any] | None = None) -> None:
        self.model = model or self.default_model
        self.settings = dict(settings or {})

    @abstractmethod
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Produce one image. Raise only :mod:`limner.providers.errors` types."""

    async def fetch_known(self, external_id: str, request: GenerationRequest) -> KnownCall:
        """Look up a call made earlier whose id this provider reported (:func:`report_call_id`) and fetch its
        image again if it succeeded, waiting for it if it still runs, without paying again. The runner asks
        this, rather than calling ``generate``, after a failed download, a timeout, or a run killed while the
        call was out. Raise a retryable provider error when the provider cannot be asked right now.
        Default: ``KnownCall.unsupported()`` (a provider that never reports ids needs nothing more)."""
        return KnownCall.unsupported()

    async def find_unnamed(self, request: GenerationRequest, sent_after: dt.datetime,
                           sent_before: dt.datetime) -> list[str]:
        """The ids of calls made for ``request`` between ``sent_after`` and ``sent_before`` (UTC), closest first,
        for a call whose id never reached the ledger: the run was killed while the service held its answer
        (Replicate's ``Prefer: wait``), or while the create request was out. The runner takes the first id no
        ledger line has, and asks :meth:`fetch_known` about it instead of paying again; with none, the call is
        counted lost at its list price. Raise a retryable error when the service cannot be asked right now.
        Default: ``[]`` (the service cannot list its calls)."""
        return []

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this provider cannot run on this machine at all (an Apple-silicon-only backend on Linux), as a
        sentence; None when it can. A run asks before it writes or pays anything (exit 2), and ``limner
        providers`` shows it. Default: None."""
        return None

    async def prepare(self) -> None:
        """Make what a call needs that can fail without any request going out (an HTTP client, its TLS
        context, a host list). The runner awaits it before it writes a call's line in the ledger, so a
        failure here leaves no line for a call that was never made. Called before every call: make things
        once and return at once after. Raise :mod:`limner.providers.errors` types. Default: nothing."""
        return None

    async def aclose(self) -> None:
        """Release clients and connections. Called once a run's calls are done (and by ``limner doctor``
        after ``check``); a later ``generate`` must still work (connect again). Default: nothing."""
        return None

    def concurrency_hint(self) -> int | None:
        """How many calls this provider can usefully run at once, used when ``[providers.<name>]
        concurrency`` is unset; ``None``: no opinion (``[generate] concurrency`` applies). Default:
        ``capabilities.max_concurrency``; self-hosted providers answer one slot per host."""
        return self.capabilities.max_concurrency

    @classmethod
    def price_for(cls, model: str | None, width: int = 1024, height: int = 1024) -> float:
        """Estimated USD for one image of ``model`` (the per-model table, else ``price_usd``)."""
        price = cls.prices.get(model or cls.default_model)
        return price.cost(width, height) if price else float(cls.price_usd)

    @classmethod
    def estimate_usd(cls, model: str | None, width: int, height: int, *, params: Mapping[str, Any],
                     settings: Mapping[str, Any]) -> float:
        """What a plan reserves for one image under a spend cap: at least what the call will cost, for the
        entry's ``width`` x ``height`` with a style's ``params`` and the provider's ``image_settings`` (a
        quality that costs more). Default: :meth:`price_for`."""
        return cls.price_for(model, width, height)

    def secret(self, name: str) -> str | None:
        """A secret or endpoint from the environment or the project's .env (never from limner.toml)."""
        lookup = self.settings.get("_secret")
        return lookup(name) if callable(lookup) else (os.environ.get(name) or None)

    def _secret_values(self) -> Iterable[str | None]:
        """The secret values this provider holds, removed from its messages. Default: those of
        ``required_env``; adapters add theirs (a hosted key, a self-hosted token or URL password)."""
        return [self.secret(name) for name in self.required_env]

    def _redact(self, text: str) -> str:
        """``text`` with every secret of :meth:`_secret_values` replaced by ``[redacted]``."""
        try:
            secrets = list(self._secret_values())
        except Exception:  # noqa: BLE001 - a lookup that fails must not hide the original error
            secrets = []
        return Redactor(secrets)(text)

    async def check(self) -> str:
        """``limner doctor``: check credentials (and, where a provider implements it, reachability)
        without generating anything. Returns a short description; raises a provider error."""
        self.check_credentials()
        missing = self.missing_env()
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise AuthFailed(f"{self.name}: {', '.join(missing)} {verb} not set (environment or .env)")
        return "offline, nothing to check" if self.offline else "credentials present"

    def credential_names(self) -> list[str]:
        """The environment variables holding this provider's credentials: ``required_env``, then
        ``credential_env``."""
        return list(dict.fromkeys([*self.required_env, *self.credential_env]))

    def _credential_problems(self) -> list[str]:
        """The credentials that are set but cannot be sent, each as a sentence naming the variable (never its
        value): a line break, a tab or another control character in it (:func:`limner.urls.unsendable_secret`)."""
        found = (unsendable_secret(name, self.secret(name)) for name in self.credential_names())
        return [problem for problem in found if problem]

    def check_credentials(self) -> None:
        """``AuthFailed`` naming each credential that cannot be sent (:meth:`_credential_problems`): called
        before any request, so that the key never reaches an HTTP library whose error would show it."""
        problems = self._credential_problems()
        if problems:
            raise AuthFailed(f"{self.name}: " + "; ".join(problems))

    def missing_env(self) -> list[str]:
        """Required environment variables that are not set, and credentials set to a value that cannot be
        sent (``"NAME (it contains a line break; ...)"``): a run stops on either before any call."""
        missing = [name for name in self.required_env if not self.secret(name)]
        for name in self.credential_names():
            what = control_characters(self.secret(name))
            if what:
                missing.append(f"{name} (it contains {what}; fix it in .env or the environment)")
        return missing

    def __repr__(self) -> str:  # never show settings: they may hold secrets
        return f"<{type(self).__name__} name={self.name!r} model={self.model!r}>"
