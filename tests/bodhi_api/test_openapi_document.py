"""``/openapi.json`` says what the API really answers: 400 in the OpenAI error shape (never FastAPI's 422), 401/403
where a caller is needed, 404/409/413/429/503 where they can happen, /metrics as Prometheus text, and every 405
names the methods a path has in ``Allow``. Checked against the running gateway, not only the document."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bodhi_shared.errors import InvalidRequest
from tests.conftest import Gateway

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = "#/components/schemas/ErrorBody"
ANTHROPIC_SHAPED = {"/v1/messages"}  # every error there in Anthropic's shape


def error_ref(path: str) -> str:
    return "#/components/schemas/AnthropicErrorBody" if path in ANTHROPIC_SHAPED else ERROR_REF


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict[str, Any]:
    response = httpx.get(f"{gateway.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def concrete(path: str) -> str:
    """A path of the document with each parameter filled in (with an id nothing has)."""
    for name in ("user_id", "token_id", "api_model_id", "alias", "model_id", "response_id"):
        path = path.replace(f"{{{name}}}", "00000000-0000-0000-0000-000000000000")
    return path


def error_schema(operation: dict[str, Any], status: str) -> str | None:
    answer = operation["responses"].get(status)
    return answer["content"]["application/json"]["schema"].get("$ref") if answer else None


def test_invalid_input_is_documented_as_400_in_the_openai_shape(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorBody"]["required"] == ["error"]
    detail = schemas[schemas["ErrorBody"]["properties"]["error"]["$ref"].split("/")[-1]]
    assert set(detail["required"]) == set(InvalidRequest("x").to_body()["error"])
    assert schemas["AnthropicErrorBody"]["required"] == ["type", "error"]
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], f"{method} {path}"
        if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert error_schema(operation, "400") == error_ref(path), f"{method} {path}"
        if "requestBody" in operation:
            assert error_schema(operation, "413") == error_ref(path), f"{method} {path}"
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert error_schema(operation, "404") == error_ref(path), f"{method} {path}"


def test_routes_that_need_a_caller_document_401_and_403(gateway: Gateway, document: dict[str, Any]) -> None:
    needing_a_caller = []
    with httpx.Client(base_url=gateway.base_url, timeout=10) as anonymous:
        for method, path, operation in operations(document):
            body: dict[str, Any] | None = {} if "requestBody" in operation else None
            answered = anonymous.request(method, concrete(path), json=body)
            declared = "401" in operation["responses"]
            if answered.status_code == 401:
                needing_a_caller.append(f"{method} {path}")
                assert declared, f"{method} {path} answers 401 undeclared"
                assert "403" in operation["responses"], f"{method} {path}"
                # A token may also come as `x-api-key` (Anthropic's header) on the /v1/ routes.
                api_key: list[dict[str, list[str]]] = [{"apiKeyHeader": []}] if path.startswith("/v1/") else []
                assert operation["security"] == [{"bearerToken": []}, {"sessionCookie": []}, *api_key], path
            else:
                assert "security" not in operation, f"{method} {path} declares a caller it does not need"
    assert "POST /v1/chat/completions" in needing_a_caller
    assert "GET /ping" not in needing_a_caller
    assert set(document["components"]["securitySchemes"]) == {"bearerToken", "sessionCookie", "apiKeyHeader"}


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/bodhi/v1/setup", {"201", "400", "403", "409", "413", "503"}),
        ("POST", "/bodhi/v1/auth/login", {"200", "400", "401", "403", "413", "429", "503"}),
        ("POST", "/bodhi/v1/models/api", {"201", "400", "401", "403", "409", "413", "503"}),
        ("POST", "/v1/chat/completions", {"200", "400", "401", "403", "404", "413", "429", "502", "503", "504"}),
        ("POST", "/v1/responses", {"200", "400", "401", "403", "404", "413", "429", "502", "503", "504"}),
        ("POST", "/v1/messages", {"200", "400", "401", "403", "404", "413", "429", "502", "503", "504"}),
        ("GET", "/v1/responses/{response_id}", {"200", "401", "403", "404", "503"}),
        ("DELETE", "/v1/responses/{response_id}", {"200", "401", "403", "404", "503"}),
        ("GET", "/ping", {"200"}),
        ("GET", "/health", {"200", "503"}),
        ("GET", "/ready", {"200", "503"}),
    ],
)
def test_the_statuses_a_route_can_answer_are_documented(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    documented = set(document["paths"][path][method.lower()]["responses"]) - {"default"}
    assert documented == statuses


def test_inference_bodies_are_documented(document: dict[str, Any]) -> None:
    chat = document["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["model", "messages"]
    assert body["additionalProperties"] is True  # every other field goes to the provider as sent
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    embeddings = document["paths"]["/v1/embeddings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert embeddings["required"] == ["model", "input"]
    for path, required in (
        ("/v1/responses", ["model", "input"]),
        ("/v1/messages", ["model", "messages", "max_tokens"]),
    ):
        operation = document["paths"][path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == required
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}


def test_metrics_are_documented_and_served_as_prometheus_text(gateway: Gateway, document: dict[str, Any]) -> None:
    answer = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert set(answer["content"]) == {"text/plain"}

    served = httpx.get(f"{gateway.base_url}/metrics", headers=gateway.auth_headers, timeout=10)

    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")


def methods_at(document: dict[str, Any], path: str) -> set[str]:
    """The documented methods of every document path that ``path`` matches (``/api/formats`` also matches
    ``/api/{api_model_id}``)."""
    found: set[str] = set()
    for template, item in document["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), path):
            found |= {method.upper() for method in item if method in METHODS}
    return found


def test_405_names_the_methods_of_the_path_in_allow(gateway: Gateway, document: dict[str, Any]) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=10, headers=gateway.auth_headers) as http:
        for template in document["paths"]:
            path = concrete(template)
            allowed = methods_at(document, path)
            other = [m for m in ("PATCH", "DELETE", "PUT", "POST") if m not in allowed][:1]
            for method in [*other, "OPTIONS"]:
                response = http.request(method, path)
                assert response.status_code == 405, f"{method} {path}"
                if template in ANTHROPIC_SHAPED:
                    assert response.json()["error"]["type"] == "invalid_request_error"
                else:
                    assert response.json()["error"]["code"] == "method_not_allowed"
                assert set(response.headers["allow"].split(", ")) == allowed, f"{method} {path}"
