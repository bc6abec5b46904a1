"""Where ``shared.api_calls`` hears the calls it records, patched in by its ``install`` only: an
interceptor on every channel ``grpc`` makes, ``google.auth``'s ``AuthorizedSession`` (REST),
Pub/Sub's ``publish()`` (its batching threads send the RPC later) and the threads a function
starts, which inherit its attribution."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from shared.api_calls import active_recorder, calls_of, current_function, explicit_caller, record_call
from shared.api_methods import api_of, grpc_calls, rest_call
from shared.firestore_query_shapes import query_shape


def patch_clients() -> None:
    """Patch every place calls are heard (once: ``shared.api_calls.install`` guards it)."""
    _patch_grpc()
    _patch_pubsub_publish()
    _patch_authorized_session()
    _patch_threads()


def _raw(message: Any) -> Any:
    pb = getattr(type(message), "pb", None)  # proto-plus wraps a protobuf message
    return pb(message) if callable(pb) else message


def _on_grpc(method: str, request: Any) -> None:
    recorder = active_recorder()
    if recorder is None:
        return
    method = method.lstrip("/")
    publish = method == "google.pubsub.v1.Publisher/Publish"
    if not publish and (explicit_caller() or recorder.default_function) is None:
        return  # no function's call (a test seeding data): not even read
    request = _raw(request)
    if publish:
        # Sent by the client's batching thread: attribute to whoever published to this topic.
        callers = recorder.take_publishers(request.topic)
        own = explicit_caller() or recorder.default_function
        for function in sorted(callers | ({own} if own else set())):
            recorder.add(function, "pubsub.googleapis.com", method, request.topic)
        return
    shape = query_shape(method, request)
    query = shape.model_dump_json(exclude_defaults=True) if shape is not None else ""
    for resource, detail in grpc_calls(method, request):
        record_call(api_of(method), method, resource, detail, query)


# --- gRPC: an interceptor on every channel -------------------------------------------------------


def _interceptor() -> Any:
    import grpc

    class Interceptor(
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
            _safely(_on_grpc, details.method, request)
            return continuation(details, request)

        def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
            _safely(_on_grpc, details.method, request)
            return continuation(details, request)

        def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
            _safely(record_call, api_of(details.method.lstrip("/")), details.method.lstrip("/"), "", "stream")
            return continuation(details, request_iterator)

        def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
            _safely(record_call, api_of(details.method.lstrip("/")), details.method.lstrip("/"), "", "stream")
            return continuation(details, request_iterator)

    return Interceptor()


def _safely(hook: Callable[..., None], *args: Any) -> None:
    """A recorder bug must never break the call it watches; it is logged and the call goes on."""
    try:
        hook(*args)
    except Exception:  # noqa: BLE001
        from shared.logging import get_logger

        get_logger("api_calls").exception("recording an API call failed")


def _patch_grpc() -> None:
    import grpc

    interceptor = _interceptor()
    for name in ("insecure_channel", "secure_channel"):
        original = getattr(grpc, name)

        def channel(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            return grpc.intercept_channel(__original(*args, **kwargs), interceptor)

        setattr(grpc, name, channel)


def _pending_publish(topic: str) -> None:
    function = current_function()
    recorder = active_recorder()
    if function is not None and recorder is not None:
        recorder.note_publisher(topic, function)


def _patch_pubsub_publish() -> None:
    try:
        from google.cloud.pubsub_v1.publisher.client import Client
    except ImportError:  # pragma: no cover - the runtime always has it
        return
    original = Client.publish

    def publish(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        _safely(_pending_publish, topic)
        return original(self, topic, *args, **kwargs)

    Client.publish = publish  # type: ignore[method-assign]


def _patch_authorized_session() -> None:
    from google.auth.transport.requests import AuthorizedSession

    original = AuthorizedSession.request

    def request(self: Any, method: str, url: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if active_recorder() is not None and current_function() is not None:
            _safely(_on_rest, method, url, data)
        return original(self, method, url, data, *args, **kwargs)

    AuthorizedSession.request = request  # type: ignore[method-assign]


def _on_rest(method: str, url: str, data: Any) -> None:
    for api, name, resource, detail in rest_call(method, url, data):
        record_call(api, name, resource, detail)


# --- threads and the functions-framework apps ----------------------------------------------------


def _patch_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Thread.start
    bootstrap = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def thread_start(self: threading.Thread) -> None:
        self._ion_api_caller = explicit_caller()  # type: ignore[attr-defined]
        start(self)

    def thread_bootstrap(self: threading.Thread) -> None:
        function = getattr(self, "_ion_api_caller", None)
        if function is None:
            bootstrap(self)
            return
        with calls_of(function):  # set in the new thread's own, empty context
            bootstrap(self)

    threading.Thread.start = thread_start  # type: ignore[method-assign]
    threading.Thread._bootstrap_inner = thread_bootstrap  # type: ignore[attr-defined]

    submit = ThreadPoolExecutor.submit

    def executor_submit(
        self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        function = explicit_caller()
        if function is None:
            return submit(self, fn, *args, **kwargs)

        def attributed(*a: Any, **k: Any) -> Any:
            with calls_of(function):
                return fn(*a, **k)

        return submit(self, attributed, *args, **kwargs)

    ThreadPoolExecutor.submit = executor_submit  # type: ignore[assignment]
