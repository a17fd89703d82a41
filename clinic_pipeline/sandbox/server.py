"""Start the sandbox: loopback only, one worker (the in-memory cache assumes a single process)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clinic_pipeline.sandbox.app import build_app
from clinic_pipeline.sandbox.runtime import DEFAULT_MAX_FILE_BYTES, TRANSPORT_KEY, Limits, Sandbox


class _TransportExposingProtocol(HttpToolsProtocol):
    """Hands each request's transport to the app so a connection-reset fault can drop it unanswered."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[TRANSPORT_KEY] = self.transport  # type: ignore[literal-required]


def require_loopback(host: str) -> None:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise ValueError(f"cannot resolve host {host!r}") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ValueError(f"the sandbox binds loopback only, not {host!r}")


def serve(
    host: str,
    port: int,
    db: Path,
    api_key: str,
    test_mode: bool = False,
    plan: str = "unlimited",
    requests_per_hour: int | None = None,
    requests_per_minute: int | None = None,
    max_file_bytes: int | None = None,
    retry_after: bool = False,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> None:
    """Serve plain HTTP, or HTTPS when given a certificate chain and its key (PEM files)."""
    require_loopback(host)
    if not api_key:
        raise ValueError("an API key is required")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ValueError("TLS needs both a certificate file and a key file")
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(
        db=db,
        api_key=api_key,
        test_mode=test_mode,
        limits=Limits.for_plan(plan, requests_per_hour, requests_per_minute, retry_after),
        max_file_bytes=max_file_bytes if max_file_bytes is not None else DEFAULT_MAX_FILE_BYTES,
    )
    try:
        uvicorn.run(
            build_app(sandbox),
            host=host,
            port=port,
            http=_TransportExposingProtocol,
            loop="asyncio",
            access_log=False,
            log_level="warning",
            workers=1,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
    finally:
        sandbox.store.close()
