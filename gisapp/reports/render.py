"""HTML → PDF: the Jinja templates of ``templates/reports/`` typeset by WeasyPrint.

WeasyPrint needs Pango (Debian: ``libpango-1.0-0``, ``libpangoft2-1.0-0``) and fonts with Vietnamese
letters, found on the system by fontconfig (``fonts-dejavu-core`` or ``fonts-noto-core``; never fetched).
Both are looked for when a report is made, not when gisapp starts: without them
:class:`ReportUnavailable` (503) names what is missing and the rest of the app works.  WeasyPrint
embeds the glyphs it uses of each font (a subset) in the PDF.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools

from gisapp.config import resource_dir
from gisapp.errors import RequestError

#: Fonts the reports are set in, first found first (the templates' CSS names the same list).
FONT_FAMILIES = ("DejaVu Sans", "Noto Sans")
#: What provides them on Debian.
FONT_PACKAGES = "fonts-dejavu-core / fonts-noto-core"


class ReportUnavailable(RequestError):
    """503: a report cannot be made on this server (a library or the fonts are missing); says which."""

    def __init__(self, what: str):
        super().__init__(503, "ReportUnavailable",
                         f"Không tạo được báo cáo PDF trên máy chủ này: {what}. / "
                         f"PDF reports cannot be made on this server: {what}.")


@functools.cache
def _weasyprint():
    try:
        import weasyprint
    except ImportError as err:  # the Python package
        raise ReportUnavailable(f"the Python package weasyprint is not installed ({err}); "
                                "pip install 'weasyprint>=62,<69'") from None
    except OSError as err:  # its system libraries (cffi could not load Pango)
        raise ReportUnavailable(f"a system library WeasyPrint needs is missing ({err}); on Debian: "
                                "apt-get install libpango-1.0-0 libpangoft2-1.0-0") from None
    return weasyprint


@functools.cache
def _font_found() -> str:
    """The first of :data:`FONT_FAMILIES` on the system (matplotlib's font list, which reads the same
    folders as fontconfig), else :class:`ReportUnavailable`."""
    try:
        from matplotlib import font_manager
    except ImportError as err:
        raise ReportUnavailable(f"the Python package matplotlib is not installed ({err})") from None
    for family in FONT_FAMILIES:
        try:
            font_manager.findfont(family, fallback_to_default=False)
            return family
        except ValueError:
            continue
    raise ReportUnavailable(f"no font with Vietnamese letters ({', '.join(FONT_FAMILIES)}); on Debian: "
                            f"apt-get install {FONT_PACKAGES}")


def check() -> None:
    """Raise :class:`ReportUnavailable` unless reports can be made here (library, Pango, fonts)."""
    _weasyprint()
    _font_found()


@functools.cache
def _environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(resource_dir("templates") / "reports")),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["data_uri"] = svg_data_uri
    return env


def svg_data_uri(svg: str) -> str:
    """An SVG document as a ``data:`` URI for an ``<img>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def html(template: str, **context) -> str:
    """The report's HTML (what WeasyPrint typesets)."""
    return _environment().get_template(template).render(fonts=FONT_FAMILIES, **context)


def pdf(template: str, **context) -> bytes:
    """The report ``template`` rendered with ``context`` as PDF bytes (A4, fonts embedded)."""
    check()
    weasyprint = _weasyprint()
    document = weasyprint.HTML(string=html(template, **context), base_url=str(resource_dir("templates")))
    return document.write_pdf()


def now() -> dt.datetime:
    """The generation time, in the district's time (UTC+7)."""
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).replace(microsecond=0, tzinfo=None)
