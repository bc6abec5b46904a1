"""`make run`'s stack: starts every part on its port, prints `ready`, and leaves nothing
listening after SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from devtools.processes import free_port, port_open, python
from shared.topology import ROOT, load_topology


@pytest.mark.emulators
def test_stack_starts_everything_prints_ready_and_stops_clean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    topo = load_topology()
    env = {
        **os.environ,
        "ION_RUN_DIR": str(tmp_path),
        "ION_FIRESTORE_PORT": str(free_port()),
        "ION_PUBSUB_PORT": str(free_port()),
        "ION_REDIS_PORT": str(free_port()),
        "GOOGLE_CLOUD_PROJECT": "ion-ops-stack-test",
    }
    for var in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "REDIS_URL"):
        env.pop(var, None)
    ports = {}
    for name, cap in topo.capabilities.items():
        ports[name] = free_port()
        env[cap.port_env] = str(ports[name])
    serving = {fn.capability for fn in topo.functions.values()}

    proc = subprocess.Popen(
        [python(), "-m", "devtools.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any("ready" in line for line in seen):
            assert proc.poll() is None, "".join(seen[-30:])
            assert time.monotonic() < deadline, "no `ready` within 180 s:\n" + "".join(seen[-30:])
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        output = "".join(seen)
        for port_var in ("ION_FIRESTORE_PORT", "ION_PUBSUB_PORT", "ION_REDIS_PORT"):
            assert port_open(int(env[port_var]))
        for cap in serving:
            assert f"http://127.0.0.1:{ports[cap]}" in output
            urllib.request.urlopen(f"http://127.0.0.1:{ports[cap]}/health", timeout=5).close()
        assert (tmp_path / "logs" / "redis.log").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    listening = [
        p
        for p in [
            *ports.values(),
            int(env["ION_FIRESTORE_PORT"]),
            int(env["ION_PUBSUB_PORT"]),
            int(env["ION_REDIS_PORT"]),
        ]
        if port_open(p)
    ]
    assert listening == []
