"""A local stand-in of the Cloud Run Admin API v2 REST surface that scaling's applier needs, for
`make run` and the tests: the real ``google-cloud-run`` client talks to it over its REST transport
(``client_options={"api_endpoint": "http://127.0.0.1:PORT"}``, anonymous credentials).

    python -m devtools.cloudrun_standin --port 8091 --project ion-ops-local \
        --service us-central1/persona-router --service europe-west1/persona-router

Served: ``GET /v2/projects/P/locations/L/services/S``; ``PATCH`` of the same (UpdateService) with
``updateMask``, ``validateOnly``, ``allowMissing`` query parameters, answering a long-running
operation; ``GET /v2/projects/P/locations/L/operations/O`` (done, with the updated Service).
It checks what the real API checks for these fields: the name in the body matches the path, the
project and location exist, mask paths are known and mutable, counts are integers in range
(0..1000, min <= max), the etag (when sent) matches, a body without a mask carries a template.
Errors are google.rpc.Status JSON with the HTTP code the API uses. Read-only fields in a body are
ignored, as the API does. ``CloudRunState.faults`` queues a 429 or 503 answer for a method and
location (each answered once), as the API answers when its quota is spent or it is unavailable.
``GET /_standin/requests`` lists the PATCH requests received, for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.standin_http import JsonHandler

SERVICE_PATH = re.compile(r"^/v2/projects/([^/]+)/locations/([^/]+)/services/([^/:]+)$")
OPERATION_PATH = re.compile(r"^/v2/projects/([^/]+)/locations/([^/]+)/operations/([^/:]+)$")
MUTABLE_PATHS = {
    "scaling.min_instance_count",
    "scaling.max_instance_count",
    "template.scaling.min_instance_count",
    "template.scaling.max_instance_count",
    "description",
    "labels",
    "annotations",
    "template",
    "scaling",
}
READ_ONLY = {
    "uid", "generation", "createTime", "updateTime", "deleteTime", "expireTime", "creator",
    "lastModifier", "observedGeneration", "terminalCondition", "conditions", "latestReadyRevision",
    "latestCreatedRevision", "trafficStatuses", "uri", "urls", "reconciling", "satisfiesPzs",
}  # fmt: skip
MAX_INSTANCES = 1000
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"


def _snake(path: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), path)


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


class ApiError(Exception):
    STATUS = {
        400: "INVALID_ARGUMENT",
        404: "NOT_FOUND",
        409: "ABORTED",
        405: "UNIMPLEMENTED",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
    }

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": self.STATUS.get(self.code, "UNKNOWN"),
            }
        }


class CloudRunState:
    def __init__(self, project: str) -> None:
        self.project = project
        self.services: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        # Answers to give instead of serving, for tests: (method, location, HTTP code), each once,
        # in order (the API's 429 quota and 503 unavailable answers).
        self.faults: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def add_service(
        self, location: str, service: str, min_instances: int = 0, max_instances: int = 100
    ) -> None:
        name = f"projects/{self.project}/locations/{location}/services/{service}"
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.services[name] = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "createTime": now,
            "updateTime": now,
            "launchStage": "GA",
            "ingress": "INGRESS_TRAFFIC_ALL",
            "scaling": {"minInstanceCount": min_instances, "maxInstanceCount": max_instances},
            "template": {
                "scaling": {"minInstanceCount": 0, "maxInstanceCount": 100},
                "containers": [{"image": f"{location}-docker.pkg.dev/{self.project}/ion/{service}:latest"}],
                "maxInstanceRequestConcurrency": 80,
            },
            "uri": f"https://{service}-{location}.a.run.app",
            "etag": '"1"',
            "reconciling": False,
        }

    def fault(self, method: str, name: str) -> None:
        """Raise the first queued fault for this method and location, once."""
        location = name.split("/")[3] if name.count("/") >= 3 else ""
        with self.lock:
            for index, (fault_method, fault_location, code) in enumerate(self.faults):
                if fault_method == method and fault_location == location:
                    del self.faults[index]
                    message = "Quota exceeded" if code == 429 else "The service is currently unavailable"
                    raise ApiError(code, message)

    def get(self, name: str) -> dict[str, Any]:
        try:
            return self.services[name]
        except KeyError:
            raise ApiError(404, f"Resource '{name}' was not found") from None

    def update(self, name: str, body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid JSON payload: expected a Service object")
        unknown = sorted(set(query) - {"updateMask", "update_mask", "validateOnly", "allowMissing", "$alt"})
        if unknown:
            raise ApiError(
                400,
                f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot bind query parameter.',
            )
        if body.get("name") not in (None, name):
            raise ApiError(
                400, f"service.name {body.get('name')!r} does not match the resource in the URL {name!r}"
            )
        mask_text = (query.get("updateMask") or query.get("update_mask") or [""])[0]
        paths = [_snake(p.strip()) for p in mask_text.split(",") if p.strip()]
        bad = [p for p in paths if p not in MUTABLE_PATHS]
        if bad:
            raise ApiError(400, f"update_mask path '{bad[0]}' is not a mutable field of Service")
        with self.lock:
            current = self.get(name)
            etag = body.get("etag")
            if etag and etag != current["etag"]:
                raise ApiError(
                    409, "The etag in the request does not match the current resource; read it again"
                )
            updated = copy.deepcopy(current)
            if paths:
                for path in paths:
                    _copy_path(body, updated, path)
            else:
                if "template" not in body:
                    raise ApiError(
                        400, "service.template is required: without update_mask the whole Service is replaced"
                    )
                for key, value in body.items():
                    if key not in READ_ONLY and key != "etag":
                        updated[key] = copy.deepcopy(value)
            for where in ("scaling", "template.scaling"):
                _check_scaling(_dig(updated, where), where)
            validate_only = (query.get("validateOnly") or ["false"])[0] == "true"
            self.requests.append(
                {"name": name, "update_mask": paths, "body": body, "validate_only": validate_only}
            )
            if not validate_only:
                generation = int(current["generation"]) + 1
                updated["generation"] = str(generation)
                updated["etag"] = f'"{generation}"'
                updated["updateTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                self.services[name] = updated
            _, _, _, location, *_ = name.split("/")  # projects/P/locations/L/services/S
            op_name = f"projects/{self.project}/locations/{location}/operations/{uuid.uuid4()}"
            operation = {
                "name": op_name,
                "metadata": {"@type": SERVICE_TYPE, **updated},
                "done": True,
                "response": {"@type": SERVICE_TYPE, **updated},
            }
            self.operations[op_name] = operation
            # The API answers the PATCH before the rollout finishes: done comes with the GET.
            return {key: value for key, value in operation.items() if key not in ("done", "response")}

    def operation(self, name: str) -> dict[str, Any]:
        try:
            return self.operations[name]
        except KeyError:
            raise ApiError(404, f"Operation '{name}' was not found") from None


def _dig(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(_camel(part), node.get(part))
    return node


def _copy_path(source: dict[str, Any], target: dict[str, Any], path: str) -> None:
    parts = [_camel(p) for p in path.split(".")]
    value: Any = source
    for part in parts:
        value = value.get(part) if isinstance(value, dict) else None
    node = target
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)  # a masked field absent from the body is cleared, as the API does
    else:
        node[parts[-1]] = copy.deepcopy(value)


def _check_scaling(scaling: Any, where: str) -> None:
    if scaling is None:
        return
    if not isinstance(scaling, dict):
        raise ApiError(400, f"{where} must be an object")
    counts = {}
    for field in ("minInstanceCount", "maxInstanceCount"):
        value = scaling.get(field, 0)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"{where}.{_snake(field)} must be an integer")
        if not 0 <= value <= MAX_INSTANCES:
            raise ApiError(400, f"{where}.{_snake(field)} must be between 0 and {MAX_INSTANCES}, not {value}")
        counts[field] = value
    if counts["maxInstanceCount"] and counts["minInstanceCount"] > counts["maxInstanceCount"]:
        raise ApiError(
            400,
            f"{where}.min_instance_count ({counts['minInstanceCount']}) must not exceed "
            f"{where}.max_instance_count ({counts['maxInstanceCount']})",
        )


def make_handler(state: CloudRunState) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if url.path == "/_standin/requests" and method == "GET":
                    self.send_json(200, {"requests": state.requests})
                    return
                if url.path in ("/", "/health") and method == "GET":
                    self.send_json(200, {"status": "ok", "services": sorted(state.services)})
                    return
                service = SERVICE_PATH.match(url.path)
                operation = OPERATION_PATH.match(url.path)
                if service and service.group(1) != state.project:
                    raise ApiError(404, f"Project '{service.group(1)}' was not found")
                if service:
                    state.fault(method, url.path[len("/v2/") :])
                if service and method == "GET":
                    self.send_json(200, state.get(url.path[len("/v2/") :]))
                elif service and method == "PATCH":
                    try:
                        body = json.loads(raw or b"{}")
                    except json.JSONDecodeError:
                        raise ApiError(400, "Invalid JSON payload received.") from None
                    self.send_json(200, state.update(url.path[len("/v2/") :], body, query))
                elif operation and method == "GET":
                    self.send_json(200, state.operation(url.path[len("/v2/") :]))
                else:
                    raise ApiError(
                        404 if method == "GET" else 405, f"{method} {url.path} is not served by the stand-in"
                    )
            except ApiError as exc:
                self.send_json(exc.code, exc.body())

        def do_GET(self) -> None:
            self._route("GET")

        def do_PATCH(self) -> None:
            self._route("PATCH")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


def serve(port: int, state: CloudRunState, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start serving in a daemon thread; ``server.shutdown()`` stops it."""
    server = ThreadingHTTPServer((host, port), make_handler(state))
    threading.Thread(target=server.serve_forever, name="cloudrun-standin", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Cloud Run Admin API v2 stand-in")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--project", default="ion-ops-local")
    parser.add_argument("--service", action="append", default=[], help="LOCATION/SERVICE (repeatable)")
    args = parser.parse_args()
    state = CloudRunState(args.project)
    for item in args.service:
        location, _, name = item.partition("/")
        state.add_service(location, name)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    print(
        f"cloud run stand-in on http://127.0.0.1:{args.port} for {', '.join(args.service) or 'no services'}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
