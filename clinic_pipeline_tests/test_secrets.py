"""Secrets of the source system never migrate: recognised by name and by value shape, refused at confirmation."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

BCRYPT = "$2y$10$" + "abcdefghijklmnopqrstuv0123456789ABCDEFGHIJKLMNOPQRS"


def _export(path: Path) -> Path:
    db = path / "clinic.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript(
            """
            CREATE TABLE patients (pid INTEGER PRIMARY KEY, fname TEXT, lname TEXT, email TEXT, portal_pin TEXT);
            CREATE TABLE staff (id INTEGER PRIMARY KEY, username TEXT, email TEXT, passwd TEXT, api_token TEXT,
                                login_value TEXT);
            """
        )
        con.executemany(
            "INSERT INTO patients VALUES (?, ?, ?, ?, ?)",
            [(1000 + n, f"First{n}", f"Last{n}", f"p{n}@example.org", f"{1000 + n * 7}") for n in range(30)],
        )
        con.executemany(
            "INSERT INTO staff VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    n,
                    f"user{n}",
                    f"staff{n}@clinic.example",
                    BCRYPT[:-2] + f"{n:02d}",
                    f"tok{n}",
                    BCRYPT[:-2] + f"{n:02d}",
                )
                for n in range(1, 8)
            ],
        )
    return db


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def test_secrets_are_proposed_unmigrated_and_refused_unless_marked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))}
    env |= {"CLINIC_DATA_DIR": str(tmp_path / "data"), "CLINIC_SOURCE": f"sqlite:///{_export(tmp_path)}"}
    assert _cli(["inventory"], env, tmp_path).returncode == 0
    proposed = _cli(["propose-mapping"], env, tmp_path)
    assert proposed.returncode == 0, proposed.stderr
    # What the proposer assumed is printed, not only written to a file: no manifest names a time zone.
    assert "assumed: time zone" in proposed.stdout
    plan_path = tmp_path / "data" / "plan" / "mapping_plan.yaml"
    plan = yaml.safe_load(plan_path.read_text())
    lines = {(o["source_table"], f["source"]): f for o in plan["objects"] for f in o["fields"]}
    # By name (pin, passwd, token) and by value shape (a bcrypt hash under an innocent name).
    for secret in (("patients", "portal_pin"), ("staff", "passwd"), ("staff", "api_token"), ("staff", "login_value")):
        assert lines[secret]["target"] is None, secret
        assert "secret" in lines[secret]["reason"]
    assert lines[("patients", "email")]["target"] == "emails"

    # A person who points a secret at a custom field is refused, with the column named and no value shown.
    patients = next(o for o in plan["objects"] if o["source_table"] == "patients")
    pin = next(f for f in patients["fields"] if f["source"] == "portal_pin")
    pin |= {"target": "cf_portal_pin", "custom": True, "type": "text", "transform": "trim"}
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False))
    refused = _cli(["confirm-mapping", "--by", "Dr. Reviewer"], env, tmp_path)
    assert refused.returncode != 0
    assert "patients.portal_pin → cf_portal_pin: a secret of the source" in refused.stdout + refused.stderr
    assert "1007" not in refused.stdout + refused.stderr

    # Marking the line explicitly is the person's choice, and the plan confirms.
    pin["allow_secret"] = True
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False))
    confirmed = _cli(["confirm-mapping", "--by", "Dr. Reviewer"], env, tmp_path)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr


def test_a_digest_of_another_length_is_not_sha256(tmp_path: Path) -> None:
    import hashlib

    import duckdb

    from clinic_pipeline.mapping.proposer import propose_plan
    from clinic_pipeline.source.inventory import build_inventory
    from clinic_pipeline.source.reader import open_source

    db = tmp_path / "docs.sqlite"
    with sqlite3.connect(db) as con:
        con.execute(
            "CREATE TABLE documents (document_id INTEGER PRIMARY KEY, file_name TEXT, hash TEXT, checksum TEXT)"
        )
        con.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?)",
            [
                (n, f"scan{n}.pdf", hashlib.sha3_512(bytes([n])).hexdigest(), hashlib.sha256(bytes([n])).hexdigest())
                for n in range(20)
            ],
        )
    duck = duckdb.connect()
    plan = propose_plan(build_inventory(open_source(f"sqlite:///{db}", duck), duck), 0.75)
    lines = {f.source: f.target for f in plan.objects[0].fields}
    assert lines["checksum"] == "sha256" and lines["hash"] != "sha256"
