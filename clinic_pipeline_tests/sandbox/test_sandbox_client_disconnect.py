"""A client killed in the middle of sending a body (the kill harness does it every run) is no sandbox bug: no
traceback in the server's log, nothing written, and the next request is served."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from clinic_pipeline.sandbox.launcher import free_port

API_KEY = "disconnect-key"


def test_a_client_gone_mid_body_leaves_no_traceback_and_no_record(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sandbox.log"
    command = [sys.executable, "-m", "clinic_pipeline.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--db", str(tmp_path / "sandbox.db"), "--api-key", API_KEY, "--test-mode", "--plan", "unlimited"]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/crm/sales/api"
    headers = {"Authorization": f"Token token={API_KEY}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/selector/owners", headers=headers, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        # A create whose body stops short of its Content-Length, then the connection closes.
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                b"POST /crm/sales/api/contacts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Token token={API_KEY}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
                + b'{"contact": {"first_name": "Cut'
            )
        time.sleep(1.0)
        answer = httpx.get(f"{base}/contacts/view/1", headers=headers, timeout=10)
        assert answer.status_code in (200, 404)
        listed = httpx.get(f"{base}/filtered_search/contact", headers=headers, timeout=10)
        assert "Cut" not in listed.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = log.read_text()
    assert "Traceback" not in output and "handler failed" not in output, output[-3000:]
