"""Schemathesis against the app's own OpenAPI document: no 500s, responses as documented,
every error in the one JSON error shape."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from gisapp.web.app import create_app

pytestmark = pytest.mark.slow
ERROR_KEYS = {"code", "description", "status"}
#: Conformance of every response to the document. Not "positive data acceptance": the document
#: types ward codes and bbox numbers loosely, and the API rightly answers 400 for a ward code the
#: store does not have or a latitude of 1e16 (the issue asks for exactly that).
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]
SEEN = {"requests": 0, "errors": 0}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, demo_frames):
    from gisapp.store.gpkg import GeoPackageStore

    path = tmp_path_factory.mktemp("fuzz") / "demo.gpkg"
    frames, meta = demo_frames
    GeoPackageStore(path, must_exist=False).write(frames, meta=meta)
    app = create_app({"STORE": str(path), "TESTING": True})
    return schemathesis.openapi.from_wsgi("/api/openapi", app)


def check(case) -> None:
    """One generated request: never a 500, errors in the one shape, responses as documented."""
    response = case.call()
    SEEN["requests"] += 1
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        SEEN["errors"] += 1
        if (case.query or {}).get("f") == "html":  # errors of the HTML pages are HTML pages
            return
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), (case.as_curl_command(), response.text[:300])
        body = response.json()
        assert set(body) == ERROR_KEYS and body["status"] == response.status_code
    case.validate_response(response, checks=CHECKS)


def test_api_conforms_to_its_openapi_document(api_schema):
    """Every operation of the document, with generated valid and invalid parameters.

    (Driven through schemathesis's Python API: its pytest plugin does not
    support this pytest version.)
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        run = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                       database=None)(given(case=operation.as_strategy())(check))
        run()
def test_fuzz_totals_reported():
    """Prints how many generated requests went through (for the closing note)."""
    print(f"\nfuzzed API requests: {SEEN}")
