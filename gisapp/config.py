"""Settings: ``GISAPP_*`` environment variables, overridable per app."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from gisapp.domain import Calendar

log = logging.getLogger("gisapp")

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
#: Running from a source checkout (its pyproject.toml beside the package), not from an installed wheel.
CHECKOUT = (ROOT / "pyproject.toml").is_file()
#: Where the store and the accounts live by default: the checkout's layers/, else the working folder's layers/
#: (an installed package's ROOT is site-packages, no place for data).
DATA_DIR = (ROOT if CHECKOUT else Path.cwd()) / "layers"
DEFAULT_STORE = DATA_DIR / "camle.gpkg"


def resource_dir(name: str) -> Path:
    """The folder ``name`` shipped with gisapp (``templates``, ``seeds``): in the package, else at a checkout's top.

    A wheel carries them as ``gisapp/templates`` and ``gisapp/seeds``; a checkout keeps them at ROOT.
    """
    installed = PACKAGE / name
    return ROOT / name if CHECKOUT and not installed.is_dir() else installed


#: Setting name → (environment variable, default, meaning) — the README lists these.
SETTINGS = {
    "STORE": ("GISAPP_STORE", str(DEFAULT_STORE), "GeoPackage path or postgresql:// URL of the store"),
    "BASEMAP": ("GISAPP_BASEMAP", "none", "basemap: none, osm, or a tile URL template ({z}/{x}/{y}) or WMS URL"),
    "LANG": ("GISAPP_LANG", "vi", "default interface language: vi or en"),
    "WEEKEND": ("GISAPP_WEEKEND", "Sat,Sun", "weekend days for working-day deadlines"),
    "HOLIDAYS": ("GISAPP_HOLIDAYS", "",
                 "holidays: ISO dates comma-separated, or a file of them (default: built-in VN list)"),
    "SECRET_KEY": ("GISAPP_SECRET_KEY", "", "key that signs session cookies (required in production)"),
    "MAX_ITEMS": ("GISAPP_MAX_ITEMS", "10000", "largest page the API returns"),
    "ACCOUNTS": ("GISAPP_ACCOUNTS", str(DATA_DIR / "accounts.sqlite"),
                 "SQLite file of staff accounts and the audit log"),
    "ENV": ("GISAPP_ENV", "development",
            "development or production (production refuses to start without a secret key of 32 bytes or more)"),
    "MAX_UPLOAD_MB": ("GISAPP_MAX_UPLOAD_MB", "50", "largest file the upload page accepts, in MB"),
    "TILE_CACHE_MB": ("GISAPP_TILE_CACHE_MB", "256",
                      "memory per server process for recently served vector tiles, in MB (0: none)"),
    "TILE_DIR": ("GISAPP_TILE_DIR", str(Path(tempfile.gettempdir()) / f"gisapp-tiles-{os.getuid()}"),
                 "folder of vector tiles shared by the server's processes, rendered after each write (none: off)"),
    "TILE_WARM": ("GISAPP_TILE_WARM", "14-17", "zoom levels whose unfiltered tiles are rendered after each write "
                  "(e.g. 14-17, 14,15; none: only on request)"),
    "PROXIES": ("GISAPP_PROXIES", "0", "how many reverse proxies stand before the app; their X-Forwarded-For and "
                "X-Forwarded-Proto headers are believed (0: none, the client's own address counts)"),
    "SECURE_COOKIES": ("GISAPP_SECURE_COOKIES", "auto", "auto: the session cookie is Secure when the request came "
                       "over HTTPS (as the proxy says); always: Secure on every response"),
    "BASE_URL": ("GISAPP_BASE_URL", "", "public URL of the app (e.g. https://gis.example.vn/gisapp): every absolute "
                 "link (API, TileJSON) starts with it instead of the request's Host"),
    "TRUSTED_HOSTS": ("GISAPP_TRUSTED_HOSTS", "", "host names the app answers to, comma-separated (.name: its "
                      "subdomains too; *: any); default: the base URL's host, localhost and 127.0.0.1"),
    "UPLOADS": ("GISAPP_UPLOADS", str(Path(tempfile.gettempdir()) / "gisapp-uploads"),
                "folder where uploaded files wait for confirmation (kept a day at most)"),
    "MAX_UNPACKED_MB": ("GISAPP_MAX_UNPACKED_MB", "500", "most an uploaded zip's dataset or XLSX workbook may "
                        "unpack to, in MB"),
    "MAX_UPLOAD_FEATURES": ("GISAPP_MAX_UPLOAD_FEATURES", "500000", "most features (or table rows) an uploaded "
                            "file may hold"),
    "IMPORT_MEMORY_MB": ("GISAPP_IMPORT_MEMORY_MB", "4096", "address space of the child process that checks or "
                         "imports an upload, in MB"),
    "IMPORT_SECONDS": ("GISAPP_IMPORT_SECONDS", "600", "time the child process that checks or imports an upload "
                       "may take, in seconds"),
    "UPLOAD_QUOTA_MB": ("GISAPP_UPLOAD_QUOTA_MB", "200", "uploads one officer may have waiting for confirmation, "
                        "in MB"),
    "UPLOADS_TOTAL_MB": ("GISAPP_UPLOADS_TOTAL_MB", "2000", "uploads all officers together may have waiting for "
                         "confirmation, in MB"),
    "CHECK_MAX_AREA_M2": ("GISAPP_CHECK_MAX_AREA_M2", "500", "largest sidewalk occupancy the check accepts, in m²"),
    "CHECK_MAX_DAYS": ("GISAPP_CHECK_MAX_DAYS", "365", "longest period of a sidewalk occupancy the check accepts, "
                       "in days"),
    "FEE_TABLE": ("GISAPP_FEE_TABLE", "", "CSV fee table of sidewalk use (VND per m² per day by street class and "
                  "purpose; default: the shipped EXAMPLE table layers/fees_example.csv)"),
}

#: Vector tiles exist from this zoom level (below it the map shows per-ward counts) …
TILE_MIN_ZOOM = 14
#: … and TileJSON announces them to this one (clients over-zoom beyond: a tile unit is ~4 cm at z18).
TILE_MAX_ZOOM = 18

#: The basemap's former variable, still read (with a warning) when GISAPP_BASEMAP is not set.
OLD_BASEMAP_VARIABLE = "GISAPP_TILES"


class ConfigError(ValueError):
    """A setting that prevents the app from starting; the message says which."""


def load_config(overrides: dict | None = None, environ=None) -> dict:
    """The app's settings: defaults, then the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    config = {name: env.get(var) or default for name, (var, default, _) in SETTINGS.items()}
    if env.get(OLD_BASEMAP_VARIABLE) and not env.get(SETTINGS["BASEMAP"][0]):
        log.warning("%s is deprecated (it meant the basemap, not the vector tiles): use GISAPP_BASEMAP",
                    OLD_BASEMAP_VARIABLE)
        config["BASEMAP"] = env[OLD_BASEMAP_VARIABLE]
    for name in ("MAX_ITEMS", "MAX_UPLOAD_MB", "TILE_CACHE_MB", "PROXIES", "MAX_UNPACKED_MB", "MAX_UPLOAD_FEATURES",
                 "IMPORT_MEMORY_MB", "IMPORT_SECONDS", "UPLOAD_QUOTA_MB", "UPLOADS_TOTAL_MB", "CHECK_MAX_DAYS"):
        try:
            config[name] = int(config[name])
        except ValueError:
            raise ConfigError(f"{SETTINGS[name][0]} must be a whole number, not {config[name]!r}") from None
    try:
        config["CHECK_MAX_AREA_M2"] = float(config["CHECK_MAX_AREA_M2"])
    except ValueError:
        raise ConfigError(f"GISAPP_CHECK_MAX_AREA_M2 must be a number, not {config['CHECK_MAX_AREA_M2']!r}") from None
    config.update(overrides or {})
    if not config["FEE_TABLE"]:
        config["FEE_TABLE"] = str(resource_dir("layers") / "fees_example.csv")
    if isinstance(config["TILE_WARM"], str):
        try:
            config["TILE_WARM"] = parse_zooms(config["TILE_WARM"])
        except ValueError as err:
            raise ConfigError(f"GISAPP_TILE_WARM: {err}") from None
    if str(config["TILE_DIR"]).strip().lower() in ("", "none"):
        config["TILE_DIR"] = None
    _check_security(config)
    hosts_given = bool(config["TRUSTED_HOSTS"]) or config["TRUSTED_HOSTS"] is None
    config["BASE_URL"] = parse_base_url(config["BASE_URL"])
    config["TRUSTED_HOSTS"] = parse_trusted_hosts(config["TRUSTED_HOSTS"], config["BASE_URL"])
    if config["ENV"] == "production" and not (config["BASE_URL"] or hosts_given):
        raise ConfigError("GISAPP_ENV=production needs GISAPP_BASE_URL or GISAPP_TRUSTED_HOSTS: links and the "
                          "accepted Host headers must not come from the request alone")
    config["CALENDAR"] = config.get("CALENDAR") or Calendar.from_settings(config["WEEKEND"], config["HOLIDAYS"])
    return config


def parse_zooms(text: str) -> tuple[int, ...]:
    """Zoom levels to pre-render: ``"14-17"``, ``"14,15"`` or ``"none"`` (each at least :data:`TILE_MIN_ZOOM`)."""
    text = (text or "").strip().lower()
    if text in ("", "none", "0"):
        return ()
    zooms: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a zoom level or range (e.g. 14-17)") from None
        if not TILE_MIN_ZOOM <= lo <= hi <= TILE_MAX_ZOOM:
            raise ValueError(f"zoom levels {part.strip()!r} are outside {TILE_MIN_ZOOM}–{TILE_MAX_ZOOM}")
        zooms.update(range(lo, hi + 1))
    return tuple(sorted(zooms))


#: The shortest secret key production accepts: a session cookie's signature is only as strong as its key.
MIN_SECRET_BYTES = 32


def _check_security(config: dict) -> None:
    """Refuse proxy and cookie settings that make no sense, and a missing or short key in production."""
    if config["PROXIES"] < 0:
        raise ConfigError(f"GISAPP_PROXIES must be 0 or more, not {config['PROXIES']}")
    if config["SECURE_COOKIES"] not in ("auto", "always"):
        raise ConfigError(f"GISAPP_SECURE_COOKIES must be auto or always, not {config['SECURE_COOKIES']!r}")
    if config["ENV"] != "production":
        return
    if not config["SECRET_KEY"]:
        raise ConfigError("GISAPP_SECRET_KEY must be set when GISAPP_ENV=production")
    key = config["SECRET_KEY"]
    size = len(key if isinstance(key, bytes) else str(key).encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise ConfigError(f"GISAPP_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes when GISAPP_ENV=production "
                          f"(it has {size}); make one with: python -c 'import secrets; print(secrets.token_hex(32))'")
#: Host names a development server answers to without GISAPP_TRUSTED_HOSTS.
LOCAL_HOSTS = ["localhost", "127.0.0.1"]


def parse_base_url(text: str | None) -> str | None:
    """``GISAPP_BASE_URL`` without its trailing slash (``None`` when unset); an http(s) URL without query."""
    text = (text or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"GISAPP_BASE_URL must be an http(s) URL such as https://gis.example.vn/gisapp, not {text!r}")
    return text.rstrip("/")


def parse_trusted_hosts(value, base_url: str | None) -> list[str] | None:
    """The host names Flask accepts (its ``TRUSTED_HOSTS``); ``None`` (any) for ``*``.

    Unset: the base URL's host (when set), ``localhost`` and ``127.0.0.1``.
    """
    if value is None or isinstance(value, (list, tuple)):
        return None if value is None else list(value)
    names = [name.strip().lower() for name in str(value).split(",") if name.strip()]
    if names == ["*"]:
        return None
    if names:
        return names
    base_host = urlsplit(base_url).hostname if base_url else None
    return ([base_host] if base_host else []) + LOCAL_HOSTS
