"""An httpx client on the sandbox's API root, written from the API document (no project client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from clinic_pipeline.sandbox.launcher import SandboxHandle, TlsFiles


def issue_tls_files(directory: Path, *hosts: str) -> TlsFiles:
    """A throwaway CA, and a server certificate it signs for `hosts` (IP addresses or DNS names)."""
    ca = trustme.CA()
    leaf = ca.issue_cert(*hosts)
    files = TlsFiles(directory / "server.pem", directory / "server.key", directory / "ca.pem")
    ca.cert_pem.write_to_path(str(files.ca_file))
    leaf.private_key_pem.write_to_path(str(files.keyfile))
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(str(files.certfile), append=True)
    return files


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    with httpx.Client(base_url=f"{sandbox.base_url}/api", headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.root_url}/_sandbox", timeout=10) as client:
        yield client
