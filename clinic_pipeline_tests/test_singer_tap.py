"""The unmodified Singer tap-freshsales 0.1.1 from PyPI, run as a subprocess against the sandbox over TLS.

How it reaches the sandbox without a line of it changed:
- Its pins (requests 2.20.0, urllib3 1.24, idna 2.7, jsonschema 2.6, backoff 1.3) would downgrade what
  this project runs on, so the test installs it into its own virtualenv under tmp_path (a few seconds
  from pip's cache).
- It builds every URL as `https://<domain>.freshsales.io/api/...`: no port, no other host. A hook that
  a .pth file loads in the tap's virtualenv resolves that one name and port 443 to the sandbox's
  127.0.0.1:<port>, as curl's `--connect-to` does; the URL, Host header, SNI and certificate check keep
  the real name. Any other *.freshsales.io name fails to resolve, so a broken mapping cannot reach the
  real service.
- It sends through `requests.Session.send`, which skips requests' environment merge: REQUESTS_CA_BUNDLE
  is never read and certifi's bundle is. The test's CA goes into the tap virtualenv's certifi bundle,
  its trust store; the sandbox's certificate names both 127.0.0.1 (for our client) and the tap's host.
- singer-python 5.1.1 hands `--catalog` to the tap as a Catalog object, which the tap subscripts, so
  its CLI can only sync the whole discovered catalog. That run stops at `leads` (not part of the API:
  the sandbox answers 404) after contacts, appointments, deals and sales activities. The two streams
  after it, accounts and tasks, are synced by the tap's own `sync()` given the discovered catalog as
  the dict its code reads, with just those two selected. Both runs go at once: the tap paces itself to
  one request every 2 s, which is why this test is slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient
from clinic_pipeline.sandbox.launcher import SandboxHandle, running_sandbox
from clinic_pipeline_tests.sandbox.conftest import issue_tls_files

TAP = "tap-freshsales==0.1.1"
DOMAIN = "clinic-sandbox"
TAP_HOST = f"{DOMAIN}.freshsales.io"
API_KEY = "singer-tap-key"
RUN_TIMEOUT_SECONDS = 300
# Emitted stream -> the sandbox snapshot's kind. The tap writes sales activities as "sale_activities".
STREAM_KINDS = {
    "contacts": "contacts",
    "appointments": "appointments",
    "deals": "deals",
    "sale_activities": "sales_activities",
    "accounts": "sales_accounts",
    "tasks": "tasks",
}
DISCOVERED = {"contacts", "appointments", "deals", "sales_activities", "leads", "accounts", "tasks"}
AFTER_LEADS = {"accounts", "tasks"}

CONNECT_TO_HOOK = '''\
"""Loaded by a .pth file: connect one host:port to another, as curl's --connect-to does."""
import os
import socket

_target = os.environ.get("SANDBOX_CONNECT_TO")
if _target:
    _name, _port, _to_host, _to_port = _target.split(":")
    _getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == _name and str(port) == _port:
            return _getaddrinfo(_to_host, int(_to_port), *args, **kwargs)
        if isinstance(host, str) and host.endswith(".freshsales.io"):
            raise socket.gaierror(socket.EAI_NONAME, "only the sandbox is reachable from this test")
        return _getaddrinfo(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
'''

SYNC_SELECTED = """\
import json, sys
import tap_freshsales as tap
config, catalog = (json.load(open(path)) for path in sys.argv[1:3])
tap.CONFIG.update(config)
tap.sync(config, {}, catalog)
"""


def _venv_with_tap(root: Path) -> Path:
    """A virtualenv holding the tap; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", TAP]
    done = subprocess.run(install, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    assert done.returncode == 0, f"pip could not install {TAP}:\n{done.stderr[-3000:]}"
    return python


def _point_at_sandbox(python: Path, ca_file: Path) -> None:
    where = "import certifi, sysconfig; print(certifi.where()); print(sysconfig.get_paths()['purelib'])"
    bundle, site = subprocess.run([str(python), "-c", where], capture_output=True, text=True, check=True).stdout.split()
    with open(bundle, "a") as trusted:
        trusted.write("\n" + ca_file.read_text())
    Path(site, "_sandbox_connect_to.py").write_text(CONNECT_TO_HOOK)
    Path(site, "_sandbox_connect_to.pth").write_text("import _sandbox_connect_to\n")


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="seconds")


def _seed(client: FreshsalesClient) -> None:
    accounts = [client.create("sales_accounts", {"name": f"Clinic {i}"})["id"] for i in range(2)]
    contacts = [
        client.create(
            "contacts",
            {
                "first_name": f"P{i}",
                "email": f"p{i}@x.example",
                "sales_accounts": [{"id": accounts[0], "is_primary": True}],
            },
        )["id"]
        for i in range(3)
    ]
    for stage in (16_000_110_001, 16_000_110_005, 16_000_110_006):  # Billed (open), Paid (won), Denied (lost)
        client.create("deals", {"name": f"Invoice {stage}", "amount": 120, "deal_stage_id": stage})
    for days in (-30, -2, 5):
        client.create(
            "appointments",
            {
                "title": f"Visit {days}",
                "from_date": _iso(timedelta(days=days)),
                "end_date": _iso(timedelta(days=days, hours=1)),
            },
        )
    for contact in contacts[:2]:
        client.create(
            "sales_activities",
            {
                "title": "Call",
                "sales_activity_type_id": 16_000_300_001,
                "start_date": _iso(timedelta(days=-1)),
                "end_date": _iso(timedelta(days=-1, minutes=10)),
                "targetable_type": "Contact",
                "targetable_id": contact,
            },
        )
    for days, status in ((1, 0), (-3, 0), (-5, 1)):  # due tomorrow, overdue, completed
        client.create(
            "tasks",
            {
                "title": f"Follow up {days}",
                "due_date": _iso(timedelta(days=days)),
                "targetable_type": "Contact",
                "targetable_id": contacts[0],
                "status": status,
            },
        )


def _held(sandbox: SandboxHandle) -> dict[str, set[int]]:
    assert sandbox.tls is not None
    snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", verify=sandbox.tls.client_context()).json()
    return {kind: {r["id"] for r in snapshot[kind] if not r.get("is_deleted")} for kind in STREAM_KINDS.values()}


def _discovered_catalog(stderr: str) -> dict[str, Any]:
    """The tap logs its catalog (INFO, indented JSON) instead of printing it."""
    catalog, _ = json.JSONDecoder().raw_decode(stderr[stderr.index("{") :])
    return catalog


def _select(catalog: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
    return catalog


def _records(stdout: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            found[message["stream"]].append(message["record"])
    return found


@pytest.mark.slow
def test_singer_tap_reads_every_record_the_sandbox_holds_over_tls(tmp_path: Path) -> None:
    python = _venv_with_tap(tmp_path / "tap-venv")
    tls = issue_tls_files(tmp_path, "127.0.0.1", TAP_HOST)
    _point_at_sandbox(python, tls.ca_file)
    with running_sandbox(tmp_path / "sandbox.sqlite", API_KEY, tls=tls) as sandbox:
        trusted = httpx.HTTPTransport(verify=tls.client_context())
        with FreshsalesClient(sandbox.base_url, SecretStr(API_KEY), transport=trusted) as client:
            _seed(client)
        held = _held(sandbox)
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"api_key": API_KEY, "domain": DOMAIN, "start_date": "2000-01-01T00:00:00Z"}))
        env = {**os.environ, "SANDBOX_CONNECT_TO": f"{TAP_HOST}:443:127.0.0.1:{sandbox.port}"}
        tap = [str(python.parent / "tap-freshsales"), "--config", str(config)]

        discovery = subprocess.run([*tap, "--discover"], env=env, capture_output=True, text=True, timeout=60)
        assert discovery.returncode == 0, discovery.stderr
        catalog = _discovered_catalog(discovery.stderr)
        assert {s["tap_stream_id"] for s in catalog["streams"]} == DISCOVERED
        selected = tmp_path / "catalog.json"
        selected.write_text(json.dumps(_select(catalog, AFTER_LEADS)))

        runs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for command in (tap, [str(python), "-c", SYNC_SELECTED, str(config), str(selected)])
        ]
        (cli_out, cli_err), (rest_out, rest_err) = (run.communicate(timeout=RUN_TIMEOUT_SECONDS) for run in runs)
        requests = httpx.get(f"{sandbox.root_url}/_sandbox/requests", verify=tls.client_context()).json()

    # The CLI sync ends where the API ends: leads, the one path the sandbox does not know.
    assert runs[0].returncode == 1
    assert f"GET https://{TAP_HOST}/api/leads/filters?per_page=100&page=1: [404" in cli_err
    assert requests["requests"]["GET (unknown)"] == 1
    assert runs[1].returncode == 0, rest_err
    emitted = _records(cli_out) | _records(rest_out)
    assert set(emitted) == set(STREAM_KINDS)
    for stream, kind in STREAM_KINDS.items():
        # The tap reads entities view by view, so a record in two views comes twice: compare ids.
        assert {r["id"] for r in emitted[stream]} == held[kind], stream
