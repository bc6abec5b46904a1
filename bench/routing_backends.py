"""What the routing bench's production path talks to: a Firestore and a Pub/Sub emulator and a
redis-server, with a customer key issued as the health capability issues one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROJECT = "ion-ops-bench"


class ProductionBackends:
    """A Firestore and a Pub/Sub emulator and a redis-server, a customer key issued, the
    ``metrics`` topic created: what the production path of ``route`` talks to."""

    def __init__(self) -> None:
        from devtools.emulators import start_firestore, start_pubsub, start_redis
        from devtools.processes import free_port

        log_dir = ROOT / ".run" / "bench-logs"
        self.processes = []
        fs_port, ps_port, redis_port = free_port(), free_port(), free_port()
        self.processes.append(start_redis(redis_port, log_dir=log_dir))
        self.processes.append(start_firestore(fs_port, log_dir=log_dir))
        self.processes.append(start_pubsub(ps_port, PROJECT, log_dir=log_dir))
        self.env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{fs_port}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ps_port}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        }
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self.customer_key = self._issue_customer_key()
            self._create_topic("metrics")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.redis_url = self.env["REDIS_URL"]

    @staticmethod
    def _issue_customer_key() -> str:
        """As the health capability issues one: ``new_key``, only its hash stored."""
        from google.cloud import firestore

        from shared.clock import utcnow
        from shared.customer_keys import (
            KEYS_COLLECTION,
            CustomerKeyRecord,
            hash_key,
            new_key,
            signing_secrets,
        )

        # Signed as routing's stack verifies it: its ION_CUSTOMER_KEY_SECRET, or the local default.
        secret = signing_secrets(os.environ.get("ION_CUSTOMER_KEY_SECRET", ""), PROJECT)[0]
        key_id, api_key = new_key(secret)
        record = CustomerKeyRecord(
            key_id=key_id,
            customer_id="bench-customer",
            key_hash=hash_key(api_key),
            created_at=utcnow(),
            signed=True,
        )
        firestore.Client(project=PROJECT).collection(KEYS_COLLECTION).document(key_id).create(
            record.model_dump()
        )
        return api_key

    @staticmethod
    def _create_topic(name: str) -> None:
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path(PROJECT, name))

    def published_messages(self) -> int:
        """Messages on ``metrics`` (through a subscription made before the runs)."""
        from google.cloud import pubsub_v1

        os.environ.update(self.env)
        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(PROJECT, "bench-metrics")
        total = 0
        while True:
            response = subscriber.pull(subscription=path, max_messages=1000, timeout=10)
            if not response.received_messages:
                return total
            total += len(response.received_messages)
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in response.received_messages])

    def subscribe(self) -> None:
        from google.cloud import pubsub_v1

        os.environ.update(self.env)
        subscriber = pubsub_v1.SubscriberClient()
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "bench-metrics"),
            topic=f"projects/{PROJECT}/topics/metrics",
        )

    def redis_calls(self, command: str) -> int:
        import redis

        stats = redis.Redis.from_url(self.redis_url).info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    def pids(self) -> list[int]:
        """The backends' processes (each with what it started, e.g. an emulator's JVM)."""
        return [proc.popen.pid for proc in self.processes]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
