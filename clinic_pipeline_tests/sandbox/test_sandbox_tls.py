"""The sandbox over TLS: what a client that insists on https (a third-party tap) talks to."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, NetworkError, RetryPolicy
from clinic_pipeline.sandbox.launcher import running_sandbox
from clinic_pipeline_tests.sandbox.conftest import issue_tls_files


def test_https_with_a_certificate_for_127_0_0_1(tmp_path: Path) -> None:
    tls = issue_tls_files(tmp_path, "127.0.0.1")
    with running_sandbox(tmp_path / "db.sqlite", "k", tls=tls) as handle:
        assert handle.base_url.startswith("https://127.0.0.1:")
        trusted = httpx.HTTPTransport(verify=tls.client_context())
        with FreshsalesClient(handle.base_url, SecretStr("k"), transport=trusted) as client:
            contact = client.create("contacts", {"first_name": "T", "email": "t@x.example"})
            assert client.get("contacts", contact["id"])["email"] == "t@x.example"
            # Server-built URLs carry the scheme the client came in with.
            job = client.bulk_upsert("contacts", [{"unique_identifier": {"emails": "u@x.example"}, "data": {}}])
            assert job.done
        with (
            FreshsalesClient(handle.base_url, SecretStr("k"), retry_policy=RetryPolicy(max_attempts=1)) as untrusting,
            pytest.raises(NetworkError),
        ):
            untrusting.selector("territories")  # the default trust store does not know the test's CA
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{handle.port}/api/selector/territories")
