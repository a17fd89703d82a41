"""The sample clinic generator: reproducible bytes, sizes driven by `patients`, keys, mess at its rates, documents."""

from __future__ import annotations

import csv
import hashlib
import re
import sqlite3
import struct
import zlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.samples.generator import TABLE_NAMES, GeneratedClinic, MessRates, generate_clinic
from clinic_pipeline.source.reader import open_source

RATES = MessRates()
PATIENTS = 2_000
EXPORTED_AT = "2026-06-30 18:00:00"


def _file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> GeneratedClinic:
    return generate_clinic(tmp_path_factory.mktemp("csv") / "clinic", patients=PATIENTS, large_documents=2)


@pytest.fixture(scope="module")
def con(clinic: GeneratedClinic) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    open_source(str(clinic.path), connection)
    return connection


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    return con.execute(sql).fetchone()[0]


def _share(con: duckdb.DuckDBPyConnection, table: str, condition: str) -> float:
    return _one(con, f"SELECT avg(CASE WHEN {condition} THEN 1.0 ELSE 0.0 END) FROM source.{table}")


def _near(actual: float, rate: float) -> bool:
    """Within sampling noise of `rate` for a few thousand rows (and present at all)."""
    return actual > 0 and abs(actual - rate) <= max(0.35 * rate, 0.004)


# ------------------------------------------------------------------ determinism and size


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    for fmt in ("csv", "sqlite"):
        first = generate_clinic(tmp_path / f"{fmt}-a", patients=300, seed=11, fmt=fmt)
        second = generate_clinic(tmp_path / f"{fmt}-b", patients=300, seed=11, fmt=fmt)
        other = generate_clinic(tmp_path / f"{fmt}-c", patients=300, seed=12, fmt=fmt)
        hashes = _file_hashes(first.path)
        assert len(hashes) > 100  # tables (or the database), manifest and the documents
        assert hashes == _file_hashes(second.path)
        different = {name for name, digest in _file_hashes(other.path).items() if hashes.get(name) != digest}
        assert ("patients.csv" if fmt == "csv" else "clinic.db") in different


def test_generating_again_into_the_same_folder_replaces_the_previous_export(tmp_path: Path) -> None:
    generate_clinic(tmp_path / "out", patients=400, seed=3)
    again = generate_clinic(tmp_path / "out", patients=200, seed=3)
    fresh = generate_clinic(tmp_path / "fresh", patients=200, seed=3)
    assert _file_hashes(again.path) == _file_hashes(fresh.path)


def test_refuses_a_folder_that_holds_something_else(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("not ours")
    with pytest.raises(FileExistsError):
        generate_clinic(tmp_path, patients=10)
    assert (tmp_path / "keep.txt").read_text() == "not ours"
    with pytest.raises(OperatorError, match="at least 1"):
        generate_clinic(tmp_path / "x", patients=0)


def test_patients_drive_every_table(tmp_path: Path, clinic: GeneratedClinic) -> None:
    half = generate_clinic(tmp_path / "half", patients=PATIENTS // 2)
    big, small = clinic.row_counts, half.row_counts
    assert big["patients"] == PATIENTS and small["patients"] == PATIENTS // 2
    per_patient = {
        "insurance_policies": 1.3, "appointments": 6.0, "billing_encounters": 3.0, "treatment_plans": 0.8,
        "lab_results": 2.0, "documents": 0.5, "referring_physicians": 1 / 40, "providers": 1 / 150,
        "communications": 3.0,
    }  # fmt: skip
    for table, expected in per_patient.items():
        assert abs(big[table] / PATIENTS - expected) <= 0.15 * expected, table
        assert 1.7 <= big[table] / small[table] <= 2.3, table
    assert 1.0 <= big["payments"] / big["billing_encounters"] <= 1.6
    assert 2 <= big["locations"] <= 6 and 8 <= big["insurance_carriers"] <= 40
    assert big["workflow_rules"] == 10 and big["report_definitions"] == 6 and big["custom_field_definitions"] == 5
    assert clinic.total_records == sum(big.values())


# ------------------------------------------------------------------ reading it back


def test_reader_opens_the_csv_folder_with_its_manifest(clinic: GeneratedClinic) -> None:
    export = open_source(clinic.source_spec, duckdb.connect())
    assert set(export.tables) == set(TABLE_NAMES)
    assert {name: t.row_count for name, t in export.tables.items()} == clinic.row_counts
    assert export.manifest.source_system == "Acme Practice Manager"
    assert export.manifest.time_zone == "America/Chicago" and not export.manifest.time_zone_assumed
    assert export.manifest.date_format == "%Y-%m-%d" and export.manifest.encoding == "utf-8"
    assert export.manifest.exported_at is not None and export.manifest.exported_at.utcoffset() is not None
    assert export.manifest.row_counts["patients.csv"] == PATIENTS
    assert export.warnings == []  # the manifest's row counts match what was read


def test_sqlite_variant_declares_keys_and_opens_in_the_reader(tmp_path: Path) -> None:
    generated = generate_clinic(tmp_path / "db", patients=500, fmt="sqlite")
    db = generated.path / "clinic.db"
    assert generated.source_spec == f"sqlite:///{db}"
    with sqlite3.connect(db) as raw:
        fks = {(row[3], row[2], row[4]) for row in raw.execute("PRAGMA foreign_key_list(appointments)")}
        assert fks == {
            ("patient_id", "patients", "patient_id"),
            ("provider_id", "providers", "provider_id"),
            ("location_id", "locations", "location_id"),
        }
        assert {row[2] for row in raw.execute("PRAGMA foreign_key_list(payments)")} == {"billing_encounters"}
        pk = [row[1] for row in raw.execute("PRAGMA table_info(patients)") if row[5]]
        assert pk == ["patient_id"]
        assert raw.execute("SELECT typeof(patient_id) FROM patients LIMIT 1").fetchone() == ("integer",)
    export = open_source("sqlite:///" + str(db), duckdb.connect())
    assert {name: t.row_count for name, t in export.tables.items()} == generated.row_counts
    assert export.manifest.source_system == "Acme Practice Manager" and export.manifest.row_counts["patients"] == 500
    assert export.warnings == []
    declared = {(k.table, tuple(k.columns), k.ref_table) for k in export.foreign_keys}
    assert ("billing_encounters", ("appointment_id",), "appointments") in declared
    assert ("patients", ("referring_physician_id",), "referring_physicians") in declared


def test_same_named_clinics_carriers_and_practices_sit_in_different_cities(con: duckdb.DuckDBPyConnection) -> None:
    for table, name, city in (
        ("locations", "location_name", "city"),
        ("insurance_carriers", "carrier_name", "city"),
        ("referring_physicians", "practice_name", "practice_city"),
    ):
        shared = _one(
            con,
            f"SELECT count(*) FROM (SELECT {name} FROM source.{table} GROUP BY 1 HAVING count(DISTINCT {city}) > 1)",
        )
        assert shared >= 1, table


# ------------------------------------------------------------------ keys


_CHILD_KEYS = [
    ("providers", "location_id", "locations", "location_id"),
    ("patients", "location_id", "locations", "location_id"),
    ("patients", "primary_provider_id", "providers", "provider_id"),
    ("patients", "referring_physician_id", "referring_physicians", "referrer_id"),
    ("insurance_policies", "patient_id", "patients", "patient_id"),
    ("insurance_policies", "carrier_id", "insurance_carriers", "carrier_id"),
    ("appointments", "provider_id", "providers", "provider_id"),
    ("appointments", "location_id", "locations", "location_id"),
    ("billing_encounters", "provider_id", "providers", "provider_id"),
    ("billing_encounters", "appointment_id", "appointments", "appointment_id"),
    ("payments", "encounter_id", "billing_encounters", "encounter_id"),
    ("treatment_plans", "patient_id", "patients", "patient_id"),
    ("lab_results", "patient_id", "patients", "patient_id"),
    ("lab_results", "ordering_provider_id", "providers", "provider_id"),
    ("documents", "patient_id", "patients", "patient_id"),
]


def _orphans(con: duckdb.DuckDBPyConnection, child: str, column: str, parent: str, key: str) -> float:
    return _one(
        con,
        f"SELECT avg(CASE WHEN p.{key} IS NULL THEN 1.0 ELSE 0.0 END) FROM source.{child} c "
        f"LEFT JOIN source.{parent} p ON p.{key} = c.{column} WHERE c.{column} IS NOT NULL",
    )


def test_foreign_keys_hold_except_the_documented_orphans(con: duckdb.DuckDBPyConnection) -> None:
    for child, column, parent, key in _CHILD_KEYS:
        assert _orphans(con, child, column, parent, key) == 0, f"{child}.{column}"
    for table in ("appointments", "billing_encounters"):
        assert 0 < _orphans(con, table, "patient_id", "patients", "patient_id") <= 3 * RATES.orphan_foreign_keys
    for table, key in (
        ("patients", "patient_id"),
        ("billing_encounters", "invoice_number"),
        ("payments", "payment_id"),
    ):
        assert _one(con, f"SELECT count(DISTINCT {key}) = count(*) FROM source.{table}"), f"{table}.{key}"


def test_timestamps_are_ordered_and_before_the_export(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("patients", "referring_physicians", "insurance_policies", "appointments", "billing_encounters",
                  "treatment_plans", "lab_results"):  # fmt: skip
        bad = _one(
            con,
            f"SELECT count(*) FROM source.{table} WHERE updated_at < created_at OR updated_at > '{EXPORTED_AT}' "
            "OR NOT regexp_full_match(created_at, '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d')",
        )
        assert bad == 0, table
        span = _one(con, f"SELECT datediff('day', min(created_at::TIMESTAMP), max(created_at::TIMESTAMP)) "
                         f"FROM source.{table}")  # fmt: skip
        assert span > 365, table


# ------------------------------------------------------------------ money


def test_payments_add_up_to_amount_paid_to_the_cent(clinic: GeneratedClinic) -> None:
    with (clinic.path / "payments.csv").open(encoding="utf-8", newline="") as fh:
        paid: dict[str, Decimal] = defaultdict(Decimal)
        for row in csv.DictReader(fh):
            assert re.fullmatch(r"\d+\.\d\d", row["amount"]) and Decimal(row["amount"]) > 0
            paid[row["encounter_id"]] += Decimal(row["amount"])
    partial = 0
    with (clinic.path / "billing_encounters.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            amount_paid = Decimal(row["amount_paid"])
            assert paid.get(row["encounter_id"], Decimal("0.00")) == amount_paid
            assert (row["payment_date"] == "") == (amount_paid == 0)
            billed = Decimal(row["amount_billed"].replace("$", "").replace(",", ""))
            assert amount_paid <= billed
            partial += 0 < amount_paid < billed
    assert partial > 0


def test_money_and_codes_carry_their_mess(con: duckdb.DuckDBPyConnection) -> None:
    messy = _share(con, "billing_encounters", "amount_billed LIKE '$%'")
    assert _near(messy, RATES.messy_money)
    assert _one(con, "SELECT count(*) FROM source.billing_encounters WHERE amount_billed LIKE '$%,%.__'") > 0
    clean = _share(con, "billing_encounters", "regexp_full_match(amount_billed, '\\d+\\.\\d\\d')")
    assert clean == pytest.approx(1 - messy)
    assert _near(_share(con, "billing_encounters", "icd10_code LIKE 'ICD10:%'"), RATES.icd10_prefix)


# ------------------------------------------------------------------ patient mess


def test_email_mess_at_its_rates(con: duckdb.DuckDBPyConnection) -> None:
    assert _near(_share(con, "patients", "email IS NULL"), RATES.missing_email)
    placeholders = "email IN ('none@none.com', 'N/A', 'declined')"
    assert _near(_share(con, "patients", placeholders), RATES.placeholder_email)
    malformed = f"NOT ({placeholders}) AND (email LIKE '%@@%' OR NOT regexp_matches(email, '@[^@]+\\.[a-z]+$'))"
    assert _near(_share(con, "patients", malformed), RATES.malformed_email)
    families = _one(
        con,
        "SELECT sum(n) FROM (SELECT count(*) AS n FROM source.patients WHERE email LIKE '%@%.%' "
        "GROUP BY email, phone, last_name HAVING count(DISTINCT first_name) > 1 AND count(*) BETWEEN 2 AND 4)",
    )
    assert _near(families / PATIENTS, RATES.shared_family_email)


def test_duplicate_registrations_at_their_rate(con: duckdb.DuckDBPyConnection) -> None:
    pairs = con.execute(
        "SELECT a.first_name, b.first_name, a.date_of_birth, b.date_of_birth FROM source.patients a "
        "JOIN source.patients b ON a.email = b.email AND trim(a.last_name) = trim(b.last_name) "
        "AND a.patient_id::INT < b.patient_id::INT AND a.chart_number <> b.chart_number "
        "WHERE a.email LIKE '%@%.%' AND (a.date_of_birth = b.date_of_birth OR trim(a.first_name) = trim(b.first_name))"
    ).fetchall()
    assert _near(len(pairs) / PATIENTS, RATES.duplicate_patients)
    assert any(sorted((a.strip(), b.strip())) in (["Bob", "Robert"], ["Bill", "William"], ["Jim", "James"],
                                                  ["Mike", "Michael"], ["Liz", "Elizabeth"], ["Tom", "Thomas"])
               for a, b, _, _ in pairs)  # fmt: skip
    swapped = [
        (x, y) for _, _, x, y in pairs if x != y and len(x) == len(y) == 10 and x[:4] == y[:4] and x[5:7] == y[8:10]
    ]
    assert swapped


def test_phone_mess_at_its_rates(con: duckdb.DuckDBPyConnection) -> None:
    invalid = (
        "phone IN ('000-000-0000', 'N/A') OR regexp_full_match(phone, '\\d{3}-\\d{4}') OR phone LIKE '%E+09' "
        "OR phone LIKE '% x%'"
    )
    mixed = "regexp_full_match(phone, '\\d{3}\\.\\d{3}\\.\\d{4}|\\(\\d{3}\\) \\d{3}-\\d{4}|\\+1 \\d{3} \\d{3} \\d{4}')"
    # Families share one phone, so the rates are measured on the people who own theirs.
    assert _near(_share(con, "patients", invalid), RATES.invalid_phone)
    assert _near(_share(con, "patients", mixed), RATES.mixed_phone_format)
    for form in ("000-000-0000", "N/A"):
        assert _one(con, f"SELECT count(*) FROM source.patients WHERE phone = '{form}'") > 0
    assert _one(con, "SELECT count(*) FROM source.patients WHERE regexp_full_match(phone, '\\d\\.\\d{5}E\\+09')") > 0


def test_dates_names_and_flags_at_their_rates(con: duckdb.DuckDBPyConnection) -> None:
    assert _near(_share(con, "patients", "date_of_birth = '0000-00-00'"), RATES.zero_date_of_birth)
    assert _near(_share(con, "patients", "date_of_birth = '1900-01-01'"), RATES.sentinel_date_of_birth)
    us = _share(con, "patients", "regexp_full_match(date_of_birth, '\\d\\d/\\d\\d/\\d{4}')")
    assert _near(us, RATES.us_date_of_birth)
    iso = _share(con, "patients", "regexp_full_match(date_of_birth, '\\d{4}-\\d\\d-\\d\\d')")
    assert iso > 0.9
    spaces = _share(con, "patients", "first_name LIKE '% ' OR last_name LIKE '% '")
    assert _near(spaces, RATES.trailing_whitespace)
    accented = _share(con, "patients", "NOT regexp_full_match(first_name || last_name, '[A-Za-z ]*')")
    assert _near(accented, RATES.non_ascii_names)
    assert _one(con, "SELECT count(*) FROM source.patients WHERE last_name IN ('Nguyễn', 'Müller', 'O''Brien')") > 0
    assert _near(_share(con, "patients", "deleted = '1'"), RATES.soft_deleted)
    assert _near(_share(con, "appointments", "deleted = '1'"), RATES.soft_deleted)
    assert _near(_share(con, "patients", "referring_physician_id IS NOT NULL"), RATES.referred_patients)
    custom = con.execute(
        "SELECT count(DISTINCT how_did_you_hear), min(pain_scale::INT), max(pain_scale::INT), "
        "count(DISTINCT newsletter_opt_in), count(try_strptime(last_xray_date, '%Y-%m-%d')) FROM source.patients"
    ).fetchone()
    assert custom[0] == 6 and custom[1] == 0 and custom[2] == 10 and custom[3] == 2 and custom[4] > 0
    picklist = _one(con, "SELECT choices FROM source.custom_field_definitions WHERE column_name = 'how_did_you_hear'")
    assert len(picklist.split(";")) == 6


def test_appointments_labs_and_rules(con: duckdb.DuckDBPyConnection) -> None:
    short = _share(con, "appointments", "duration_minutes::INT < 15")
    assert abs(short - 0.15) < 0.02
    assert _one(con, "SELECT count(DISTINCT duration_minutes) FROM source.appointments") == 6
    gap = _share(
        con, "appointments",
        "appointment_date IN ('2024-03-10', '2025-03-09', '2026-03-08') AND start_time LIKE '02:%'",
    )  # fmt: skip
    assert _near(gap, RATES.dst_gap_appointments)
    assert _share(con, "appointments", "regexp_full_match(start_time, '\\d\\d:\\d\\d')") == 1
    future = con.execute(
        f"SELECT DISTINCT status FROM source.appointments WHERE appointment_date > '{EXPORTED_AT}'"
    ).fetchall()
    assert future == [("scheduled",)]
    unstructured = "result_value IS NULL AND length(report_text) > 200"
    assert _near(_share(con, "lab_results", unstructured), RATES.unstructured_labs)
    messy = "result_value IN ('<0.5', '>1000', 'Negative', '5.2 H', 'TNTC')"
    assert _near(_share(con, "lab_results", messy), RATES.messy_lab_values * (1 - RATES.unstructured_labs))
    assert _one(con, "SELECT count(*) FROM source.lab_results WHERE abnormal_flag IN ('H', 'L')") > 0
    triggers = {row[0] for row in con.execute("SELECT trigger FROM source.workflow_rules").fetchall()}
    assert {"appointment.scheduled", "billing.invoice_unpaid", "treatment_plan.created"} <= triggers
    rules = "SELECT count(*) FROM source.workflow_rules WHERE json_valid(conditions) AND json_valid(actions)"
    assert _one(con, rules) == 10
    procedures = _one(con, "SELECT count(*) FROM source.treatment_plans WHERE procedure_codes LIKE '%;%;%'")
    assert procedures > 0


# ------------------------------------------------------------------ documents


def _pdf_is_consistent(data: bytes) -> bool:
    """Every xref entry points at its `N 0 obj`, and startxref at the xref table."""
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", data).group(1))
    lines = data[start:].split(b"\n")
    count = int(lines[1].split()[1])
    offsets = [int(line[:10]) for line in lines[3 : 2 + count]]
    return lines[0] == b"xref" and all(data[o:].startswith(b"%d 0 obj" % n) for n, o in enumerate(offsets, 1))


def _png_is_consistent(data: bytes) -> bool:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, image = 8, b""
    width = height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] != zlib.crc32(tag + body):
            return False
        if tag == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        image += body if tag == b"IDAT" else b""
        pos += 12 + length
    return len(zlib.decompress(image)) == height * (1 + 3 * width)


def test_document_files_match_their_rows(clinic: GeneratedClinic) -> None:
    with (clinic.path / "documents.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    kinds = defaultdict(int)
    for row in rows:
        assert row["file_path"] == f"documents/{row['patient_id']}/{row['document_id']}.{row['file_path'][-3:]}"
        path = clinic.path / row["file_path"]
        assert path.stat().st_size == int(row["size_bytes"])
        assert path.stat().st_mode & 0o777 == 0o600
        if int(row["size_bytes"]) > 25_000_000:
            continue
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        kinds[row["mime_type"]] += 1
        if row["mime_type"] == "application/pdf":
            assert data.startswith(b"%PDF-1.4") and _pdf_is_consistent(data)
        elif row["mime_type"] == "image/png":
            assert _png_is_consistent(data)
        else:
            assert row["mime_type"] == "text/plain" and data.decode("utf-8").startswith("Scanned note")
    assert set(kinds) == {"application/pdf", "image/png", "text/plain"}


def test_large_documents_are_sparse_and_hash_correctly(clinic: GeneratedClinic) -> None:
    with (clinic.path / "documents.csv").open(encoding="utf-8", newline="") as fh:
        large = [row for row in csv.DictReader(fh) if int(row["size_bytes"]) > 25_000_000]
    assert len(large) == 2
    for row in large:
        path = clinic.path / row["file_path"]
        stat = path.stat()
        assert stat.st_size == int(row["size_bytes"]) > 25 * 1024 * 1024
        assert stat.st_blocks * 512 < 1024 * 1024  # a header and one byte, not 25 MB of blocks
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            assert fh.read(132)[128:] == b"DICM"
            fh.seek(0)
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
        assert digest.hexdigest() == row["sha256"]


def test_many_documents_share_a_bounded_set_of_files(tmp_path: Path) -> None:
    generated = generate_clinic(tmp_path / "many", patients=5_000)
    with (generated.path / "documents.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 2_000
    inodes = {(generated.path / row["file_path"]).stat().st_ino for row in rows}
    assert len(inodes) <= 2_000
    for row in rows[2_000::97]:
        assert hashlib.sha256((generated.path / row["file_path"]).read_bytes()).hexdigest() == row["sha256"]
