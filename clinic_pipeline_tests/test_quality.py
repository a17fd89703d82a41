"""Quality checks on staged Parquet: blocking failures, warnings with counts, lookups, and no values in results."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.model.objects import ACCOUNTS, APPOINTMENTS, BY_NAME, CONTACTS, DEALS, FILES, FreshsalesObject
from clinic_pipeline.staging.quality import QualityResult, population_rates, run_quality_checks

SECRET = "Quixotic-Lemur"  # planted in bad values: must never surface in a result


def _write(path: Path, sql: str) -> Path:
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()
    return path


def _by_name(results: list[QualityResult]) -> dict[str, QualityResult]:
    names = [r.name for r in results]
    assert len(names) == len(set(names))
    return {r.name: r for r in results}


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "accounts.parquet",
        "SELECT 'locations.id:' || i AS _source_key, 'locations' AS _source_table, i AS _source_row, "
        "'Clinic ' || i AS name FROM range(3) t(i)",
    )


def _contacts(tmp_path: Path, extra_rows: str = "") -> Path:
    good = (
        "SELECT 'patients:' || i AS _source_key, 'patients' AS _source_table, i AS _source_row, "
        "'locations.id:' || (i % 3) AS _lookup_sales_account, 'Ana' AS first_name, 'Silva' AS last_name, "
        "'ana' || i || '@example.com' AS email, DATE '1980-01-01' + i::INT AS cf_date_of_birth, "
        "(i * 1.25)::DECIMAL(18,2) AS cf_amount_billed, NULL::VARCHAR AS cf_never_set "
        "FROM range(20) t(i)"
    )
    return _write(tmp_path / "contacts.parquet", good + (f" UNION ALL {extra_rows}" if extra_rows else ""))


def _row(
    key: str,
    *,
    lookup: str = "'locations.id:0'",
    first: str = "'Ana'",
    last: str = "NULL",
    email: str = "NULL",
    dob: str = "NULL",
    amount: str = "NULL",
) -> str:
    return (
        f"SELECT {key}, 'patients', 99, {lookup}, {first}, {last}, {email}, {dob}::DATE, "
        f"{amount}::DECIMAL(18,2), NULL::VARCHAR"
    )


def test_a_clean_file_passes_every_check(tmp_path: Path, accounts: Path) -> None:
    results = _by_name(run_quality_checks(CONTACTS, _contacts(tmp_path), parent_keys={"sales_account": accounts}))
    assert {
        "source_key_not_null",
        "source_key_unique",
        "required_any:first_name|last_name|email",
        "lookup:sales_account",
        "email_valid:email",
        "date_range:cf_date_of_birth",
        "amount:cf_amount_billed",
        "population_rates",
    } == set(results)
    failing = {name for name, r in results.items() if not r.passed and name != "population_rates"}
    assert failing == set()
    assert results["source_key_unique"].blocking and not results["email_valid:email"].blocking
    assert results["source_key_unique"].observed["element_count"] == 20
    assert results["lookup:sales_account"].observed == {"linked_rows": 20, "unresolved": 0}


def test_population_rates_report_every_payload_column(tmp_path: Path) -> None:
    path = _contacts(tmp_path, _row("'patients:x'", first="NULL", email="'x@example.com'"))
    rates = population_rates(path)
    assert rates == {
        "first_name": 20 / 21,
        "last_name": 20 / 21,
        "email": 1.0,
        "cf_date_of_birth": 20 / 21,
        "cf_amount_billed": 20 / 21,
        "cf_never_set": 0.0,
    }
    result = _by_name(run_quality_checks(CONTACTS, path))["population_rates"]
    assert result.observed == rates
    assert not result.passed and not result.blocking  # a mapped column that is never populated is a warning


def test_population_rates_of_an_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.parquet", "SELECT 'k' AS _source_key, 'x' AS name WHERE FALSE")
    assert population_rates(path) == {"name": 0.0}
    results = _by_name(run_quality_checks(ACCOUNTS, path))
    assert all(r.passed for r in results.values())


def test_duplicate_and_missing_source_keys_block(tmp_path: Path, accounts: Path) -> None:
    path = _contacts(tmp_path, " UNION ALL ".join([_row("'patients:1'"), _row("NULL"), _row("NULL")]))
    results = _by_name(run_quality_checks(CONTACTS, path, parent_keys={"sales_account": accounts}))
    assert not results["source_key_unique"].passed and results["source_key_unique"].blocking
    assert results["source_key_unique"].observed["unexpected_count"] == 2  # both rows of patients:1
    assert not results["source_key_not_null"].passed
    assert results["source_key_not_null"].observed["unexpected_count"] == 2


def test_a_file_without_source_keys_blocks(tmp_path: Path) -> None:
    path = _write(tmp_path / "accounts.parquet", "SELECT 'Clinic' AS name")
    results = _by_name(run_quality_checks(ACCOUNTS, path))
    assert not results["source_key_not_null"].passed and results["source_key_not_null"].blocking


def test_contacts_need_a_name_or_an_email(tmp_path: Path, accounts: Path) -> None:
    nameless = _row("'patients:a'", first="'  '") + " UNION ALL " + _row("'patients:b'", first="NULL")
    path = _contacts(tmp_path, nameless + " UNION ALL " + _row("'patients:c'", first="NULL", email="'c@example.com'"))
    result = _by_name(run_quality_checks(CONTACTS, path, parent_keys={"sales_account": accounts}))[
        "required_any:first_name|last_name|email"
    ]
    assert not result.passed and result.blocking
    assert result.observed["unexpected_count"] == 2  # blank text counts as missing


@pytest.mark.parametrize(
    ("obj", "sql", "failing"),
    [
        (ACCOUNTS, "SELECT 'a:1' AS _source_key, NULL::VARCHAR AS name", {"required:name"}),
        (DEALS, "SELECT 'd:1' AS _source_key, 'Visit' AS name", {"required:amount"}),
        (DEALS, "SELECT 'd:1' AS _source_key, '' AS name, 1.00::DECIMAL(18,2) AS amount", {"required:name"}),
        (
            APPOINTMENTS,
            "SELECT 'a:1' AS _source_key, 'Visit' AS title, TIMESTAMPTZ '2024-01-01 09:00+00' AS from_date, "
            "NULL::TIMESTAMPTZ AS end_date",
            {"required:end_date"},
        ),
        (BY_NAME["tasks"], "SELECT 't:1' AS _source_key, 'Call' AS title", {"required:due_date"}),
        (BY_NAME["notes"], "SELECT 'n:1' AS _source_key, NULL::VARCHAR AS description", {"required:description"}),
        (FILES, "SELECT 'f:1' AS _source_key, '/docs/a.pdf' AS file_path", {"required:file_name"}),
        (BY_NAME["lab_result"], "SELECT 'l:1' AS _source_key, 'x' AS cf_test", {"required:name"}),
        (BY_NAME["lab_result"], "SELECT 'l:1' AS _source_key, 'HbA1c' AS name", set()),
    ],
)
def test_required_fields_per_target_block(tmp_path: Path, obj: FreshsalesObject, sql: str, failing: set[str]) -> None:
    results = run_quality_checks(obj, _write(tmp_path / f"{obj.name}.parquet", sql))
    assert {r.name for r in results if r.blocking and not r.passed} == failing


def test_unresolvable_lookups_block(tmp_path: Path, accounts: Path) -> None:
    path = _contacts(
        tmp_path, _row("'patients:x'", lookup="'locations.id:404'") + " UNION ALL " + _row("'p:y'", lookup="NULL")
    )
    result = _by_name(run_quality_checks(CONTACTS, path, parent_keys={"sales_account": accounts}))[
        "lookup:sales_account"
    ]
    assert not result.passed and result.blocking
    assert result.observed == {"linked_rows": 21, "unresolved": 1}


def test_lookups_without_the_parent_file_cannot_pass(tmp_path: Path) -> None:
    result = _by_name(run_quality_checks(CONTACTS, _contacts(tmp_path)))["lookup:sales_account"]
    assert not result.passed and result.blocking
    missing = {"sales_account": tmp_path / "nowhere.parquet"}
    assert not _by_name(run_quality_checks(CONTACTS, _contacts(tmp_path), parent_keys=missing))[
        "lookup:sales_account"
    ].passed
    unlinked = _write(
        tmp_path / "unlinked.parquet",
        "SELECT 'p:1' AS _source_key, NULL::VARCHAR AS _lookup_sales_account, 'A' AS first_name",
    )
    assert _by_name(run_quality_checks(CONTACTS, unlinked))["lookup:sales_account"].passed


def test_deals_resolve_both_parents(tmp_path: Path, accounts: Path) -> None:
    contacts = _contacts(tmp_path)
    deals = _write(
        tmp_path / "deals.parquet",
        "SELECT 'bills:' || i AS _source_key, 'locations.id:0' AS _lookup_sales_account, "
        "CASE WHEN i = 0 THEN 'patients:999' ELSE 'patients:' || i END AS _lookup_contact, "
        "'Visit' AS name, 10.00::DECIMAL(18,2) AS amount FROM range(5) t(i)",
    )
    results = _by_name(run_quality_checks(DEALS, deals, parent_keys={"sales_account": accounts, "contact": contacts}))
    assert results["lookup:sales_account"].passed
    assert results["lookup:contact"].observed == {"linked_rows": 5, "unresolved": 1}


def test_warnings_count_bad_emails_amounts_and_dates(tmp_path: Path, accounts: Path) -> None:
    today = datetime.now(UTC).date()
    bad = " UNION ALL ".join(
        [
            _row("'p:e1'", email=f"'{SECRET}'"),
            _row("'p:e2'", email=f"'{SECRET}@nowhere'"),
            _row("'p:a1'", amount="-5.00"),
            _row("'p:d1'", dob="DATE '1850-06-01'"),
            _row("'p:d2'", dob=f"DATE '{today.year + 5}-01-01'"),
        ]
    )
    results = _by_name(run_quality_checks(CONTACTS, _contacts(tmp_path, bad), parent_keys={"sales_account": accounts}))
    assert results["email_valid:email"].observed["unexpected_count"] == 2
    assert results["amount:cf_amount_billed"].observed == {"negative": 1, "more_than_two_decimals": 0}
    assert results["date_range:cf_date_of_birth"].observed["unexpected_count"] == 2
    warnings = ("email_valid:email", "amount:cf_amount_billed", "date_range:cf_date_of_birth")
    assert all(not results[n].passed and not results[n].blocking for n in warnings)
    assert all(r.passed for r in results.values() if r.blocking)


def test_amounts_with_fractions_of_cents_and_timestamps_out_of_range(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "deals.parquet",
        "SELECT 'b:' || i AS _source_key, 'Visit' AS name, "
        "CASE WHEN i = 0 THEN 10.125 ELSE 10.5 END::DECIMAL(18,3) AS amount, "
        "CASE WHEN i = 1 THEN TIMESTAMPTZ '1899-12-31 23:00:00+00' ELSE TIMESTAMPTZ '2024-01-01 10:00:00+05' END "
        "AS cf_paid_at, 3.5::DOUBLE AS cf_score FROM range(3) t(i)",
    )
    results = _by_name(run_quality_checks(DEALS, path))
    assert results["amount:amount"].observed == {"negative": 0, "more_than_two_decimals": 1}
    assert results["date_range:cf_paid_at"].observed["unexpected_count"] == 1
    assert "amount:cf_score" not in results


def test_results_hold_no_values(tmp_path: Path) -> None:
    rows = " UNION ALL ".join(
        [
            _row(f"'{SECRET}'", lookup=f"'{SECRET}-parent'", email=f"'{SECRET}'", dob="DATE '1700-01-01'", amount="-1"),
            _row(f"'{SECRET}'", first=f"'{SECRET}'", email=f"'{SECRET}-2'"),
        ]
    )
    accounts = _write(tmp_path / "accounts.parquet", "SELECT 'locations.id:0' AS _source_key, 'C' AS name")
    results = run_quality_checks(CONTACTS, _contacts(tmp_path, rows), parent_keys={"sales_account": accounts})
    assert {r.name for r in results if not r.passed} >= {
        "source_key_unique",
        "lookup:sales_account",
        "email_valid:email",
    }
    text = " ".join(r.model_dump_json() for r in results)
    assert SECRET not in text and "1700" not in text
    assert all(isinstance(v, int | float) for r in results for v in r.observed.values())


def test_duplicate_and_shared_value_fields_raise_no_warning_when_empty_or_holding_keys(tmp_path: Path) -> None:
    # A family sharing an address names the keeper's source key; nobody was registered twice.
    path = _write(
        tmp_path / "contacts.parquet",
        "SELECT 'patients:' || i AS _source_key, 'patients' AS _source_table, i AS _source_row, "
        "'Ana' AS first_name, 'ana' || i || '@example.com' AS email, "
        "CASE WHEN i = 3 THEN 'patients:2' END AS cf_email_shared_with, "
        "NULL::VARCHAR AS cf_merged_source_keys, NULL::VARCHAR AS cf_possible_duplicate_of FROM range(5) t(i)",
    )
    results = _by_name(run_quality_checks(CONTACTS, path))
    assert not any(name.startswith("email_valid:cf_") for name in results)
    assert results["email_valid:email"].passed
    assert results["population_rates"].passed, results["population_rates"].observed
