"""gisapp: a GIS construction-permit viewer for a district urban-management office.

The room map is in the README (Developers: rooms); `gisapp.web.app.create_app` builds the web app.
"""
