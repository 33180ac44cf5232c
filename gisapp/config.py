"""Settings: ``GISAPP_*`` environment variables, overridable per app."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gisapp.domain import Calendar

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = ROOT / "layers" / "camle.gpkg"

#: Setting name → (environment variable, default, meaning) — the README lists these.
SETTINGS = {
    "STORE": ("GISAPP_STORE", str(DEFAULT_STORE), "GeoPackage path or postgresql:// URL of the store"),
    "TILES": ("GISAPP_TILES", "none", "basemap: none, osm, or a tile URL template ({z}/{x}/{y}) or WMS URL"),
    "LANG": ("GISAPP_LANG", "vi", "default interface language: vi or en"),
    "WEEKEND": ("GISAPP_WEEKEND", "Sat,Sun", "weekend days for working-day deadlines"),
    "HOLIDAYS": ("GISAPP_HOLIDAYS", "", "holidays: ISO dates comma-separated, or a file of them (default: built-in VN list)"),
    "SECRET_KEY": ("GISAPP_SECRET_KEY", "", "key that signs session cookies (required in production)"),
    "MAX_ITEMS": ("GISAPP_MAX_ITEMS", "10000", "largest page the API returns"),
    "ACCOUNTS": ("GISAPP_ACCOUNTS", str(ROOT / "layers" / "accounts.sqlite"), "SQLite file of staff accounts and the audit log"),
    "ENV": ("GISAPP_ENV", "development", "development or production (production refuses to start without a secret key)"),
    "MAX_UPLOAD_MB": ("GISAPP_MAX_UPLOAD_MB", "50", "largest file the upload page accepts, in MB"),
    "TILE_CACHE_MB": ("GISAPP_TILE_CACHE_MB", "256", "memory per server process for recently served vector tiles, in MB (0: none)"),
    "TILE_DIR": ("GISAPP_TILE_DIR", str(Path(tempfile.gettempdir()) / f"gisapp-tiles-{os.getuid()}"),
                 "folder of vector tiles shared by the server's processes, rendered after each write (none: off)"),
    "TILE_WARM": ("GISAPP_TILE_WARM", "14-17", "zoom levels whose unfiltered tiles are rendered after each write "
                  "(e.g. 14-17, 14,15; none: only on request)"),
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
}


class ConfigError(ValueError):
    """A setting that prevents the app from starting; the message says which."""


def load_config(overrides: dict | None = None, environ=None) -> dict:
    """The app's settings: defaults, then the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    config = {name: env.get(var) or default for name, (var, default, _) in SETTINGS.items()}
    for name in ("MAX_ITEMS", "MAX_UPLOAD_MB", "TILE_CACHE_MB", "MAX_UNPACKED_MB", "MAX_UPLOAD_FEATURES",
                 "IMPORT_MEMORY_MB", "IMPORT_SECONDS", "UPLOAD_QUOTA_MB", "UPLOADS_TOTAL_MB"):
        try:
            config[name] = int(config[name])
        except ValueError:
            raise ConfigError(f"{SETTINGS[name][0]} must be a whole number, not {config[name]!r}") from None
    config.update(overrides or {})
    if isinstance(config["TILE_WARM"], str):
        from gisapp.tile_disk import parse_zooms

        try:
            config["TILE_WARM"] = parse_zooms(config["TILE_WARM"])
        except ValueError as err:
            raise ConfigError(f"GISAPP_TILE_WARM: {err}") from None
    if str(config["TILE_DIR"]).strip().lower() in ("", "none"):
        config["TILE_DIR"] = None
    if config["ENV"] == "production" and not config["SECRET_KEY"]:
        raise ConfigError("GISAPP_SECRET_KEY must be set when GISAPP_ENV=production")
    config["CALENDAR"] = config.get("CALENDAR") or Calendar.from_settings(config["WEEKEND"], config["HOLIDAYS"])
    return config
