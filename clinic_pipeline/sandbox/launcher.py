"""Run the sandbox in a subprocess for the demo and the tests."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key, and the CA a client must trust to verify them."""

    certfile: Path
    keyfile: Path
    ca_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@dataclass(frozen=True)
class SandboxHandle:
    base_url: str  # what a Freshsales client is configured with: http(s)://127.0.0.1:P/crm/sales
    api_key: str
    port: int
    root_url: str  # http(s)://127.0.0.1:P, where /_sandbox/ lives
    tls: TlsFiles | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], root_url: str, verify: ssl.SSLContext | bool) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox exited with code {process.returncode} before answering")
        try:
            # Any answer (a 401 without a key) proves the server is up; no key, so no budget is spent.
            httpx.get(f"{root_url}/api/selector/territories", timeout=1.0, verify=verify)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"sandbox did not answer within {STARTUP_TIMEOUT_SECONDS:.0f} s")


@contextmanager
def running_sandbox(
    db: Path,
    api_key: str,
    *,
    test_mode: bool = True,
    plan: str = "unlimited",
    port: int | None = None,
    tls: TlsFiles | None = None,
    **limits: int | bool | None,
) -> Iterator[SandboxHandle]:
    """Start `python -m clinic_pipeline.sandbox` on a free loopback port; stop it on exit.

    `tls`: serve HTTPS with these files (the handle's URLs are then https). `limits`: requests_per_hour,
    requests_per_minute, max_file_bytes (ints), retry_after (bool).
    """
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "clinic_pipeline.sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db),
        "--api-key",
        api_key,
        "--plan",
        plan,
    ]
    if test_mode:
        command.append("--test-mode")
    if tls is not None:
        command += ["--ssl-certfile", str(tls.certfile), "--ssl-keyfile", str(tls.keyfile)]
    for name, value in limits.items():
        flag = "--" + name.replace("_", "-")
        if name == "retry_after":
            command += [flag] if value else []
        elif value is not None:
            command += [flag, str(value)]
    process = subprocess.Popen(command)
    root_url = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
    try:
        # Probed as a client connects, verifying: a certificate the CA does not vouch for stops start-up here.
        _wait_until_up(process, root_url, True if tls is None else tls.client_context())
        yield SandboxHandle(base_url=f"{root_url}/crm/sales", api_key=api_key, port=port, root_url=root_url, tls=tls)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
