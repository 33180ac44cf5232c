"""Printable PDF reports: the review report of a period (district or one ward), the dossier sheet, the map print.

``review`` and ``dossier`` gather the figures through :mod:`gisapp.analysis.stats` (the dashboard's own
path) and the store; ``maps`` draws the maps server-side (geopandas + matplotlib, as SVG); ``render``
turns the Jinja templates of ``templates/reports/`` into PDF with WeasyPrint (imported only when a report
is made: without Pango the reports say so and the rest of the app works); ``jobs`` runs a rendering in a
child process with a memory limit, so reports never hold up the server's own processes.
"""
