"""Serve folium's JavaScript and CSS dependencies from the app itself.

folium links Leaflet, jQuery, Bootstrap, Font Awesome, Leaflet.awesome-markers
and its plugins from public CDNs. The app has to work without internet access,
so copies of those files live in ``gisapp/static/vendor`` (see
``gisapp/static/vendor/PROVENANCE.md``) and this module points folium at them.

The vendored versions match folium 0.20's defaults; pin folium's minor version
so that its templates and these files stay in step.

Typical use, after every plugin has been added to the map::

    m = folium.Map(tiles=None, max_zoom=19)
    plugins.Fullscreen().add_to(m)
    localize(m)
    html = m.get_root().render()

Everything here works per instance: folium's module-level lists and class
attributes are never modified.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

VENDOR_PREFIX = "/static/vendor"
"""URL under which the Flask app serves ``gisapp/static/vendor``."""

VENDOR_DIR = Path(__file__).resolve().parent.parent / "static" / "vendor"
"""Directory holding the vendored files on disk."""

# Names are the ones folium 0.20 uses in folium.folium._default_js/_default_css
# (they are also the keys under which folium de-duplicates links in the page
# header). Paths are relative to VENDOR_DIR / VENDOR_PREFIX.
_DEFAULT_JS: tuple[tuple[str, str], ...] = (
    ("leaflet", "leaflet/leaflet.js"),
    ("jquery", "jquery/jquery.min.js"),
    ("bootstrap", "bootstrap/js/bootstrap.bundle.min.js"),
    ("awesome_markers", "leaflet-awesome-markers/leaflet.awesome-markers.js"),
)

# folium's "glyphicons_css" (Bootstrap 3 glyphicons from netdna) is dropped on
# purpose: Font Awesome covers the icons folium uses.
_DEFAULT_CSS: tuple[tuple[str, str], ...] = (
    ("leaflet_css", "leaflet/leaflet.css"),
    ("bootstrap_css", "bootstrap/css/bootstrap.min.css"),
    ("awesome_markers_font_css", "fontawesome-free/css/all.min.css"),
    ("awesome_markers_css", "leaflet-awesome-markers/leaflet.awesome-markers.css"),
    ("awesome_rotate_css", "awesome-rotate/leaflet.awesome.rotate.min.css"),
)

PLUGIN_ASSETS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "Fullscreen": (
        [("Control.Fullscreen.js", "leaflet.fullscreen/Control.FullScreen.js")],
        [("Control.FullScreen.css", "leaflet.fullscreen/Control.FullScreen.css")],
    ),
    "MeasureControl": (
        [("leaflet_measure_js", "leaflet-measure/leaflet-measure.min.js")],
        [("leaflet_measure_css", "leaflet-measure/leaflet-measure.css")],
    ),
    "MarkerCluster": (
        [("markerclusterjs", "leaflet.markercluster/leaflet.markercluster.js")],
        [
            ("markerclustercss", "leaflet.markercluster/MarkerCluster.css"),
            ("markerclusterdefaultcss", "leaflet.markercluster/MarkerCluster.Default.css"),
        ],
    ),
    "Draw": (
        [("leaflet_draw_js", "leaflet-draw/leaflet.draw.js")],
        [("leaflet_draw_css", "leaflet-draw/leaflet.draw.css")],
    ),
    "VectorGridProtobuf": (
        [("vectorGrid", "leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js")],
        [],
    ),
}
"""folium.plugins class name -> (js, css) lists of ``(name, path)`` pairs.

Names are the ones the plugin uses in its own ``default_js``/``default_css``;
paths are relative to the vendor directory (join them with a prefix through
:func:`plugin_assets`).
"""


def _join(prefix: str, path: str) -> str:
    """Join a URL prefix and a vendor-relative path with exactly one slash."""
    return prefix.rstrip("/") + "/" + path.lstrip("/")


def _with_prefix(pairs, prefix: str) -> list[tuple[str, str]]:
    """Return a new list of ``(name, url)`` pairs with ``prefix`` applied."""
    return [(name, _join(prefix, path)) for name, path in pairs]


def folium_default_js(prefix: str = VENDOR_PREFIX) -> list[tuple[str, str]]:
    """Local replacement for ``folium.folium._default_js`` (a fresh list)."""
    return _with_prefix(_DEFAULT_JS, prefix)


def folium_default_css(prefix: str = VENDOR_PREFIX) -> list[tuple[str, str]]:
    """Local replacement for ``folium.folium._default_css`` without glyphicons."""
    return _with_prefix(_DEFAULT_CSS, prefix)


def plugin_assets(
    class_name: str, prefix: str = VENDOR_PREFIX
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return fresh ``(js, css)`` URL lists for the plugin ``class_name``."""
    js, css = PLUGIN_ASSETS[class_name]
    return _with_prefix(js, prefix), _with_prefix(css, prefix)


def _walk(element):
    """Yield ``element`` and all its descendants (branca ``_children``)."""
    stack = [element]
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(getattr(node, "_children", {}).values())


def _plugin_name(node) -> str | None:
    """Name of the PLUGIN_ASSETS entry that applies to ``node``, if any.

    Subclasses of a listed plugin class get that class's assets.
    """
    for cls in type(node).__mro__:
        if cls.__module__.startswith("folium.") and cls.__name__ in PLUGIN_ASSETS:
            return cls.__name__
    return None


_EXTERNAL_URL = re.compile(r"(?:https?:)?//", re.IGNORECASE)


def _is_external(url: str) -> bool:
    """True for http(s) and protocol-relative URLs."""
    return bool(_EXTERNAL_URL.match(url))


def localize(element, prefix: str = VENDOR_PREFIX):
    """Point ``element`` and its descendants at the vendored assets.

    ``element`` is usually a ``folium.Map`` (a ``branca`` Figure holding maps
    works too). Every ``folium.Map`` in the tree gets local ``default_js`` /
    ``default_css``, and every instance of a plugin listed in
    :data:`PLUGIN_ASSETS` gets its local lists. Attributes are set on the
    instances only, with new lists, so folium's shared defaults stay intact.

    Call it after all plugins have been added: elements added later keep
    folium's CDN links. Elements that still link an external URL and have no
    vendored replacement trigger a ``UserWarning``.

    Returns ``element`` so calls can be chained.
    """
    from folium import Map  # imported lazily: the module is usable without folium

    for node in _walk(element):
        if isinstance(node, Map):
            node.default_js = folium_default_js(prefix)
            node.default_css = folium_default_css(prefix)
            continue
        name = _plugin_name(node)
        if name is not None:
            node.default_js, node.default_css = plugin_assets(name, prefix)
            continue
        links = list(getattr(node, "default_js", [])) + list(
            getattr(node, "default_css", [])
        )
        remote = [url for _, url in links if _is_external(url)]
        if remote:
            warnings.warn(
                f"{type(node).__name__} links external assets with no vendored "
                f"copy: {', '.join(remote)}",
                UserWarning,
                stacklevel=2,
            )
    return element


# src=/href= followed by an optionally quoted (possibly backslash-escaped, as
# inside JavaScript strings) absolute or protocol-relative URL.
_ATTR_URL = re.compile(
    r"""\b(?:src|href)\s*=\s*\\?["']?\s*((?:https?:)?//[^\s"'\\<>]+)""",
    re.IGNORECASE,
)


def external_urls(html: str) -> list[str]:
    """Return the external URLs in ``src=``/``href=`` attributes of ``html``.

    Matches ``http://``, ``https://`` and protocol-relative ``//host`` URLs,
    anywhere in the text (inline scripts included, so markup built in
    JavaScript strings is caught too). Each URL appears once, in order of
    first appearance. An empty list means the page loads nothing from outside.
    """
    found: dict[str, None] = {}
    for match in _ATTR_URL.finditer(html):
        found.setdefault(match.group(1), None)
    return list(found)
