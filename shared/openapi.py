"""OpenAPI 3.1 documents built from an ``Api``'s routes and the pydantic models they validate with
(``model_json_schema``: JSON Schema 2020-12, which OpenAPI 3.1 uses as is).

Every route's path variables, query parameters, request body and answers come from the models the
router itself validates with (``shared.http.Api.route``), so the document says what the code does.
Problem answers (RFC 9457, ``application/problem+json``) are documented per route: those its
contract implies (404 for path variables, 422 for the query, 400/413/415/422 for a body, 500, 503),
those its function may answer before any route (e.g. 401/429 of an API key) and those it names.

Imported only when ``/openapi.json`` is asked for or a test builds the document: no cold-start cost.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

if TYPE_CHECKING:
    from shared.http import Api, Operation

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
PROBLEM_MEDIA = "application/problem+json"
PROBLEM_TEXT = {
    400: "Bad Request: the body is not valid JSON (or another malformed input).",
    401: "Unauthorized: an API key is required or was not accepted.",
    403: "Forbidden.",
    404: "Not Found: no such resource (a path variable that cannot name one is answered so too).",
    405: "Method Not Allowed.",
    409: "Conflict with the stored state; the detail says what to do.",
    413: "Content Too Large: the body exceeds the limit.",
    415: "Unsupported Media Type: send application/json.",
    422: "Unprocessable Content: a parameter or field is not valid; `errors` names each with what it allows.",
    429: "Too Many Requests: retry after `Retry-After` seconds.",
    500: "Internal error (a bug of ours): logged with its trace.",
    502: "A dependency answered wrongly; nothing was stored.",
    503: "A dependency is unavailable; retry (after `Retry-After` when given).",
}
_VARIABLE = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


class ProblemDetails(BaseModel):
    """An error answer (RFC 9457): what was wrong and, where it applies, what is allowed."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="one entry per bad field: field, message, type and what it allows"
    )


def openapi_path(rule: str) -> tuple[str, list[str]]:
    """A werkzeug rule as an OpenAPI path template and its variable names:
    ``/v1/customers/<customer_id>`` -> ``/v1/customers/{customer_id}``."""
    names = _VARIABLE.findall(rule)
    return _VARIABLE.sub(lambda m: "{" + m.group(1) + "}", rule), names


def _implied_problems(api: Api, op: Operation) -> set[int]:
    # Any route may meet a dependency failing for now (the router answers 503 then) or a bug.
    statuses = {500, 503, *api.problems, *op.problems}
    if op.role != ("public",):
        statuses |= {401, 403}  # the caller's token, and its role (shared/roles.py)
    if op.params is not None:
        statuses.add(404)
    if op.query is not None:
        statuses.add(422)
    if op.body is not None:
        statuses |= {400, 413, 415, 422}
    if op.raw_body:
        statuses.add(413)
    return statuses


def build_document(api: Api) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``api``; raises ``ValueError`` for a contract that cannot be
    one (two templates of one shape with different variable names, a link to no operation)."""
    operations = [_resolved(op) for op in api.operations()]
    pairs: list[tuple[type[BaseModel], Any]] = [(ProblemDetails, "serialization")]
    for op in operations:
        pairs += [(m, "validation") for m in (op.params, op.query, op.body) if m is not None]
        pairs += [(r.model, "serialization") for r in op.responses.values() if r.model is not None]
    unique = list(dict.fromkeys(pairs))
    keys, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return dict(keys[(model, mode)])  # type: ignore[index]

    def resolved(model: type[BaseModel]) -> dict[str, Any]:
        return schemas[ref(model, "validation")["$ref"].rsplit("/", 1)[1]]  # type: ignore[no-any-return]

    problem_ref = ref(ProblemDetails, "serialization")
    operation_ids = {op.operation_id for op in operations}
    paths: dict[str, dict[str, Any]] = {}
    shapes: dict[str, str] = {}
    for op in operations:
        template, names = openapi_path(op.path)
        shape = re.sub(r"\{[^}]+\}", "{}", template)
        if shapes.setdefault(shape, template) != template:
            raise ValueError(
                f"{api.name}: {template} and {shapes[shape]} are one path to OpenAPI; "
                "name their variables alike"
            )
        parameters = []
        if op.params is not None:
            parameters += _parameters(resolved(op.params), "path", names)
        else:
            parameters += [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
            ]
        if op.query is not None:
            parameters += _parameters(resolved(op.query), "query", None)
        responses: dict[str, Any] = {}
        for status, reply in sorted(op.responses.items()):
            answer: dict[str, Any] = {"description": reply.description or _default_description(status)}
            if reply.media:
                answer["content"] = {
                    media: {"schema": _media_schema(media, reply.model, ref)} for media in reply.media
                }
            if reply.headers:
                answer["headers"] = {h: {"schema": {"type": "string"}} for h in reply.headers}
            links = op.links.get(status)
            if links:
                for target in links:
                    if target not in operation_ids:
                        raise ValueError(f"{api.name}: {op.operation_id} links to no operation {target!r}")
                answer["links"] = {
                    target: {"operationId": target, "parameters": dict(values)}
                    for target, values in links.items()
                }
            responses[str(status)] = answer
        for status in sorted(_implied_problems(api, op)):
            content = {PROBLEM_MEDIA: {"schema": problem_ref}}
            if str(status) in responses:
                responses[str(status)].setdefault("content", {}).update(content)
            else:
                responses[str(status)] = {
                    "description": PROBLEM_TEXT.get(status, "Error"),
                    "content": content,
                }
        for method in op.methods:
            operation: dict[str, Any] = {
                "operationId": op.operation_id if len(op.methods) == 1 else f"{op.operation_id}_{method}",
                "responses": responses,
            }
            if op.summary:
                operation["summary"] = op.summary
            if parameters:
                operation["parameters"] = parameters
            if op.body is not None:
                operation["requestBody"] = {
                    "required": op.body_required,
                    "content": {"application/json": {"schema": ref(op.body, "validation")}},
                }
            elif op.raw_body:
                operation["requestBody"] = {
                    "required": True,
                    "content": {media: {"schema": _media_schema(media, None, ref)} for media in op.raw_body},
                }
            paths.setdefault(template, {})[method.lower()] = operation
    schemas = _referenced(paths, schemas)  # query and path models are inlined as parameters
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"ION Ops {api.name}",
            "version": API_VERSION,
            "description": (
                f"The {api.name} capability's HTTP function. Errors are RFC 9457 problem details "
                f"({PROBLEM_MEDIA}) naming what was wrong and what is allowed."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    if api.security:
        document["components"]["securitySchemes"] = api.security
        # Optional: open when the function has no keys configured.
        document["security"] = [{name: []} for name in api.security] + [{}]
    return document


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas ``paths`` refer to, directly or through other schemas."""
    import json

    found: set[str] = set()
    pending = [json.dumps(paths)]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', pending.pop()):
            if name not in found and name in schemas:
                found.add(name)
                pending.append(json.dumps(schemas[name]))
    return {name: schema for name, schema in schemas.items() if name in found}


def _resolved(op: Operation) -> Operation:
    """The operation with each reply model named lazily (``"module:Name"``, so a handler module
    need not import a model it only answers with) imported."""
    import dataclasses
    import importlib

    replies = {}
    for status, reply in op.responses.items():
        model = reply.model
        if isinstance(model, str):
            module, _, name = model.partition(":")
            model = getattr(importlib.import_module(module), name)
        replies[status] = dataclasses.replace(reply, model=model)
    return dataclasses.replace(op, responses=replies)


def _default_description(status: int) -> str:
    return {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 302: "Found"}.get(status, "Answer")


def _media_schema(media: str, model: type[BaseModel] | None, ref: Any) -> dict[str, Any]:
    if media == "application/json" or media.endswith("+json"):
        return ref(model, "serialization") if model is not None else {}
    if media.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "contentMediaType": media}


def _parameters(schema: dict[str, Any], where: str, names: list[str] | None) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    found = []
    for name, declared in schema.get("properties", {}).items():
        if names is not None and name not in names:
            raise ValueError(f"path model field {name!r} is not a variable of the path ({names})")
        prop = _without_null(declared)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        found.append(parameter)
    if names is not None and sorted(p["name"] for p in found) != sorted(names):
        raise ValueError(f"path variables {names} and their model's fields differ")
    return found


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without its ``null`` branch: absent is how a query says None."""
    prop = dict(prop)
    options = prop.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del prop["anyOf"]
        if len(rest) == 1:
            prop = {**rest[0], **prop}
        else:
            prop["anyOf"] = rest
        if prop.get("default", 0) is None:
            del prop["default"]
    return prop


@lru_cache(maxsize=256)
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    props = {}
    for name, declared in schema.get("properties", {}).items():
        prop = _without_null(declared)
        if "$ref" in prop:
            prop = {**defs.get(prop["$ref"].rsplit("/", 1)[1], {}), **prop}
        props[name] = prop
    return props


def describe_allowed(model: type[BaseModel], name: str) -> str | None:
    """What field ``name`` of ``model`` allows, in words (from its JSON Schema), or None."""
    prop = _properties(model).get(name)
    if prop is None:
        return None
    return _describe(prop)


def allowed_values(model: type[BaseModel], name: str) -> list[Any] | None:
    """The values field ``name`` of ``model`` may take, when it is one of a set, else None."""
    prop = _properties(model).get(name)
    if prop is None or "enum" not in prop:
        return None
    return list(prop["enum"])


def _describe(prop: dict[str, Any]) -> str | None:
    if "enum" in prop:
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {prop['const']}"
    kind = prop.get("type")
    if kind in {"integer", "number"}:
        noun = "a whole number" if kind == "integer" else "a number"
        low, high = prop.get("minimum"), prop.get("maximum")
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}"
        if low is not None:
            return f"{noun} of at least {low}"
        if high is not None:
            return f"{noun} of at most {high}"
        return noun
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        fmt = prop.get("format")
        if fmt == "date":
            return "a date, YYYY-MM-DD"
        if fmt == "date-time":
            return "an RFC 3339 time with a zone, e.g. 2026-03-02T08:00:00Z"
        parts = []
        if "pattern" in prop:
            parts.append(f"text matching {prop['pattern']}")
        if "maxLength" in prop:
            parts.append(f"{prop.get('minLength', 0)} to {prop['maxLength']} characters")
        if prop.get("description"):
            parts.append(str(prop["description"]))
        return "; ".join(parts) or None
    if "anyOf" in prop:
        described = [d for d in (_describe(o) for o in prop["anyOf"]) if d]
        return " or ".join(described) or None
    return prop.get("description")
