"""A Firestore that goes down and comes back: a gRPC proxy in front of the Firestore emulator, which
functions are pointed at (``FIRESTORE_EMULATOR_HOST``) as at an emulator. Up, it forwards every
call unchanged; down, it refuses every call at once, as a client sees Firestore after its own
retries gave up. Data lives on in the emulator behind it, as it does in Firestore during an outage.

Down answers ABORTED, not UNAVAILABLE: the client library retries UNAVAILABLE itself for up to 60 s
(300 s for queries) per call before raising, which would stretch a drill of a few redeliveries to
many minutes without changing what our code sees in the end (an error it treats as transient)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

# Firestore's calls that answer with a stream; the rest answer once (Listen and Write, both ways
# streaming, are not used by our code).
STREAMING = ("/BatchGetDocuments", "/RunQuery", "/RunAggregationQuery")


class FirestoreProxy:
    def __init__(self, upstream: str) -> None:
        self._channel = grpc.insecure_channel(upstream)
        self._up = threading.Event()
        self._up.set()
        self.refused = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers((_Forward(self),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def down(self) -> None:
        self._up.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._server.stop(grace=None)
        self._channel.close()

    def _refuse_if_down(self, context: grpc.ServicerContext) -> None:
        if not self._up.is_set():
            self.refused += 1
            context.abort(grpc.StatusCode.ABORTED, "Firestore is down (outage drill)")

    def unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._refuse_if_down(context)
        try:
            answer: bytes = self._channel.unary_unary(method)(
                request, metadata=_metadata(context), timeout=30
            )
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")
        return answer

    def stream(self, method: str, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self._refuse_if_down(context)
        try:
            yield from self._channel.unary_stream(method)(request, metadata=_metadata(context), timeout=30)
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")


def _metadata(context: grpc.ServicerContext) -> list[tuple[str, Any]]:
    return [
        (key, value)
        for key, value in context.invocation_metadata()
        if not key.startswith((":", "grpc-")) and key != "user-agent"
    ]


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, proxy: FirestoreProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.endswith(STREAMING):
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: self.proxy.stream(method, request, context)
            )
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.proxy.unary(method, request, context)
        )


@contextmanager
def firestore_proxy(upstream: str) -> Iterator[FirestoreProxy]:
    proxy = FirestoreProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
