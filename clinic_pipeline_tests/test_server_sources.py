"""PostgreSQL and MySQL/MariaDB sources, against real throwaway servers started in a temp dir.

Each server is started once per session on a free loopback port with a password-protected user and
stopped at the end (the PostgreSQL cluster is the session's shared one, from conftest.py). Without the
server binaries the tests skip, except in CI (CI=true), where `.ci/run` installs them and a skip would
hide that nothing was proven: there they fail instead (`servers.unavailable`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pymysql
import pytest

from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.source.server_databases import connect_mysql, connect_postgres, parse_server_url
from clinic_pipeline_tests.servers import PASSWORD, USER, PostgresCluster, free_port, scratch_dir, unavailable

DATABASE = "clinicdb"


def _wait_until(ready: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {seconds} s")


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    admin: Callable[[], object]  # a read-write connection for setting up and checking the data


# ---------------------------------------------------------------- PostgreSQL


PG_SCHEMA = """
CREATE TABLE clinics (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE patients (
  patient_id integer PRIMARY KEY, chart_no varchar(10), first_name text, last_name text, dob date,
  email text, balance numeric(10, 2), photo bytea, active boolean,
  clinic_id integer REFERENCES clinics (id)
);
CREATE TABLE appointments (
  appt_id integer PRIMARY KEY, patient_id integer, starts_at timestamp, notes text,
  CONSTRAINT appt_patient FOREIGN KEY (patient_id) REFERENCES patients (patient_id)
);
CREATE TABLE audit_log (event text, logged_at timestamptz);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (invoice_no text PRIMARY KEY, patient_id integer REFERENCES public.patients);
INSERT INTO clinics VALUES (2, 'Northside'), (1, 'Downtown');
INSERT INTO patients VALUES
  (12, '000123', 'Renée', 'O''Brien', '1984-03-02', 'renee@example.com', 1234.50, '\\x0aff', true, 1),
  (11, '000042', 'Paul', 'Martin', '1979-11-30', NULL, 0.00, NULL, false, 2),
  (13, '007', 'Ines', '', NULL, '', -5.25, NULL, NULL, 1);
INSERT INTO appointments VALUES
  (2, 11, '2024-03-10 09:30:00', E'line one\\nline "two", three'),
  (1, 12, '2024-03-10 09:00:00', NULL);
INSERT INTO audit_log VALUES ('second', '2024-01-01 10:00:00+00'), ('first', '2024-01-01 09:00:00+00');
INSERT INTO billing.invoices VALUES ('INV-1', 12);
"""


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: PostgresCluster) -> Server:
    postgres_cluster.create_database(DATABASE)
    with postgres_cluster.connect(DATABASE) as conn:
        conn.execute(PG_SCHEMA)
    return Server(postgres_cluster.url(DATABASE), postgres_cluster.port, lambda: postgres_cluster.connect(DATABASE))


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[object, ...]]:
    return con.execute(query).fetchall()


def test_postgres_tables_rows_and_text_values(postgres_server: Server) -> None:
    con = duckdb.connect()
    export = open_source(postgres_server.url, con)
    assert set(export.tables) == {"clinics", "patients", "appointments", "audit_log"}
    counts = {name: t.row_count for name, t in export.tables.items()}
    assert counts == {"clinics": 2, "patients": 3, "appointments": 2, "audit_log": 2}
    assert export.tables["patients"].columns[:3] == ["patient_id", "chart_no", "first_name"]
    assert export.tables["patients"].origin == f"127.0.0.1:{postgres_server.port}/{DATABASE}:patients"
    # Rows in primary-key order, whatever order they were inserted in; every value is the server's text.
    assert _rows(con, "SELECT * FROM source.patients ORDER BY _source_row") == [
        ("11", "000042", "Paul", "Martin", "1979-11-30", None, "0.00", None, "false", "2", 1),
        ("12", "000123", "Renée", "O'Brien", "1984-03-02", "renee@example.com", "1234.50", "0aff", "true", "1", 2),
        ("13", "007", "Ines", "", None, "", "-5.25", None, None, "1", 3),
    ]
    types = {str(r[0]): str(r[1]) for r in _rows(con, "DESCRIBE source.patients")}
    assert types.pop("_source_row") == "BIGINT" and set(types.values()) == {"VARCHAR"}
    assert _rows(con, "SELECT appt_id, starts_at, notes FROM source.appointments ORDER BY _source_row") == [
        ("1", "2024-03-10 09:00:00", None),
        ("2", "2024-03-10 09:30:00", 'line one\nline "two", three'),
    ]
    # No primary key: physical order; timestamptz in UTC with its offset.
    assert _rows(con, "SELECT event, logged_at, _source_row FROM source.audit_log ORDER BY _source_row") == [
        ("second", "2024-01-01 10:00:00+00", 1),
        ("first", "2024-01-01 09:00:00+00", 2),
    ]


def test_postgres_declared_foreign_keys_and_password_kept_out_of_the_export(postgres_server: Server) -> None:
    export = open_source(postgres_server.url, duckdb.connect())
    declared = {(fk.table, tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns)) for fk in export.foreign_keys}
    assert declared == {
        ("patients", ("clinic_id",), "clinics", ("id",)),
        ("appointments", ("patient_id",), "patients", ("patient_id",)),
    }
    assert PASSWORD not in export.model_dump_json()
    assert export.spec == f"postgresql://{USER}:***@127.0.0.1:{postgres_server.port}/{DATABASE}"
    assert export.manifest.time_zone_assumed


def test_postgres_manifest_parameter_and_empty_table(postgres_server: Server, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"time_zone": "America/Chicago", "source_system": "VendorEMR"}')
    with postgres_server.admin() as conn:  # type: ignore[attr-defined]
        conn.execute("CREATE SCHEMA odd; CREATE TABLE odd.nothing (); CREATE TABLE odd.empty (id integer)")
    con = duckdb.connect()
    export = open_source(f"{postgres_server.url}?schema=odd&manifest={tmp_path / 'manifest.json'}", con)
    assert (export.manifest.time_zone, export.manifest.time_zone_assumed) == ("America/Chicago", False)
    assert export.manifest.source_system == "VendorEMR"
    assert set(export.tables) == {"empty"} and export.tables["empty"].row_count == 0
    assert export.warnings == [f"127.0.0.1:{postgres_server.port}/{DATABASE}:nothing: no columns, skipped"]
    assert _rows(con, "SELECT count(*) FROM source.empty") == [(0,)]


def test_postgres_schemas_parameter(postgres_server: Server) -> None:
    con = duckdb.connect()
    export = open_source(postgres_server.url + "?schema=public,billing", con)
    assert {"billing_invoices", "public_patients"} <= set(export.tables)
    assert export.tables["billing_invoices"].location == "billing.invoices"
    declared = {(fk.table, fk.ref_table) for fk in export.foreign_keys}
    assert ("billing_invoices", "public_patients") in declared  # across schemas
    only = open_source(postgres_server.url + "?schema=billing", con)
    assert set(only.tables) == {"invoices"} and only.foreign_keys == []
    assert _rows(con, "SELECT invoice_no, patient_id FROM source.invoices") == [("INV-1", "12")]


def test_postgres_session_is_read_only_and_the_source_unchanged(postgres_server: Server) -> None:
    url = parse_server_url(postgres_server.url)
    with pytest.raises(SourceError, match="SQLSTATE 25006") as info, connect_postgres(url) as conn:
        conn.execute("INSERT INTO clinics VALUES (9, 'Written')")
    assert PASSWORD not in str(info.value)
    with pytest.raises(SourceError, match="SQLSTATE 25006"), connect_postgres(url) as conn:
        conn.autocommit = True  # outside a transaction the session default still forbids writes
        conn.execute("DELETE FROM clinics")
    with postgres_server.admin() as conn:  # type: ignore[attr-defined]
        assert conn.execute("SELECT count(*) FROM clinics").fetchone() == (2,)


def test_postgres_inventory_runs_on_the_server_source(postgres_server: Server) -> None:
    con = duckdb.connect()
    inventory = build_inventory(open_source(postgres_server.url, con), con)
    patients = inventory.table("patients")
    assert patients.row_count == 3 and patients.candidate_keys[0] == "patient_id"
    assert patients.column("dob").type == "date"
    kinds = {(r.table, r.column, r.ref_table, r.kind) for r in inventory.relationships}
    assert ("appointments", "patient_id", "patients", "declared") in kinds


def test_postgres_wrong_password_names_the_server_not_the_secret(postgres_server: Server) -> None:
    wrong = postgres_server.url.replace(PASSWORD, "not-the-" + PASSWORD)
    with pytest.raises(SourceError, match="authentication failed") as info:
        open_source(wrong, duckdb.connect())
    message = str(info.value)
    assert f"127.0.0.1:{postgres_server.port}/{DATABASE}" in message and PASSWORD not in message
    assert len(message.splitlines()) == 1


# ---------------------------------------------------------------- MySQL / MariaDB


MYSQL_SCHEMA = [
    "CREATE TABLE clinics (id INT(11) PRIMARY KEY, name VARCHAR(40) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE patients (patient_id INT PRIMARY KEY, chart_no VARCHAR(10), first_name VARCHAR(40),"
    " dob DATE, email VARCHAR(80), balance DECIMAL(10,2), photo BLOB, clinic_id INT,"
    " FOREIGN KEY (clinic_id) REFERENCES clinics (id)) ENGINE=InnoDB",
    "CREATE TABLE visits (clinic_id INT, patient_id INT, visit_no INT, starts_at DATETIME, notes TEXT,"
    " PRIMARY KEY (clinic_id, patient_id, visit_no),"
    " CONSTRAINT visit_patient FOREIGN KEY (patient_id) REFERENCES patients (patient_id)) ENGINE=InnoDB",
    "CREATE TABLE audit_log (event VARCHAR(20)) ENGINE=InnoDB",
    "INSERT INTO clinics VALUES (2, 'Northside'), (1, 'Downtown')",
    "INSERT INTO patients VALUES (12, '000123', 'Renée', '0000-00-00', 'renee@example.com', 1234.50, x'0AFF', 1),"
    " (11, '000042', 'Paul', '1979-11-30', NULL, 0, NULL, 2), (13, '007', '', NULL, '', -5.25, NULL, 1)",
    "INSERT INTO visits VALUES (1, 12, 2, '2024-03-10 09:30:00', 'line one\\nline \"two\", three'),"
    " (1, 12, 1, '2024-03-10 09:00:00', NULL)",
    "INSERT INTO audit_log VALUES ('only')",
]


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[Server]:
    mariadbd = shutil.which("mariadbd") or shutil.which("mysqld") or shutil.which("mariadbd", path="/usr/sbin")
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not mariadbd or not install_db:
        unavailable("MariaDB server binaries (mariadbd, mariadb-install-db) not installed")
    assert mariadbd and install_db
    root = scratch_dir("clinic-mysql-", None)
    data, sock = root / "data", root / "mysql.sock"
    port = free_port()
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *as_root],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--pid-file={root / 'pid'}", f"--log-error={root / 'error.log'}",
         "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--sql-mode=", *as_root],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def root_connection() -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)

    def admin() -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DATABASE, autocommit=True
        )

    def accepting() -> bool:
        try:
            root_connection().close()
        except pymysql.MySQLError:
            return False
        return True

    try:
        _wait_until(accepting, "mariadbd")
        with root_connection() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
            cursor.execute(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
            cursor.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%'")
        with admin() as conn, conn.cursor() as cursor:
            for statement in MYSQL_SCHEMA:
                cursor.execute(statement)
        yield Server(f"mysql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}", port, admin)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def test_mysql_tables_rows_and_text_values(mysql_server: Server) -> None:
    con = duckdb.connect()
    export = open_source(mysql_server.url, con)
    assert {name: t.row_count for name, t in export.tables.items()} == {
        "clinics": 2,
        "patients": 3,
        "visits": 2,
        "audit_log": 1,
    }
    # Primary-key order; MySQL's own text: the zero date and the leading zeros survive, BLOBs are hex.
    assert _rows(con, "SELECT * FROM source.patients ORDER BY _source_row") == [
        ("11", "000042", "Paul", "1979-11-30", None, "0.00", None, "2", 1),
        ("12", "000123", "Renée", "0000-00-00", "renee@example.com", "1234.50", "0aff", "1", 2),
        ("13", "007", "", None, "", "-5.25", None, "1", 3),
    ]
    assert _rows(con, "SELECT visit_no, starts_at, notes FROM source.visits ORDER BY _source_row") == [
        ("1", "2024-03-10 09:00:00", None),
        ("2", "2024-03-10 09:30:00", 'line one\nline "two", three'),
    ]


def test_mysql_declared_foreign_keys_and_password_kept_out(mysql_server: Server) -> None:
    export = open_source(mysql_server.url.replace("mysql://", "mariadb://"), duckdb.connect())
    declared = {(fk.table, tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns)) for fk in export.foreign_keys}
    assert declared == {
        ("patients", ("clinic_id",), "clinics", ("id",)),
        ("visits", ("patient_id",), "patients", ("patient_id",)),
    }
    assert PASSWORD not in export.model_dump_json()
    assert export.tables["visits"].origin == f"127.0.0.1:{mysql_server.port}/{DATABASE}:visits"


def test_mysql_session_is_read_only_and_the_source_unchanged(mysql_server: Server) -> None:
    url = parse_server_url(mysql_server.url)
    with pytest.raises(SourceError, match="error 1792") as info, connect_mysql(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO clinics VALUES (9, 'Written')")
    assert PASSWORD not in str(info.value)
    with mysql_server.admin() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute("SELECT count(*) FROM clinics")
        assert cursor.fetchone() == (2,)


def test_mysql_wrong_password_is_one_line_without_the_secret(mysql_server: Server) -> None:
    wrong = mysql_server.url.replace(PASSWORD, "not-the-" + PASSWORD)
    with pytest.raises(SourceError, match="access denied") as info:
        open_source(wrong, duckdb.connect())
    message = str(info.value)
    assert f"127.0.0.1:{mysql_server.port}/{DATABASE}" in message and PASSWORD not in message
    assert len(message.splitlines()) == 1


# ---------------------------------------------------------------- without a server


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_unreachable_server_is_a_one_line_source_error_without_credentials(scheme: str) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SourceError) as info:
        open_source(f"{scheme}://clinic:{PASSWORD}@127.0.0.1:{port}/emr", duckdb.connect())
    message = str(info.value)
    assert f"127.0.0.1:{port}/emr" in message and "cannot connect" in message
    assert PASSWORD not in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (f"postgresql://u:{PASSWORD}@db.example.com/emr?sslkey=/x", "unsupported parameter"),
        (f"mysql://u:{PASSWORD}@db.example.com/emr?schema=x", "unsupported parameter"),
        (f"mysql://u:{PASSWORD}@db.example.com", "needs a host and a database"),
        (f"postgresql://u:{PASSWORD}@db.example.com:notaport/emr", "malformed"),
    ],
)
def test_bad_urls_are_refused_before_connecting(spec: str, expected: str) -> None:
    with pytest.raises(SourceError, match=expected) as info:
        open_source(spec, duckdb.connect())
    assert PASSWORD not in str(info.value)


def test_url_parsing_defaults_and_redaction() -> None:
    url = parse_server_url("postgres://clinic:p%40ss@db.local/emr?schema=a,b")
    assert (url.host, url.port, url.database, url.password, url.schemas) == (
        "db.local",
        5432,
        "emr",
        "p@ss",
        ("a", "b"),
    )
    assert url.redacted == "postgres://clinic:***@db.local:5432/emr?schema=a,b"
    assert "p@ss" not in repr(url)
    assert parse_server_url("mariadb://root@127.0.0.1/openemr").port == 3306


# ---------------------------------------------------------------- throughput (with the benchmarks)

BULK_ROWS = 200_000


@pytest.mark.slow
def test_bulk_read_throughput(postgres_server: Server, mysql_server: Server) -> None:
    """`pytest -m slow clinic_pipeline_tests/test_server_sources.py -s`: rows per second of each adapter."""
    with postgres_server.admin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            "CREATE TABLE bulk AS SELECT i AS id, 'Name ' || i AS name, DATE '2000-01-01' + i % 9000 AS day, "
            f"(i % 1000)::numeric(10, 2) AS amount FROM generate_series(1, {BULK_ROWS}) AS i"
        )
        conn.execute("ALTER TABLE bulk ADD PRIMARY KEY (id)")
    with mysql_server.admin() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "CREATE TABLE bulk (id INT PRIMARY KEY, name VARCHAR(20), day DATE, amount DECIMAL(10, 2)) "
            f"SELECT seq AS id, CONCAT('Name ', seq) AS name, DATE '2000-01-01' + INTERVAL seq % 9000 DAY AS day, "
            f"seq % 1000 AS amount FROM seq_1_to_{BULK_ROWS}"
        )
    try:
        for server in (postgres_server, mysql_server):
            con = duckdb.connect()
            started = time.perf_counter()
            export = open_source(server.url, con)
            elapsed = time.perf_counter() - started
            assert export.tables["bulk"].row_count == BULK_ROWS
            assert con.execute("SELECT max(_source_row), count(DISTINCT id) FROM source.bulk").fetchone() == (
                BULK_ROWS,
                BULK_ROWS,
            )
            print(
                f"{server.url.split(':')[0]}: {BULK_ROWS:,} rows in {elapsed:.2f} s ({BULK_ROWS / elapsed:,.0f} rows/s)"
            )
    finally:
        with postgres_server.admin() as conn:  # type: ignore[attr-defined]
            conn.execute("DROP TABLE bulk")
        with mysql_server.admin() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("DROP TABLE bulk")
