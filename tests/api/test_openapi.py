"""The OpenAPI says what the server answers: every operation documents the common error answers with
the error body's shape, the JSON routes their typed models, and a 405 names every method of the path."""

from __future__ import annotations

from api.schemas.errors import ErrorBody

COMMON = ("400", "401", "403", "404", "409", "413", "422", "429", "503")


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_operation_documents_the_error_answers_as_json(client):
    schema = client.get("/openapi.json").json()
    ops = list(_operations(schema))
    assert len(ops) > 80
    for path, method, op in ops:
        missing = [s for s in COMMON if s not in op["responses"]]
        assert not missing, f"{method.upper()} {path} does not document {missing}"
        for status in COMMON:  # errors are JSON even on GeoJSON or CSV routes
            assert list(op["responses"][status]["content"]) == ["application/json"], (method, path, status)


def test_the_error_bodies_the_server_sends_match_the_documented_schema(client):
    schema = client.get("/openapi.json").json()
    documented = schema["paths"]["/tickets/{ticket_id}"]["get"]["responses"]
    answers = {
        "404": client.get("/tickets/999999"),  # a domain error: {error, detail}
        "422": client.get("/tickets/not-a-number"),  # a refused request: {error, detail, problems}
        "405": client.delete("/tickets/1"),  # FastAPI's own: {detail}
    }
    required = documented["404"]["content"]["application/json"]["schema"]["required"]
    assert required == ["detail"]
    for status, answer in answers.items():
        assert str(answer.status_code) == status, answer.text
        assert set(required) <= set(answer.json()), (status, answer.text)
        ErrorBody.model_validate(answer.json())  # the model the documented schema is made from
    assert answers["404"].json()["error"] == "NotFound"
    assert answers["422"].json()["problems"][0]["where"] == "path.ticket_id"


def test_main_json_routes_have_typed_models(client):
    schema = client.get("/openapi.json").json()
    for path, method in [("/tickets", "get"), ("/tickets/{ticket_id}", "get"), ("/tickets", "post"),
                         ("/auth/me", "get"), ("/calls", "get"), ("/workers/{worker_id}", "get"),
                         ("/sensors/{sensor_id}", "get"), ("/resolve", "get"), ("/reverse", "get"),
                         ("/grids/{code}/base-summary", "get"), ("/public/reports/{code}", "get")]:
        op = schema["paths"][path][method]
        ok = op["responses"].get("200") or op["responses"]["201"]
        ref = next(iter(ok["content"].values()))["schema"]
        assert "$ref" in ref, f"{method.upper()} {path}: {ref}"
    detail = schema["components"]["schemas"]["TicketDetail"]
    assert {"timeline", "my_moves", "actor_role", "live_card"} <= set(detail["properties"])
    assert detail["additionalProperties"] is True  # documented, never filtered


def test_a_405_names_every_method_the_path_serves(client):
    answer = client.request("OPTIONS", "/workers")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    answer = client.put("/tickets/1")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == {"GET"}
    # the most specific template names the resource, not a catch-all that also matches the path
    assert client.request("OPTIONS", "/grids/validate").headers["allow"] == "POST"
    assert client.request("OPTIONS", "/tickets/1/nearest-workers").headers["allow"] == "GET"
