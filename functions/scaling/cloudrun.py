"""Applying min/max instances through the Cloud Run Admin API v2 (``google-cloud-run``).

Service-level ``scaling.min_instance_count`` / ``max_instance_count`` by default (no new revision);
the revision template's with ``ION_SCALING_APPLY_LEVEL=template``. Only when the live values differ:
the live service is read first, so a re-run, a retry or a decision replayed after a failed write
converges on the same PATCH or none (idempotent). The update names its fields in ``update_mask``,
carries the etag it read (a concurrent change fails instead of being overwritten) and waits for
the long-running operation, bounded by ``ION_SCALING_APPLY_TIMEOUT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from shared.logging import get_logger

log = get_logger("scaling.cloudrun")


@dataclass(frozen=True)
class LiveScaling:
    min_instances: int
    max_instances: int
    etag: str


@dataclass(frozen=True)
class ApplyResult:
    outcome: Literal["applied", "unchanged"]
    before: LiveScaling
    after: LiveScaling


@lru_cache(maxsize=4)
def _client(endpoint: str) -> Any:
    from google.cloud import run_v2

    if not endpoint:
        return run_v2.ServicesClient()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    # A local stand-in: plain HTTP REST, no Google credentials.
    return run_v2.ServicesClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint),
        credentials=AnonymousCredentials(),
    )


def reset_clients() -> None:
    _client.cache_clear()


class CloudRunScaler:
    def __init__(
        self, project: str, endpoint: str = "", level: str = "service", timeout: float = 60.0
    ) -> None:
        self.project = project
        self.endpoint = endpoint
        self.level = level
        self.timeout = timeout

    def name(self, region: str, service: str) -> str:
        return f"projects/{self.project}/locations/{region}/services/{service}"

    def read(self, region: str, service: str, *, timeout: float | None = None) -> LiveScaling:
        found = _client(self.endpoint).get_service(
            name=self.name(region, service), timeout=timeout or self.timeout
        )
        scaling = found.template.scaling if self.level == "template" else found.scaling
        return LiveScaling(int(scaling.min_instance_count), int(scaling.max_instance_count), found.etag)

    def apply(
        self,
        region: str,
        service: str,
        min_instances: int,
        max_instances: int,
        *,
        timeout: float | None = None,
        live: LiveScaling | None = None,
    ) -> ApplyResult:
        """``live``: the read the decision was made from; its etag makes the update fail if the
        service changed since (a hand change is never overwritten by a decision made before it)."""
        from google.cloud import run_v2
        from google.protobuf import field_mask_pb2

        timeout = timeout or self.timeout
        before = live or self.read(region, service, timeout=timeout)
        if (before.min_instances, before.max_instances) == (min_instances, max_instances):
            return ApplyResult("unchanged", before, before)
        if self.level == "template":
            body = run_v2.Service(
                name=self.name(region, service),
                etag=before.etag,
                template=run_v2.RevisionTemplate(
                    scaling=run_v2.RevisionScaling(
                        min_instance_count=min_instances, max_instance_count=max_instances
                    )
                ),
            )
            paths = ["template.scaling.min_instance_count", "template.scaling.max_instance_count"]
        else:
            body = run_v2.Service(
                name=self.name(region, service),
                etag=before.etag,
                scaling=run_v2.ServiceScaling(
                    min_instance_count=min_instances, max_instance_count=max_instances
                ),
            )
            paths = ["scaling.min_instance_count", "scaling.max_instance_count"]
        request = run_v2.UpdateServiceRequest(service=body, update_mask=field_mask_pb2.FieldMask(paths=paths))
        operation = _client(self.endpoint).update_service(request=request, timeout=timeout)
        updated = operation.result(timeout=timeout)
        scaling = updated.template.scaling if self.level == "template" else updated.scaling
        after = LiveScaling(int(scaling.min_instance_count), int(scaling.max_instance_count), updated.etag)
        log.info(
            "scaling applied",
            extra={
                "region": region,
                "service": service,
                "min": min_instances,
                "max": max_instances,
                "level": self.level,
            },
        )
        return ApplyResult("applied", before, after)
