"""Tests for gisapp.web.assets: folium pages must load nothing from the internet."""

from __future__ import annotations

import re
from pathlib import Path

import folium
import folium.folium
import pytest
from folium import plugins

from gisapp.web import assets

STATIC_DIR = assets.VENDOR_DIR.parent
STATIC_URL = "/static"
VENDOR_DIR = STATIC_DIR / "vendor"

CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.IGNORECASE)

PLUGIN_CLASSES = {
    "Fullscreen": plugins.Fullscreen,
    "MeasureControl": plugins.MeasureControl,
    "MarkerCluster": plugins.MarkerCluster,
    "VectorGridProtobuf": plugins.VectorGridProtobuf,
}


# --- helpers (tested below, so a broken helper cannot hide a missing file) ---


def missing_files(urls, static_dir: Path = STATIC_DIR) -> list[str]:
    """URLs under STATIC_URL that do not map to an existing file."""
    missing = []
    for url in urls:
        if not url.startswith(STATIC_URL + "/"):
            missing.append(url)
            continue
        if not (static_dir / url[len(STATIC_URL) + 1 :]).is_file():
            missing.append(url)
    return missing


def unresolved_css_urls(css_file: Path) -> list[str]:
    """url(...) references in ``css_file`` that do not resolve to a file.

    data: URIs and fragment-only references (e.g. ``#default#VML``) are
    ignored; query strings and fragments are stripped before the lookup.
    Absolute or external URLs count as unresolved.
    """
    bad = []
    for _, ref in CSS_URL.findall(css_file.read_text(encoding="utf-8")):
        ref = ref.strip()
        if not ref or ref.startswith(("data:", "#")):
            continue
        path = re.split(r"[?#]", ref, maxsplit=1)[0]
        if re.match(r"^([a-z][a-z0-9+.-]*:|/)", path, re.IGNORECASE):
            bad.append(ref)
        elif not (css_file.parent / path).is_file():
            bad.append(ref)
    return bad


def all_asset_urls(prefix: str = assets.VENDOR_PREFIX) -> list[str]:
    urls = [url for _, url in assets.folium_default_js(prefix)]
    urls += [url for _, url in assets.folium_default_css(prefix)]
    for name in assets.PLUGIN_ASSETS:
        js, css = assets.plugin_assets(name, prefix)
        urls += [url for _, url in js + css]
    return urls


def vendored_css_files() -> list[Path]:
    return sorted(VENDOR_DIR.rglob("*.css"))


def build_map() -> folium.Map:
    # With tiles=None, folium drops max_zoom (it only goes to a tile layer);
    # Leaflet.markercluster then fails with "Map has no maxZoom specified".
    # The camelCase keyword is passed through to L.map().
    m = folium.Map(location=[21.03, 105.85], zoom_start=13, tiles=None, maxZoom=19)
    plugins.Fullscreen().add_to(m)
    plugins.MeasureControl().add_to(m)
    cluster = plugins.MarkerCluster().add_to(m)
    folium.Marker(
        [21.03, 105.85], icon=folium.Icon(icon="house", prefix="fa", angle=45)
    ).add_to(cluster)
    folium.Marker([21.031, 105.851], popup="B").add_to(cluster)
    return m


# --- helper self-tests ---


def test_missing_files_detects_absent_and_foreign_urls(tmp_path):
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "there.js").write_text("")
    urls = ["/static/vendor/there.js", "/static/vendor/gone.js", "https://cdn.example/x.js"]
    assert missing_files(urls, tmp_path) == urls[1:]


def test_unresolved_css_urls_detects_missing_and_external(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "ok.png").write_bytes(b"")
    css = tmp_path / "a.css"
    css.write_text(
        ".a{background:url(images/ok.png)}"
        ".b{background:url('images/missing.png')}"
        '.c{background:url("data:image/svg+xml,%3csvg%3e")}'
        ".d{behavior:url(#default#VML)}"
        "@font-face{src:url(images/ok.png?v=1#iefix)}"
        ".e{background:url(https://cdn.example/x.png)}"
    )
    assert unresolved_css_urls(css) == ["images/missing.png", "https://cdn.example/x.png"]


# --- the vendored files ---


def test_every_referenced_asset_exists():
    urls = all_asset_urls()
    assert urls
    assert missing_files(urls) == []


def test_prefix_is_applied():
    js = dict(assets.folium_default_js("/assets/"))
    assert js["leaflet"] == "/assets/leaflet/leaflet.js"
    plugin_js, _ = assets.plugin_assets("Fullscreen", "/assets")
    assert all(url.startswith("/assets/leaflet.fullscreen/") for _, url in plugin_js)


def test_vendored_css_exists():
    names = {p.relative_to(VENDOR_DIR).as_posix() for p in vendored_css_files()}
    assert "leaflet/leaflet.css" in names
    assert "fontawesome-free/css/all.min.css" in names


@pytest.mark.parametrize(
    "css_file", vendored_css_files(), ids=lambda p: p.relative_to(VENDOR_DIR).as_posix()
)
def test_css_url_references_resolve(css_file):
    assert unresolved_css_urls(css_file) == []


def test_every_vendored_package_has_a_licence():
    packages = [p for p in VENDOR_DIR.iterdir() if p.is_dir()]
    assert len(packages) >= 10
    for package in packages:
        assert any(
            f.name.upper().startswith(("LICENSE", "LICENCE", "MIT-LICEN"))
            for f in package.iterdir()
        ), package.name
    assert (VENDOR_DIR / "PROVENANCE.md").is_file()


# --- names stay in step with folium ---


def test_default_names_match_folium():
    folium_js = [name for name, _ in folium.folium._default_js]
    folium_css = [
        name for name, _ in folium.folium._default_css if name != "glyphicons_css"
    ]
    assert [name for name, _ in assets.folium_default_js()] == folium_js
    assert [name for name, _ in assets.folium_default_css()] == folium_css


@pytest.mark.parametrize("name", sorted(PLUGIN_CLASSES))
def test_plugin_names_match_folium(name):
    cls = PLUGIN_CLASSES[name]
    js, css = assets.PLUGIN_ASSETS[name]
    assert [n for n, _ in js] == [n for n, _ in cls.default_js]
    assert [n for n, _ in css] == [n for n, _ in cls.default_css]


# --- localize() and external_urls() ---


def test_unlocalized_map_links_cdns():
    # Guards external_urls(): without localize() the page must show CDN links.
    html = build_map().get_root().render()
    urls = assets.external_urls(html)
    assert any("leaflet" in url for url in urls)
    assert any("markercluster" in url for url in urls)


def test_localized_map_links_nothing_external():
    m = assets.localize(build_map())
    html = m.get_root().render()
    assert assets.external_urls(html) == []
    # Every script/stylesheet the page links is a vendored file that exists.
    linked = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)\"""", html)
    assert "/static/vendor/leaflet.markercluster/leaflet.markercluster.js" in linked
    assert "/static/vendor/leaflet-measure/leaflet-measure.min.js" in linked
    assert "/static/vendor/leaflet.fullscreen/Control.FullScreen.js" in linked
    assert missing_files(linked) == []
    assert '"maxZoom": 19' in html


def test_localize_vectorgrid():
    m = folium.Map(tiles=None, maxZoom=19)
    plugins.VectorGridProtobuf("/tiles/{z}/{x}/{y}.pbf", "parcels").add_to(m)
    html = assets.localize(m).get_root().render()
    assert assets.external_urls(html) == []
    assert "/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js" in html


def test_localize_leaves_folium_defaults_alone():
    snapshot = {
        "map_js": list(folium.folium._default_js),
        "map_css": list(folium.folium._default_css),
        **{f"{n}_js": list(c.default_js) for n, c in PLUGIN_CLASSES.items()},
        **{f"{n}_css": list(c.default_css) for n, c in PLUGIN_CLASSES.items()},
    }
    localized = assets.localize(build_map())
    localized.get_root().render()
    after = {
        "map_js": list(folium.folium._default_js),
        "map_css": list(folium.folium._default_css),
        **{f"{n}_js": list(c.default_js) for n, c in PLUGIN_CLASSES.items()},
        **{f"{n}_css": list(c.default_css) for n, c in PLUGIN_CLASSES.items()},
    }
    assert after == snapshot
    # A map built afterwards still gets folium's own (CDN) links.
    assert assets.external_urls(build_map().get_root().render())
    # Lists are per instance, not shared between maps.
    other = assets.localize(build_map())
    assert other.default_js == localized.default_js
    assert other.default_js is not localized.default_js


def test_localize_warns_about_unvendored_plugins():
    m = folium.Map(tiles=None, maxZoom=19)
    plugins.LocateControl().add_to(m)  # not vendored
    with pytest.warns(UserWarning, match="LocateControl"):
        assets.localize(m)


def test_external_urls():
    html = (
        '<script src="https://cdn.example/a.js"></script>'
        "<link rel=stylesheet href='http://cdn.example/b.css'>"
        '<img SRC="//cdn.example/c.png">'
        '<script>var p = "<a href=\\"https://example.org/d\\">d</a>";</script>'
        '<script src="/static/vendor/leaflet/leaflet.js"></script>'
        '<a href="relative/page.html">x</a>'
        '<script src="https://cdn.example/a.js"></script>'
    )
    assert assets.external_urls(html) == [
        "https://cdn.example/a.js",
        "http://cdn.example/b.css",
        "//cdn.example/c.png",
        "https://example.org/d",
    ]
    assert assets.external_urls('<p>see https://example.org</p>') == []
