"""Requests per second the sandbox sustains for contact create + view over loopback with httpx.

Run `python clinic_pipeline_tests/benchmarks/bench_sandbox.py [N]`, or
`pytest -m slow clinic_pipeline_tests/benchmarks/bench_sandbox.py`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from clinic_pipeline.sandbox.launcher import running_sandbox

MIN_REQUESTS_PER_SECOND = 200


def measure(pairs: int) -> float:
    """Create `pairs` contacts and view each one; answer requests per second."""
    with tempfile.TemporaryDirectory() as tmp, running_sandbox(Path(tmp) / "bench.sqlite", "bench") as handle:
        headers = {"Authorization": "Token token=bench"}
        with httpx.Client(base_url=f"{handle.base_url}/api", headers=headers) as api:
            started = time.perf_counter()
            for i in range(pairs):
                body = {"first_name": f"P{i}", "email": f"p{i}@bench.example", "external_id": str(i)}
                created = api.post("/contacts", json={"contact": body})
                assert created.status_code == 201, created.text
                assert api.get(f"/contacts/{created.json()['contact']['id']}").status_code == 200
            elapsed = time.perf_counter() - started
    return 2 * pairs / elapsed


@pytest.mark.slow
def test_sandbox_is_fast_enough_for_tests() -> None:
    assert measure(1000) >= MIN_REQUESTS_PER_SECOND


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"{measure(n):.0f} requests/second ({n} creates + {n} views)")
