"""The deployment topology (``topology.yaml``) as validated models.

Terraform reads the same file with ``yamldecode``; the local stack and the tests read it here.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from yaml.constructor import SafeConstructor

from shared.yaml_files import SAFE_LOADER

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY_FILE = ROOT / "topology.yaml"


# A path people open through the load balancer (terraform/public_access.tf): under /v1/ or
# /dashboards, lower-case segments, and `*` only as a final `/*` (the URL map's path rule syntax).
# Never /health, a push path (/projects/...) or the root, which are for the platform alone.
PUBLIC_PATH = re.compile(r"^/(v1/[a-z0-9][a-z0-9._-]*|dashboards)(/[a-z0-9][a-z0-9._-]*)*(/\*)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capability(_Strict):
    port: int = Field(gt=0, lt=65536)
    port_env: str

    def local_port(self) -> int:
        return int(os.environ.get(self.port_env, self.port))


class Function(_Strict):
    capability: str
    trigger: Literal["http", "pubsub"]
    description: str = ""
    topic: str | None = None
    # A pubsub function with `dead_letters: true` (and no `topic`) is pushed every topic's
    # dead-letter topic `<topic>-dead-letter`.
    dead_letters: bool = False
    public: bool = False
    # IAM members allowed to invoke a non-public function besides the scheduler and push accounts,
    # e.g. "serviceAccount:otel-collector@P.iam.gserviceaccount.com".
    invokers: list[str] = []
    memory: str = "256Mi"
    cpu: str = "1"
    timeout_seconds: int = Field(default=60, gt=0, le=3600)
    min_instances: int = Field(default=0, ge=0)
    max_instances: int = Field(default=10, ge=1)
    concurrency: int = Field(default=1, ge=1, le=1000)
    roles: list[str] = []
    # The Firestore database its Firestore role is conditioned on: the public route's collections
    # live in a database of their own, so it cannot write what decides paging or access.
    firestore_database: Literal["(default)", "route"] = "(default)"
    # Topics (or a topic's "<topic>-dead-letter") the function publishes to:
    # roles/pubsub.publisher on each topic, never on the project.
    publishes: list[str] = []
    # Environment variable name -> Secret Manager secret id.
    secrets: dict[str, str] = {}
    # Plain settings Terraform supplies from its validated variables (terraform/main.tf:
    # local.deploy_settings), e.g. SLACK_CHANNEL.
    settings_from: list[str] = []
    env: dict[str, str] = {}
    # Paths people open through the HTTPS load balancer with IAP (terraform/public_access.tf):
    # the function gets a backend there, a path rule for each, and ingress from the load balancer.
    public_paths: list[str] = []
    # An http function whose routes another http function of its capability serves too: locally
    # (one port per capability) that one serves them, e.g. fan-out's public incident_webhooks.
    served_locally_by: str | None = None

    @model_validator(mode="after")
    def _topic_matches_trigger(self) -> Function:
        if (self.trigger == "pubsub") != (self.topic is not None or self.dead_letters):
            raise ValueError(
                "a pubsub function needs `topic` (or `dead_letters`); an http function must not have one"
            )
        if self.topic is not None and self.dead_letters:
            raise ValueError("a function takes either `topic` or `dead_letters`, not both")
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances exceeds max_instances")
        if self.public_paths and (self.trigger != "http" or self.public):
            raise ValueError("only a non-public http function takes `public_paths`")
        for path in self.public_paths:
            if not PUBLIC_PATH.match(path):
                raise ValueError(
                    f"public path {path!r} must be under /v1/ or /dashboards, with `*` only as a final /* "
                    "(never /health, a job or a push path)"
                )
        if len(self.public_paths) != len(set(self.public_paths)):
            raise ValueError("a public path is listed twice")
        return self


class Topic(_Strict):
    description: str = ""
    max_delivery_attempts: int = Field(default=10, ge=5, le=100)
    ack_deadline_seconds: int = Field(default=60, ge=10, le=600)
    message_retention: str = "86400s"


class Schedule(_Strict):
    function: str
    cron: str
    time_zone: str = "Etc/UTC"
    path: str = "/"
    body: dict[str, Any] = {}
    description: str = ""
    attempt_deadline: str = "180s"
    # Cloud Scheduler's wait before the first retry (retry_config.min_backoff_duration; later
    # retries wait as long or longer): with attempt_deadline it must cover the function's timeout.
    retry_min_backoff: str = "10s"

    @model_validator(mode="after")
    def _deadline_in_schedulers_range(self) -> Schedule:
        # Cloud Scheduler's range for an HTTP target; outside it the apply fails mid-way.
        if not 15 <= _seconds(self.attempt_deadline) <= 1800:
            raise ValueError(f"attempt_deadline {self.attempt_deadline} must be from 15s to 1800s")
        if not 1 <= _seconds(self.retry_min_backoff) <= 3600:
            raise ValueError(f"retry_min_backoff {self.retry_min_backoff} must be from 1s to 3600s")
        return self

    def first_retry_after(self) -> float:
        """Seconds from an attempt's start to the earliest retry of it."""
        return _seconds(self.attempt_deadline) + _seconds(self.retry_min_backoff)


def _seconds(duration: str) -> float:
    if not duration.endswith("s"):
        raise ValueError(f"duration {duration!r} must be in seconds, like 90s")
    return float(duration[:-1])


class TtlPolicy(_Strict):
    collection: str
    field: str


class IndexExemption(_Strict):
    collection: str
    field: str


class IndexedField(_Strict):
    field: str = Field(min_length=1)
    order: Literal["ASCENDING", "DESCENDING"]


class CompositeIndex(_Strict):
    """A Firestore composite index (query scope collection): production refuses a query that
    needs one not declared, the emulator never does (``shared/firestore_indexes.py`` checks)."""

    collection: str = Field(min_length=1)
    database: Literal["(default)", "route"] = "(default)"
    fields: tuple[IndexedField, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _fields_well_formed(self) -> CompositeIndex:
        paths = [f.field for f in self.fields]
        if len(paths) != len(set(paths)):
            raise ValueError(f"composite index on {self.collection}: a field is listed twice")
        if "__name__" in paths[:-1]:
            raise ValueError(f"composite index on {self.collection}: __name__ can only be the last field")
        return self


class Topology(_Strict):
    capabilities: dict[str, Capability]
    functions: dict[str, Function]
    topics: dict[str, Topic]
    schedules: dict[str, Schedule]
    ttl_policies: list[TtlPolicy] = []
    index_exemptions: list[IndexExemption] = []
    composite_indexes: list[CompositeIndex] = []

    @model_validator(mode="after")
    def _references_resolve(self) -> Topology:
        for name, fn in self.functions.items():
            if fn.capability not in self.capabilities:
                raise ValueError(f"function {name}: unknown capability {fn.capability!r}")
            if fn.topic is not None and fn.topic not in self.topics:
                raise ValueError(f"function {name}: unknown topic {fn.topic!r}")
            for topic in fn.publishes:
                # A topic of the topology, or one's dead-letter topic (fan-out dead-letters a
                # delivery that kept failing itself).
                if topic not in self.topics and topic.removesuffix("-dead-letter") not in self.topics:
                    raise ValueError(f"function {name}: publishes to unknown topic {topic!r}")
        for name, schedule in self.schedules.items():
            target = self.functions.get(schedule.function)
            if target is None or target.trigger != "http":
                raise ValueError(f"schedule {name}: {schedule.function!r} is not an http function")
            deadline = _seconds(schedule.attempt_deadline)
            if deadline > target.timeout_seconds:
                # The scheduler would keep waiting after the function was stopped, then retry
                # a run that may still be writing.
                raise ValueError(
                    f"schedule {name}: attempt_deadline {schedule.attempt_deadline} exceeds "
                    f"{schedule.function}'s timeout_seconds {target.timeout_seconds}"
                )
            if schedule.first_retry_after() < target.timeout_seconds:
                # Cloud Scheduler gives up on an attempt at its deadline but cannot stop it: a
                # retry sooner than the function's timeout could run beside the attempt.
                raise ValueError(
                    f"schedule {name}: a retry could start {schedule.first_retry_after():g}s after its "
                    f"attempt (attempt_deadline {schedule.attempt_deadline} + retry_min_backoff "
                    f"{schedule.retry_min_backoff}) while {schedule.function} may run "
                    f"{target.timeout_seconds}s: raise attempt_deadline or retry_min_backoff"
                )
        for name, fn in self.functions.items():
            # The dead-letter sink is pushed every topic's dead letters with that topic's ack
            # deadline (terraform/main.tf dead_letter_push).
            pushed_from = self.topics if fn.dead_letters else ([fn.topic] if fn.topic is not None else [])
            for topic in pushed_from:
                ack_deadline = self.topics[topic].ack_deadline_seconds
                if ack_deadline < fn.timeout_seconds:
                    # Pub/Sub would redeliver a message its first delivery is still working on.
                    raise ValueError(
                        f"function {name}: topic {topic}'s ack_deadline_seconds {ack_deadline} "
                        f"is below its timeout_seconds {fn.timeout_seconds}"
                    )
        for name, fn in self.functions.items():
            host = self.functions.get(fn.served_locally_by or "")
            wrong_host = host is None or host.trigger != "http" or host.capability != fn.capability
            if fn.served_locally_by and (wrong_host or fn.trigger != "http"):
                raise ValueError(
                    f"function {name}: served_locally_by must name another http function of {fn.capability}"
                )
        claimed: dict[str, str] = {}
        for name, fn in self.functions.items():
            jobs = {s.path for s in self.schedules.values() if s.function == name}
            for path in fn.public_paths:
                if path in jobs:
                    raise ValueError(f"function {name}: public path {path} is a scheduled job's path")
                if path in claimed:
                    raise ValueError(f"functions {claimed[path]} and {name} both claim public path {path}")
                claimed[path] = name
        if len(self.composite_indexes) != len(set(self.composite_indexes)):
            raise ValueError("a composite index is declared twice")
        ports = [c.port for c in self.capabilities.values()]
        if len(ports) != len(set(ports)):
            raise ValueError("two capabilities share a port")
        return self

    def load_balanced(self) -> dict[str, Function]:
        """The functions people open through the HTTPS load balancer with IAP."""
        return {n: f for n, f in self.functions.items() if f.public_paths}

    def functions_of(self, capability: str) -> dict[str, Function]:
        return {n: f for n, f in self.functions.items() if f.capability == capability}

    def subscribers(self, topic: str) -> dict[str, Function]:
        return {n: f for n, f in self.functions.items() if f.topic == topic}

    def dead_letter_topics(self) -> dict[str, str]:
        """Each topic's dead-letter topic, by topic."""
        return {name: f"{name}-dead-letter" for name in self.topics}

    def dead_letter_sinks(self) -> dict[str, Function]:
        return {n: f for n, f in self.functions.items() if f.dead_letters}


# Every deployed function reads this file at start (its role check): libyaml's parser where there
# is one (the pure-Python one took about 55 ms of that cold start, libyaml 8).
class _NoDuplicateKeys(SAFE_LOADER):
    """YAML keeps the last of two equal keys silently; here a repeated key is an error (an
    attempt deadline written twice must not quietly win or lose)."""


def _mapping_without_duplicates(loader: SafeConstructor, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ValueError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return SafeConstructor.construct_mapping(loader, node)


_NoDuplicateKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_topology(path: Path = TOPOLOGY_FILE) -> Topology:
    raw = yaml.load(path.read_text(), Loader=_NoDuplicateKeys)
    # YAML writes an empty mapping as {} but a missing section as None.
    for section in ("functions", "topics", "schedules"):
        raw[section] = raw.get(section) or {}
    return Topology.model_validate(raw)


@lru_cache(maxsize=1)
def topology() -> Topology:
    return load_topology()
