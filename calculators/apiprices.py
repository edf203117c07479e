"""API prices from Pydantic's ``genai-prices`` database: the only module that imports ``genai_prices``.

The import is lazy (about 0.6 s and 60 MB for ~2,300 models; see benchmarks/README.md), so modules that
only need the overlay (``calculators.catalog``) stay light. What it offers:

- ``models()``: every model (provider id and name, model id and name, deprecated flag) for a picker;
- ``quote(model, provider="", batch=False)``: a model's $/M rates for a request shape: interactive or batch
  (the database's ``processing = batch`` variant), input, cache read, cache write and output, and the
  long-context tier (threshold and tier rates) where the vendor has one;
- ``data_info()``: which data is in use (package version, bundled or fetched, its date);
- ``update(url)``: fetch the newest data file (the URL genai-prices' own updater uses, or
  ``SELFHOST_PRICES_URL``), report what changed, keep it in the user cache dir
  (``SELFHOST_PRICES_DIR`` or platformdirs' user cache dir); offline the pinned data keeps working.

Data date: genai-prices carries no date inside its data; the bundled data's date is the PyPI upload time
of the pinned wheel (``PINNED_DATA_DATE``), and fetched data is dated by the day it was fetched.

Errors are ``PriceDataError`` (a ``ValueError``) with one line naming the model, provider or URL.

>>> q = quote("claude-sonnet-5-5")
>>> q.provider_id, q.base.input_usd_per_mtok, q.base.cached_input_usd_per_mtok, q.base.output_usd_per_mtok
('anthropic', 2.0, 0.1, 10.0)
>>> quote("claude-sonnet-5-5", batch=True).base.output_usd_per_mtok
5.0
>>> q = quote("gpt-6-sol")
>>> q.long_context_tokens, q.long.input_usd_per_mtok, q.long.output_usd_per_mtok
(272000, 4.0, 15.0)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "PINNED_VERSION",
    "PINNED_DATA_DATE",
    "DEFAULT_UPDATE_URL",
    "URL_ENV",
    "DIR_ENV",
    "PriceDataError",
    "DataInfo",
    "ModelEntry",
    "Rates",
    "Quote",
    "Change",
    "UpdateResult",
    "cache_dir",
    "data_info",
    "models",
    "search",
    "quote",
    "lookup",
    "update",
    "reload",
    "diff",
    "forget_update",
]

PINNED_VERSION = "0.2.3"  # requirements.txt pins genai-prices==0.2.3
PINNED_DATA_DATE = "2026-11-10"  # PyPI upload time of genai_prices-0.2.3-py3-none-any.whl (21:51 UTC)
DEFAULT_UPDATE_URL = (  # genai_prices.update_prices.DEFAULT_UPDATE_URL (a test pins the two equal)
    "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"
)
URL_ENV = "SELFHOST_PRICES_URL"
DIR_ENV = "SELFHOST_PRICES_DIR"
_DATA_FILE = "genai-prices-data.json"
_META_FILE = "genai-prices-meta.json"
MAX_DATA_BYTES = 64 * 1024 * 1024  # the v2 data file is a few MB


class PriceDataError(ValueError):
    """A model or provider the price data does not know, or price data that cannot be fetched or read."""


@dataclass(frozen=True)
class DataInfo:
    """The price data in use: ``origin`` is "bundled" (the pinned package's) or "fetched"."""

    version: str  # the installed genai-prices package
    origin: str
    date: str  # ISO date: PINNED_DATA_DATE for bundled data, the fetch day for fetched data
    url: str | None
    providers: int
    models: int
    note: str = ""  # why the fetched data was not used, if it was not

    @property
    def label(self) -> str:
        """One line for the page and the report, e.g. "genai-prices 0.2.3, bundled data of 2026-11-10"."""
        if self.origin == "fetched":
            return f"genai-prices {self.version}, data fetched {self.date}"
        return f"genai-prices {self.version}, bundled data of {self.date}"


@dataclass(frozen=True)
class ModelEntry:
    provider_id: str
    provider_name: str
    model_id: str
    name: str
    deprecated: bool

    @property
    def key(self) -> str:
        """``provider_id:model_id``, unique across the database (one model id is sold by many providers)."""
        return f"{self.provider_id}:{self.model_id}"

    @property
    def label(self) -> str:
        return f"{self.provider_name} · {self.name} ({self.model_id})" + (" [deprecated]" if self.deprecated else "")


@dataclass(frozen=True)
class Rates:
    """$ per million tokens. ``cached_input``: cache reads (the input price where the vendor has none);
    ``cache_write``: None where the vendor bills cache writes as input (or has no cache)."""

    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    cache_write_usd_per_mtok: float | None
    output_usd_per_mtok: float


@dataclass(frozen=True)
class Quote:
    """A model's rates for one request shape. ``long``: the rates for prompts over ``long_context_tokens``
    input tokens (the whole request is billed at them: the vendors' cliff model), None without a tier.
    ``batch`` says whether batch rates were applied; ``batch_available`` whether the data has them."""

    provider_id: str
    provider_name: str
    model_id: str
    model_name: str
    batch: bool
    batch_available: bool
    base: Rates
    long_context_tokens: int | None
    long: Rates | None
    deprecated: bool
    context_window: int | None
    data: DataInfo


@dataclass(frozen=True)
class Change:
    """One difference between two price data sets: ``kind`` is "added", "removed" or "changed"."""

    kind: str
    key: str  # provider_id:model_id
    detail: str


@dataclass(frozen=True)
class UpdateResult:
    info: DataInfo
    changes: tuple[Change, ...]
    path: Path


def cache_dir() -> Path:
    """Where fetched data is kept: ``$SELFHOST_PRICES_DIR``, else platformdirs' user cache dir."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_cache_dir("selfhost-vs-api", appauthor=False))


def _version() -> str:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:  # pragma: no cover - requirements.txt installs it
        return "not installed"


def _parse(raw: bytes) -> list[Any]:
    """Providers from a genai-prices v2 data file (a JSON array of providers)."""
    from genai_prices.types import _providers_from_raw  # noqa: PLC0415  (its updater's own parser)

    payload = json.loads(raw)
    if not isinstance(payload, list):
        raise ValueError("expected a JSON array of providers")
    return _providers_from_raw(payload)


@cache
def _state() -> tuple[Any, DataInfo]:
    """(a genai-prices DataSnapshot, its DataInfo): fetched data from the cache dir when it reads, else bundled."""
    from genai_prices import data_snapshot  # noqa: PLC0415

    note = ""
    path = cache_dir() / _DATA_FILE
    if path.is_file():
        try:
            meta = json.loads((cache_dir() / _META_FILE).read_text(encoding="utf-8"))
            providers = _parse(path.read_bytes())
            snap = data_snapshot.DataSnapshot(providers, from_auto_update=True)
            return snap, _info(providers, "fetched", str(meta["fetched"]), str(meta["url"]))
        except (OSError, ValueError, KeyError, TypeError) as e:  # pydantic's ValidationError is a ValueError
            note = f"fetched price data in {path} could not be read ({type(e).__name__}); using the bundled data"
    snap = data_snapshot.DataSnapshot(data_snapshot._bundled_snapshot().providers, from_auto_update=False)
    return snap, _info(snap.providers, "bundled", PINNED_DATA_DATE, None, note)


def _info(providers: list[Any], origin: str, day: str, url: str | None, note: str = "") -> DataInfo:
    version = _version()
    if origin == "bundled" and version != PINNED_VERSION:
        day = f"unknown (package {version}; {PINNED_DATA_DATE} was {PINNED_VERSION}'s)"
    return DataInfo(version, origin, day, url, len(providers), sum(len(p.models) for p in providers), note)


def reload() -> None:
    """Forget the loaded data (after ``update`` or a change of ``SELFHOST_PRICES_DIR``)."""
    _state.cache_clear()


def data_info() -> DataInfo:
    return _state()[1]


def models() -> tuple[ModelEntry, ...]:
    """Every model of every provider, in the database's order."""
    snap, _info_ = _state()
    return tuple(
        ModelEntry(p.id, p.name, m.id, m.name or m.id, bool(m.deprecated)) for p in snap.providers for m in p.models
    )


def search(text: str = "", limit: int | None = None) -> list[ModelEntry]:
    """Models whose provider or model id/name contains every word of ``text`` (case-insensitive).

    >>> search("anthropic sonnet 5-5")[0].key
    'anthropic:claude-sonnet-5-5'
    """
    words = text.lower().split()
    out = [
        e
        for e in models()
        if all(w in f"{e.provider_id} {e.provider_name} {e.model_id} {e.name}".lower() for w in words)
    ]
    return out if limit is None else out[:limit]


def _float(v: Any) -> float | None:
    """A Decimal price (the base of a tiered one) as float; None when absent."""
    if v is None:
        return None
    return float(v.base if hasattr(v, "tiers") else v)


def _tier(v: Any) -> tuple[int, float] | None:
    if v is None or not hasattr(v, "tiers") or not v.tiers:
        return None
    t = v.tiers[0]
    return int(t.start), float(t.price)


def _rates(price: Any, pick: Any) -> Rates | None:
    inp, out = pick(price.input_mtok), pick(price.output_mtok)
    if inp is None or out is None:
        return None
    cached = pick(price.cache_read_mtok)
    return Rates(inp, inp if cached is None else cached, pick(price.cache_write_mtok), out)


def _find(model: str, provider: str) -> tuple[Any, Any]:
    """(provider, model). With a provider: that provider's model of this exact id, else its matchers.
    Without: genai-prices' matchers (the vendor whose names match, e.g. "gpt-" -> openai), else the first
    provider that lists this exact id."""
    snap, _info_ = _state()

    def exact(only: str) -> tuple[Any, Any] | None:
        for p in snap.providers:
            if not only or p.id == only:
                for m in p.models:
                    if m.id == model:
                        return p, m
        return None

    found = exact(provider) if provider else None
    if found is None:
        try:
            found = snap.find_provider_model(model, None, provider or None, None)
        except LookupError:
            found = None if provider else exact("")
    if found is not None:
        return found
    where = f"provider {provider!r}" if provider else "any provider whose model names match it"
    hint = "" if provider else "; set api.provider (python -m calculators prices --search TEXT lists them)"
    raise PriceDataError(f"model {model!r} is not in the price data ({data_info().label}) for {where}{hint}")


def quote(model: str, provider: str = "", batch: bool = False, when: datetime | None = None) -> Quote:
    """The rates of ``model`` (a genai-prices id or any name its matchers accept) at ``provider`` ("" lets
    the database pick by the name), interactive or ``batch``, as the data has them on ``when`` (default now).

    Batch asked of a model without batch rates: the interactive rates, with ``batch=False`` on the Quote.
    A price with several tiers keeps the first one (no vendor in 0.2.3's text models has two).
    """
    p, m = _find(model, provider)
    when = when or datetime.now(tz=UTC)
    standard = m.get_prices(when)
    batched = m.get_prices(when, {"processing": "batch"})
    batch_available = batched != standard
    price = batched if batch and batch_available else standard
    base = _rates(price, _float)
    if base is None:
        raise PriceDataError(f"model {model!r} at {p.id!r} has no per-token input and output prices in the data")
    tier = _tier(price.input_mtok) or _tier(price.output_mtok)
    long = None
    if tier is not None:

        def at_tier(v: Any) -> float | None:
            t = _tier(v)
            return t[1] if t is not None and t[0] == tier[0] else _float(v)

        long = _rates(price, at_tier)
    return Quote(
        p.id, p.name, m.id, m.name or m.id, batch and batch_available, batch_available, base,
        None if tier is None else tier[0], long, bool(m.deprecated), m.context_window, data_info(),
    )


def lookup(model: str, provider: str = "", batch: bool = False) -> Quote:
    """``quote`` after our overlay (calculators/data/api_models.csv): an old catalog id maps to its
    genai-prices (provider, model); a row without a database model raises with its note.

    >>> lookup("claude-sonnet-4.6").model_id, lookup("groq-llama-3.3-70b").provider_id
    ('claude-sonnet-4-6', 'groq')
    """
    from calculators import catalog  # noqa: PLC0415

    ov = catalog.api_overlay().get(model)
    if ov is not None and ov.id != ov.model:
        if not ov.in_data:
            raise PriceDataError(f"{model!r} is not in the price data ({data_info().label}): {ov.notes}")
        return quote(ov.model, provider or ov.provider, batch)
    return quote(model, provider, batch)


def _price_map(providers: list[Any], when: datetime) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in providers:
        for m in p.models:
            try:
                pr = m.get_prices(when)
                out[f"{p.id}:{m.id}"] = " / ".join(
                    f"{name} {_fmt(getattr(pr, attr))}"
                    for name, attr in (("in", "input_mtok"), ("cache read", "cache_read_mtok"),
                                       ("cache write", "cache_write_mtok"), ("out", "output_mtok"))
                    if getattr(pr, attr) is not None
                )
            except (AttributeError, ValueError):  # a model priced per image or second only
                out[f"{p.id}:{m.id}"] = ""
    return out


def _fmt(v: Any) -> str:
    if hasattr(v, "tiers"):
        return f"{_fmt(v.base)} (+tiers)"
    return f"${Decimal(v).normalize():f}"


def diff(old: list[Any], new: list[Any], when: datetime | None = None) -> tuple[Change, ...]:
    """Models added, removed, or whose input/cache/output prices differ, between two provider lists."""
    when = when or datetime.now(tz=UTC)
    a, b = _price_map(old, when), _price_map(new, when)
    out = [Change("changed", k, f"{a[k]} -> {b[k]}") for k in b if k in a and a[k] != b[k]]
    out += [Change("added", k, b[k]) for k in b if k not in a]
    out += [Change("removed", k, a[k]) for k in a if k not in b]
    return tuple(out)


def update(url: str | None = None, timeout_s: float = 20.0) -> UpdateResult:
    """Fetch the newest data file, compare it with the data in use, store it in ``cache_dir()`` and use it.

    ``url``: default ``$SELFHOST_PRICES_URL``, else genai-prices' own update URL. Raises PriceDataError
    (naming the URL) when offline, on an HTTP error or when the file is not price data; the data in use
    is then unchanged.
    """
    import urllib.error  # noqa: PLC0415  (http.client and ssl: only when fetching)
    import urllib.request  # noqa: PLC0415

    url = url or os.environ.get(URL_ENV) or DEFAULT_UPDATE_URL
    if not url.startswith(("https://", "http://")):
        raise PriceDataError(f"price data URL must be http(s), got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 (scheme checked above)
            raw = r.read(MAX_DATA_BYTES + 1)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise PriceDataError(f"cannot fetch price data from {url}: {reason}; still using {data_info().label}") \
            from None
    if len(raw) > MAX_DATA_BYTES:
        raise PriceDataError(f"price data from {url} is over {MAX_DATA_BYTES // 2**20} MiB; not used")
    try:
        providers = _parse(raw)
    except ValueError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PriceDataError(f"{url} did not return genai-prices data ({first}); not used") from None
    old_snap, _old = _state()
    changes = diff(old_snap.providers, providers)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (_DATA_FILE + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(folder / _DATA_FILE)
    meta = {"url": url, "fetched": datetime.now(tz=UTC).date().isoformat(), "package": _version()}
    (folder / _META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    reload()
    return UpdateResult(data_info(), changes, folder / _DATA_FILE)


def forget_update() -> bool:
    """Delete fetched data (back to the bundled data); True if there was any."""
    found = False
    for name in (_DATA_FILE, _META_FILE):
        p = cache_dir() / name
        if p.exists():
            p.unlink()
            found = True
    reload()
    return found
