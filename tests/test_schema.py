"""The OpenAPI schema: valid OpenAPI 3, served at /api/schema/ with the gateway's endpoints in it, a
reference page whose assets Omixa serves itself, and a schemathesis run against the app (WSGI) that
finds no server error and no answer that contradicts the schema."""

from __future__ import annotations

import copy
import re

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from billing.services import invoice_roll_up, usage_price
from tests.api_fixtures import NOV, call_as, team, usage_event  # noqa: F401

pytestmark = pytest.mark.django_db

MANAGEMENT = "/api/v1/workspaces"


@pytest.fixture
def schema(db) -> dict:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # drf-spectacular's JSON Schema of OpenAPI 3: raises on any violation


def test_the_schema_generates_without_a_single_warning(tmp_path):
    # drf-spectacular's own command: a warning (an unnamed enum clash, an undescribed view) fails it.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.")


def test_the_schema_is_public_and_also_served_as_yaml(team):
    response = Client().get("/api/schema/")
    assert response.status_code == 200 and response.content.startswith(b"openapi: 3.")
    # Whatever credentials come along (an inference key, a bad token) are not even read.
    for token in (team.secrets["inference_key"], "omx_admin_unknown"):
        for path in ("/api/schema/", "/api/docs/"):
            assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get(path).status_code == 200


def test_the_schema_holds_the_gateway_and_every_management_operation(schema):
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/chat/completions", "post"),
        ("/api/v1/responses", "post"),
        ("/api/v1/models", "get"),
        ("/api/v1/models/{model_id}", "get"),
    ]:
        operation = paths[path][method]
        assert operation["security"] == [{"inferenceKey": []}]
        assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    management = {(p, m) for p, ops in paths.items() if p.startswith(MANAGEMENT) for m in ops}
    assert {
        ("/api/v1/workspaces/{slug}/keys/", "post"),
        ("/api/v1/workspaces/{slug}/keys/{key_id}/", "patch"),
        ("/api/v1/workspaces/{slug}/keys/{key_id}/revoke/", "post"),
        ("/api/v1/workspaces/{slug}/keys/{key_id}/rotate/", "post"),
        ("/api/v1/workspaces/{slug}/members/{member_id}/", "delete"),
        ("/api/v1/workspaces/{slug}/usage/", "get"),
        ("/api/v1/workspaces/{slug}/requests/{request_id}/", "get"),
        ("/api/v1/workspaces/{slug}/invoices/{invoice_id}/csv/", "get"),
        ("/api/v1/workspaces/{slug}/audit/", "get"),
    } <= management
    for path, method in management:
        operation = paths[path][method]
        assert {"managementKey": []} in operation["security"] and {"cookieAuth": []} in operation["security"]
        assert {"401", "403", "404"} <= set(operation["responses"])
    schemes = schema["components"]["securitySchemes"]
    assert schemes["managementKey"]["scheme"] == schemes["inferenceKey"]["scheme"] == "bearer"


def test_money_is_a_decimal_string_in_the_schema(schema):
    components = schema["components"]["schemas"]
    for name, prop in [
        ("Invoice", "total"),
        ("InvoiceLine", "amount"),
        ("UsageTotals", "cost"),
        ("ApiKey", "budget_amount"),
        ("RequestRecord", "cost"),
    ]:
        field = components[name]["properties"][prop]
        assert field["type"] == "string" and field["format"] == "decimal", (name, prop, field)


def test_the_reference_page_uses_only_assets_omixa_serves(db):
    client = Client()
    for page in ("/api/docs/",):
        response = client.get(page)
        assert response.status_code == 200
        html = response.content.decode()
        assert not re.search(r"""(?:src|href)=["']https?://""", html), "a CDN asset would break offline use"
        assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html)
        assert assets, "the page should load its script from /static/"
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200, asset
            b"".join(served.streaming_content) if served.streaming else served.content
    swagger = client.get("/api/docs/").content.decode()
    assert "/api/schema/" in swagger


# --- schemathesis ---------------------------------------------------------------------------------


def _pin_objects(raw: dict, team, ids: dict[str, list]) -> dict:
    """Path parameters limited to the team's workspace and to real objects (plus one that is not
    there), so that the generated calls reach the views instead of stopping at a 404."""
    pinned = copy.deepcopy(raw)
    pinned["paths"] = {p: ops for p, ops in pinned["paths"].items() if p.startswith(MANAGEMENT)}
    for operations in pinned["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path":
                    continue
                if parameter["name"] == "slug":
                    parameter["schema"] = {"type": "string", "enum": [team.workspace.slug]}
                elif parameter["name"] in ids:
                    parameter["schema"] = {**parameter["schema"], "enum": ids[parameter["name"]]}
    return pinned


@pytest.fixture
def fuzz_target(team, catalog, schema):
    event = usage_event(team.workspace, at=NOV.replace(day=3), key=team.keys["inference"], input_tokens=1200)
    usage_price(request_ids=[event.request_id])
    (invoice,) = invoice_roll_up(period=NOV, now=NOV.replace(day=9))
    member = team.workspace.memberships.get(user=team.users["developer"])
    ids = {
        "key_id": [team.keys["inference"].pk, 999_999],
        "member_id": [member.pk, 999_999],
        "invoice_id": [invoice.pk, 999_999],
        "request_id": [str(event.request_id), "00000000-0000-7000-8000-000000000000"],
    }
    loaded = schemathesis.openapi.from_dict(_pin_objects(schema, team, ids))
    loaded.app = get_wsgi_application()
    # As Django's own test client does: a request must not close the test's database connection
    # (the whole run happens inside the test's transaction, rolled back afterwards).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield loaded
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _run(schema, mode: GenerationMode, checks: list, headers: dict, max_examples: int) -> list[str]:
    seen: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        exercise()
        seen.append(f"{operation.method.upper()} {operation.path}")
    return seen


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(team, fuzz_target):
    headers = {"Authorization": f"Bearer {team.secrets['admin_key']}"}
    seen = _run(
        fuzz_target,
        GenerationMode.POSITIVE,
        [not_a_server_error, status_code_conformance, response_schema_conformance],
        headers,
        max_examples=12,
    )
    assert len(seen) >= 20, seen


def test_schemathesis_invalid_input_never_causes_a_server_error(team, fuzz_target):
    headers = {"Authorization": f"Bearer {team.secrets['admin_key']}"}
    _run(fuzz_target, GenerationMode.NEGATIVE, [not_a_server_error], headers, max_examples=12)
