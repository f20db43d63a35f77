"""The team setup on loopback, for the slow tests: PostgreSQL + MLflow server (``ggevo-server``'s
``TeamServer``) and a local Ray head, each started and stopped by its own process id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ggevo.pipeline.team.server import free_port

# Ray swaps 127.0.0.1 for the machine's address unless told this is a one-machine cluster
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# what a job must not find in its inherited environment: the sweep has to send it
SWEEP_VARS = ("MLFLOW_TRACKING_URI", "GGEVO_SWEEP_PARENT", "GGEVO_ROOT")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SWEEP_VARS and not k.startswith("RAY_")}
    return {**env, **LOOPBACK_RAY, **extra}


@contextmanager
def ray_head(folder: Path, num_cpus: int = 2) -> Iterator[tuple[str, subprocess.Popen]]:
    """``ray start --head --block`` on 127.0.0.1 with free ports; yields ``(address, process)``.
    Stopped by SIGTERM to that process (it stops the Ray processes it started), killed if it lingers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ray = Path(sys.executable).parent / "ray"
    log = folder / "ray_start.log"
    cmd = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={folder}",
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
           f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while b"Ray runtime started" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "Ray head did not start in 180 s:\n" + log.read_text()[-3000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def listeners(pids: list[int]) -> list[tuple[str, str, int]]:
    """``(process name, address, port)`` of every listening TCP socket of these processes and their descendants."""
    import psutil

    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    found = []
    for p in procs:
        try:
            for c in p.net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN:
                    found.append((p.name(), c.laddr.ip, c.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")
