"""The reports' maps, drawn server-side with geopandas + matplotlib as SVG (sharp at any zoom of the PDF).

Every map is in EPSG:5899 (metres), so a scale bar is exact; each has a legend, a scale bar
(``matplotlib-scalebar``), a north arrow and the data's attribution.  Text stays text in the SVG
(``svg.fonttype = none``) and is set by the typesetter in the report's embedded fonts, so it can be
searched and copied from the PDF.  Dense layers (many thousand features) are drawn as one raster image
inside the SVG (``rasterized``), which keeps a 100,000-parcel map a few hundred kB.  matplotlib is imported
when a map is drawn, through its object API (no pyplot: no global state, safe in threads).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

#: Font families of the maps' text (the report's CSS names the same ones).
FONTS = ["DejaVu Sans", "Noto Sans", "sans-serif"]
#: Above this many features a layer is drawn as a raster inside the SVG.
RASTER_ABOVE = 2000
#: Resolution of those rasters, dots per inch.
RASTER_DPI = 200
MM = 1 / 25.4


@dataclass(frozen=True)
class LegendItem:
    """One legend entry: its label, fill colour and how it is drawn (``patch``, ``line`` or ``point``)."""

    label: str
    color: str
    kind: str = "patch"
    edge: str = "#555555"


def _rc():
    from matplotlib import rc_context

    return rc_context({"svg.fonttype": "none", "font.family": "sans-serif", "font.sans-serif": FONTS,
                       "font.size": 7, "svg.hashsalt": "gisapp"})


def _figure(width_mm: float, height_mm: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_mm * MM, height_mm * MM))
    ax = fig.add_axes((0, 0, 1, 1))  # the whole figure: a map at 1:500 is exactly that on paper
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(1.2)  # half of it inside the figure
        spine.set_color("#666666")
    ax.set_aspect("equal")
    return fig, ax


def _extent(ax, bounds: Sequence[float], width_mm: float, height_mm: float, margin: float = 0.06) -> None:
    """Fit ``bounds`` (EPSG:5899) in the axes keeping metres square."""
    x1, y1, x2, y2 = bounds
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    ratio = width_mm / height_mm
    if w / h > ratio:
        h = w / ratio
    else:
        w = h * ratio
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ax.set_xlim(cx - w / 2, cx + w / 2)
    ax.set_ylim(cy - h / 2, cy + h / 2)


def _set_scale(ax, center: tuple[float, float], scale: int, width_mm: float, height_mm: float) -> None:
    """Axes covering exactly ``scale`` times the paper size around ``center`` (1:scale when printed at 100 %)."""
    w, h = width_mm / 1000 * scale, height_mm / 1000 * scale
    ax.set_xlim(center[0] - w / 2, center[0] + w / 2)
    ax.set_ylim(center[1] - h / 2, center[1] + h / 2)


def _decorate(ax, *, lang: str, attribution: str | None, legend: Sequence[LegendItem], legend_title: str,
              scale_text: str | None = None) -> None:
    """Scale bar (lower left), north arrow (upper right), legend (upper left), attribution (lower right)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib_scalebar.scalebar import ScaleBar

    ax.set_xlabel("")  # geopandas names the axes after the CRS; a map has none
    ax.set_ylabel("")
    ax.add_artist(ScaleBar(1, "m", location="lower left", box_alpha=0.8, length_fraction=0.25, font_properties={
        "size": 7}, scale_loc="top", border_pad=0.6))
    ax.annotate("B" if lang == "vi" else "N", xy=(0.95, 0.97), xytext=(0.95, 0.87), xycoords="axes fraction",
                ha="center", va="center", fontsize=9, fontweight="bold",
                arrowprops={"facecolor": "black", "width": 3, "headwidth": 9, "headlength": 8})
    handles: list = []
    for item in legend:
        if item.kind == "line":
            handles.append(Line2D([], [], color=item.color, lw=1.5, label=item.label))
        elif item.kind == "point":
            handles.append(Line2D([], [], marker="o", ls="", color=item.color, markeredgecolor=item.edge,
                                  markersize=5, label=item.label))
        else:
            handles.append(Patch(facecolor=item.color, edgecolor=item.edge, lw=0.5, label=item.label))
    if handles:
        ax.legend(handles=handles, title=legend_title, loc="upper left", fontsize=6.5, title_fontsize=7,
                  framealpha=0.9, borderpad=0.5)
    foot = " · ".join(t for t in (scale_text, attribution) if t)
    if foot:
        ax.text(0.99, 0.01, foot, transform=ax.transAxes, ha="right", va="bottom", fontsize=5.5, color="#333333",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.5})


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", dpi=RASTER_DPI, metadata={"Date": None})
    return buf.getvalue()


def _draw(ax, geoms, *, face, edge="#444444", lw=0.3, alpha=1.0, zorder=2) -> None:
    """Polygons, lines or points (EPSG:5899 shapely geometries) as one collection; rasterized when dense."""
    import geopandas as gpd

    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return
    series = gpd.GeoSeries(geoms, crs=5899)
    dense = len(geoms) > RASTER_ABOVE
    series.plot(ax=ax, color=face, edgecolor=edge, linewidth=lw, alpha=alpha, zorder=zorder, rasterized=dense,
                markersize=6)


def _points(ax, points: Sequence[tuple[Sequence, str]]) -> None:
    """Points (``[(point geometries, colour), …]``) as one scatter: a raster inside the SVG when many."""
    xs, ys, colors = [], [], []
    for geoms, color in points:
        coords = shapely.get_coordinates(np.asarray(list(geoms), dtype=object))
        xs.append(coords[:, 0])
        ys.append(coords[:, 1])
        colors += [color] * len(coords)
    if colors:
        many = len(colors) > RASTER_ABOVE // 4
        ax.scatter(np.concatenate(xs), np.concatenate(ys), s=3 if many else 9, c=colors, edgecolors="#222222",
                   linewidths=0.3, zorder=3, rasterized=many)


def ward_map(wards, *, colors: dict[str, str], lang: str, attribution: str | None, legend: Sequence[LegendItem],
             legend_title: str, labels: dict[str, str] | None = None, width_mm: float = 180,
             height_mm: float = 150, points=None) -> str:
    """The wards (a frame of ``ward_code``, ``name``, ``geometry``) filled with ``colors`` and named.

    ``labels``: a second line under each ward's name (its figure); ``points``: ``[(geoms, colour), …]``
    drawn over the wards (the findings map).
    """
    with _rc():
        fig, ax = _figure(width_mm, height_mm)
        geoms = list(wards["geometry"])
        if geoms:
            _extent(ax, shapely.total_bounds(np.asarray(geoms)), width_mm, height_mm)
        for code, geom in zip(wards["ward_code"], geoms):
            _draw(ax, [geom], face=colors.get(code, "#f2f2f2"), edge="#333333", lw=0.8, zorder=1)
        _points(ax, points or ())
        for code, name, geom in zip(wards["ward_code"], wards["name"], geoms):
            if geom is None or geom.is_empty:
                continue
            p = geom.representative_point()
            text = f"{name}\n{labels[code]}" if labels and code in labels else str(name)
            ax.text(p.x, p.y, text, ha="center", va="center", fontsize=7, zorder=4,
                    bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})
        _decorate(ax, lang=lang, attribution=attribution, legend=legend, legend_title=legend_title)
        return _svg(fig)


def features_map(wards, layers: Sequence[tuple[list, str]], *, bounds, lang: str, attribution: str | None,
                 legend: Sequence[LegendItem], legend_title: str, width_mm: float = 180,
                 height_mm: float = 200) -> str:
    """Features over the ward outlines: ``layers`` is ``[(geometries, colour), …]`` drawn in order."""
    with _rc():
        fig, ax = _figure(width_mm, height_mm)
        if bounds is not None:
            _extent(ax, bounds, width_mm, height_mm)
        _draw(ax, list(wards["geometry"]), face="#fafafa", edge="#555555", lw=0.8, zorder=1)
        for geoms, color in layers:  # outlined in their own colour: a 6 m lot stays a visible dot at 1:25,000
            _draw(ax, geoms, face=color, edge=color, lw=0.8, zorder=2)
        x1, x2 = ax.get_xlim()
        y1, y2 = ax.get_ylim()
        view = shapely.box(x1, y1, x2, y2)
        for name, geom in zip(wards["name"], wards["geometry"]):
            if geom is not None and geom.intersects(view):
                p = geom.intersection(view).representative_point()
                ax.text(p.x, p.y, str(name), ha="center", va="center", fontsize=7, color="#333333", zorder=4,
                        bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 1})
        _decorate(ax, lang=lang, attribution=attribution, legend=legend, legend_title=legend_title)
        return _svg(fig)


#: Large scales a parcel sheet may use, largest first (1:500, then 1:1000 …).
SHEET_SCALES = (500, 1000, 2000, 5000)


def sheet_scale(geom, width_mm: float, height_mm: float, margin_m: float = 15.0) -> int:
    """The largest of :data:`SHEET_SCALES` at which ``geom`` with ``margin_m`` around it fits the paper."""
    x1, y1, x2, y2 = geom.bounds
    for scale in SHEET_SCALES:
        if (x2 - x1 + 2 * margin_m) <= width_mm / 1000 * scale and (y2 - y1 + 2 * margin_m) <= height_mm / 1000 * scale:
            return scale
    return SHEET_SCALES[-1]


#: How the dossier sheet draws the sidewalks (the ``sidewalks`` layer).
SIDEWALK_FACE = "#e0e0e0"
SIDEWALK_EDGE = "#9e9e9e"


def parcel_map(parcel, *, neighbours: Sequence, linked: Sequence, nearby: Sequence, findings: Sequence,
               labels: Sequence[tuple], lang: str, attribution: str | None, sidewalks: Sequence = (),
               legend: Sequence[LegendItem], legend_title: str, scale_label: str, width_mm: float = 180,
               height_mm: float = 105) -> tuple[str, int]:
    """A dossier's parcel at 1:500 or 1:1000 (the largest that fits) with its neighbours, the sidewalks, sidewalk
    permits and findings; ``labels`` are ``(geometry, text)`` pairs (parcel numbers).  Returns the SVG and the scale."""
    scale = sheet_scale(parcel, width_mm, height_mm)
    with _rc():
        fig, ax = _figure(width_mm, height_mm)
        c = parcel.centroid
        _set_scale(ax, (c.x, c.y), scale, width_mm, height_mm)
        _draw(ax, sidewalks, face=SIDEWALK_FACE, edge=SIDEWALK_EDGE, lw=0.4, zorder=0.5)
        _draw(ax, neighbours, face="#f5f5f5", edge="#777777", lw=0.5, zorder=1)
        _draw(ax, nearby, face="#ffe0b2", edge="#ef6c00", lw=0.6, alpha=0.9, zorder=2)
        _draw(ax, linked, face="#c8e6c9", edge="#2e7d32", lw=0.8, alpha=0.9, zorder=3)
        _draw(ax, findings, face="none", edge="#d50000", lw=1.0, zorder=4)
        _draw(ax, [parcel], face="#90caf9", edge="#0d47a1", lw=1.4, zorder=5)
        x1, x2 = ax.get_xlim()
        y1, y2 = ax.get_ylim()
        view = shapely.box(x1, y1, x2, y2)
        for geom, text in labels:
            if geom is not None and geom.intersects(view) and text:
                p = geom.intersection(view).representative_point()
                ax.text(p.x, p.y, text, ha="center", va="center", fontsize=5.5, color="#333333", zorder=6)
        _decorate(ax, lang=lang, attribution=attribution, legend=legend, legend_title=legend_title,
                  scale_text=f"{scale_label} 1:{scale:,}".replace(",", "."))
        return _svg(fig), scale


def monthly_chart(months: Sequence[str], received: Sequence[int], resolved: Sequence[int], *,
                  labels: tuple[str, str], width_mm: float = 180, height_mm: float = 65) -> str:
    """Grouped bars of dossiers received and resolved per month (``YYYY-MM``), each bar labelled."""
    with _rc():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width_mm * MM, height_mm * MM))
        ax = fig.add_axes((0.07, 0.16, 0.91, 0.76))
        x = np.arange(len(months))
        for offset, series, color, label in ((-0.2, received, "#3182bd", labels[0]),
                                             (0.2, resolved, "#66bb6a", labels[1])):
            bars = ax.bar(x + offset, series, width=0.38, color=color, label=label)
            ax.bar_label(bars, fontsize=5.5, padding=1)
        ax.set_xticks(x, [f"{m[5:]}/{m[:4]}" for m in months])
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=6.5)
        ax.margins(y=0.15)
        ax.legend(fontsize=6.5, frameon=False, loc="upper left", ncols=2)
        return _svg(fig)
