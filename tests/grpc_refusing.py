"""A gRPC server that refuses every call with one status: a Google API (Firestore, Monitoring)
that answers, but refuses for good, for clients pointed at it as at an emulator."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc


class _RefuseAll(grpc.GenericRpcHandler):
    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        def refuse(_request: Any, context: grpc.ServicerContext) -> None:
            context.abort(self.code, f"refused by the test server: {handler_call_details.method}")

        # Both shapes a client may call: one answer, or a stream of them.
        if handler_call_details.method.endswith(("/BatchGetDocuments", "/RunQuery", "/Listen", "/Write")):
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)


@contextmanager
def refusing_grpc_server(code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED) -> Iterator[str]:
    """``host:port`` of a server refusing every call with ``code``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_RefuseAll(code),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
