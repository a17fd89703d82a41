"""What happens to patients: appointments, billing encounters, payments, treatment plans, lab results.

One function per table, vectorized; each takes the facts of its parent table it needs (0-based arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clinic_pipeline.samples.generator import vocab as v
from clinic_pipeline.samples.generator.columns import (
    SECONDS_PER_DAY,
    cat,
    clock,
    dates,
    decimal1,
    group_cumsum,
    group_positions,
    ids,
    messy_money,
    money,
    null_where,
    pick,
    stamps,
    table,
    text,
    weighted,
    where,
)
from clinic_pipeline.samples.generator.frame import DST_GAP_DAYS, Frame
from clinic_pipeline.samples.generator.tables import PatientFacts, provider_locations

APPOINTMENT_COLUMNS = (
    "appointment_id", "patient_id", "provider_id", "location_id", "appointment_date", "start_time",
    "duration_minutes", "appointment_type", "status", "notes", "deleted", "created_at", "updated_at",
)  # fmt: skip
ENCOUNTER_COLUMNS = (
    "encounter_id", "patient_id", "provider_id", "appointment_id", "invoice_number", "service_date", "cpt_code",
    "icd10_code", "amount_billed", "amount_paid", "payment_date", "payment_due_date", "denial_status", "claim_status",
    "created_at", "updated_at",
)  # fmt: skip
PAYMENT_COLUMNS = ("payment_id", "encounter_id", "payment_date", "amount", "method", "created_at")
TREATMENT_PLAN_COLUMNS = (
    "treatment_plan_id", "patient_id", "provider_id", "diagnosis_code", "procedure_codes", "start_date", "end_date",
    "status", "created_at", "updated_at",
)  # fmt: skip
LAB_RESULT_COLUMNS = (
    "lab_result_id", "patient_id", "ordering_provider_id", "test_name", "loinc_code", "result_value", "unit",
    "reference_range", "abnormal_flag", "result_date", "report_text", "created_at", "updated_at",
)  # fmt: skip

APPOINTMENTS_PER_PATIENT = 6.0
ENCOUNTERS_PER_PATIENT = 3.0
TREATMENT_PLANS_PER_PATIENT = 0.8
LAB_RESULTS_PER_PATIENT = 2.0
PAYMENT_TERMS_DAYS = 30  # a bill's payment falls due this long after the service
_STATUSES = np.array(["scheduled", "arrived", "completed", "cancelled", "no_show"])
_COMPLETED = 2
_PAST_STATUS_WEIGHTS = np.array([0.0, 0.04, 0.78, 0.11, 0.07])
_OPEN_DAY_MINUTES = 8 * 60
_SLOTS = 40  # 15-minute slots from 08:00


def _orphan_patient_ids(rng: np.random.Generator, frame: Frame, patient: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Patient ids as text, a share of them pointing past the last patient (rows whose patient is gone)."""
    orphan = rng.random(len(patient)) < frame.rates.orphan_foreign_keys
    gone = frame.patients + 1 + rng.integers(0, max(1, frame.patients), len(patient))
    return text(np.where(orphan, gone, patient + 1)), orphan


def _clamped_times(
    rng: np.random.Generator, frame: Frame, created: np.ndarray, candidate_update: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """created_at no later than the export, updated_at between it and the export."""
    created = np.minimum(created, frame.export_s - rng.integers(60, 3_600, len(created)))
    return created, np.clip(candidate_update, created, frame.export_s)


@dataclass(frozen=True)
class AppointmentFacts:
    patient: np.ndarray
    provider: np.ndarray
    day: np.ndarray
    start_s: np.ndarray
    billable: np.ndarray


def appointments(frame: Frame, people: PatientFacts) -> tuple[pa.Table, AppointmentFacts]:
    rng = frame.rng(7)
    r = frame.rates
    patient, _ = group_positions(rng.poisson(APPOINTMENTS_PER_PATIENT, frame.patients))
    n = len(patient)
    provider = np.where(rng.random(n) < 0.75, people.provider[patient], rng.integers(0, frame.providers, n))
    day = rng.integers(frame.export_day - 3 * 365, frame.export_day + 60, n)
    minute = _OPEN_DAY_MINUTES + 15 * rng.integers(0, _SLOTS, n)
    in_gap = rng.random(n) < r.dst_gap_appointments
    day = np.where(in_gap, DST_GAP_DAYS[rng.integers(0, len(DST_GAP_DAYS), n)], day)
    minute = np.where(in_gap, 120 + 15 * rng.integers(0, 4, n), minute)
    start = day * SECONDS_PER_DAY + minute * 60
    duration = v.DURATIONS[weighted(rng, v.DURATION_WEIGHTS, n)]
    status = np.where(start > frame.export_s, 0, weighted(rng, _PAST_STATUS_WEIGHTS, n))
    short = duration < 15
    kind = where(
        short,
        pick(v.APPOINTMENT_TYPES_SHORT, rng.integers(0, len(v.APPOINTMENT_TYPES_SHORT), n)),
        pick(v.APPOINTMENT_TYPES_LONG, rng.integers(0, len(v.APPOINTMENT_TYPES_LONG), n)),
    )
    deleted = rng.random(n) < r.soft_deleted
    patient_ids, orphan = _orphan_patient_ids(rng, frame, patient)
    booked = start - rng.integers(1, 60, n) * SECONDS_PER_DAY - rng.integers(0, 8 * 3_600, n)
    closed = start + duration * 60 + rng.integers(0, 2 * 3_600, n)
    created, updated = _clamped_times(rng, frame, booked, np.where(status == 0, booked, closed))
    arrays = [
        ids(n), patient_ids, text(provider + 1), text(provider_locations(frame)[provider] + 1), dates(day),
        clock(minute), text(duration), kind, pick(_STATUSES, status),
        null_where(rng.random(n) < 0.6, pick(v.APPOINTMENT_NOTES, rng.integers(0, len(v.APPOINTMENT_NOTES), n))),
        where(deleted, "1", "0"), stamps(created), stamps(updated),
    ]  # fmt: skip
    billable = (status == _COMPLETED) & ~orphan & ~deleted
    return table(APPOINTMENT_COLUMNS, arrays, n), AppointmentFacts(patient, provider, day, start, billable)


@dataclass(frozen=True)
class EncounterFacts:
    paid_cents: np.ndarray
    service_day: np.ndarray
    payments: np.ndarray
    payment_offsets: np.ndarray


def _split_cents(rng: np.random.Generator, paid: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Split each amount into `parts` positive cent amounts that add up to it exactly."""
    owner, position = group_positions(parts)
    running = group_cumsum(rng.random(len(owner)) + 0.25, parts)
    ends = np.cumsum(parts) - 1
    share = running / np.repeat(running[ends], parts)
    cumulative = np.floor(paid[owner] * share).astype(np.int64)
    cumulative[ends] = paid  # the last part takes the rounding remainder
    previous = np.where(position == 0, 0, np.concatenate([[0], cumulative[:-1]]))
    return cumulative - previous


def billing_encounters(frame: Frame, visits: AppointmentFacts) -> tuple[pa.Table, EncounterFacts]:
    """One bill per chosen completed appointment, about three per patient, paid fully, partly or not at all."""
    rng = frame.rng(8)
    r = frame.rates
    eligible = np.flatnonzero(visits.billable)
    wanted = min(len(eligible), round(ENCOUNTERS_PER_PATIENT * frame.patients))
    appointment = np.sort(rng.choice(eligible, size=wanted, replace=False))
    n = len(appointment)
    patient_ids, _ = _orphan_patient_ids(rng, frame, visits.patient[appointment])
    cpt = rng.integers(0, len(v.CPT_CODES), n)
    billed = v.CPT_CENTS[cpt] + rng.integers(-300, 300, n)
    denial = weighted(rng, v.DENIAL_WEIGHTS, n)
    service_day = visits.day[appointment]
    recent = service_day > frame.export_day - 30
    partly = (billed * rng.uniform(0.2, 0.9, n)).astype(np.int64)
    paid = np.select(
        [denial == 1, denial == 2, denial == 3],
        [0, partly, np.where(rng.random(n) < 0.5, 0, partly)],
        np.where(recent & (rng.random(n) < 0.6), 0, billed),
    )
    payments = np.where(paid == 0, 0, np.where(paid < 1_000, 1, 1 + weighted(rng, np.array([0.6, 0.3, 0.1]), n)))
    # Days after the service each payment arrives: increasing within a bill, never after the export.
    owner, _ = group_positions(payments)
    offsets = group_cumsum(rng.integers(3, 30, len(owner)), payments)
    offsets = np.minimum(offsets, frame.export_day - service_day[owner])
    last_payment_day = np.full(n, -1)
    last_payment_day[payments > 0] = (service_day[owner] + offsets)[np.cumsum(payments)[payments > 0] - 1]
    icd = pick(v.ICD10_CODES, rng.integers(0, len(v.ICD10_CODES), n))
    created = service_day * SECONDS_PER_DAY + 17 * 3_600 + rng.integers(0, 3 * 3_600, n)
    touched = np.where(paid > 0, last_payment_day * SECONDS_PER_DAY + 12 * 3_600, created)
    created, updated = _clamped_times(rng, frame, created, touched)
    arrays = [
        ids(n), patient_ids, text(visits.provider[appointment] + 1), text(appointment + 1),
        cat("INV-", text(np.arange(1, n + 1) + 100_000)), dates(service_day), pick(v.CPT_CODES, cpt),
        where(rng.random(n) < r.icd10_prefix, cat("ICD10:", icd), icd),
        where(rng.random(n) < r.messy_money, messy_money(billed), money(billed)), money(paid),
        null_where(paid == 0, dates(np.maximum(last_payment_day, 0))), dates(service_day + PAYMENT_TERMS_DAYS),
        pick(v.DENIAL_STATUSES, denial),
        pick(v.CLAIM_STATUSES, _claim_status(frame, denial, billed, paid, service_day)),
        stamps(created), stamps(updated),
    ]  # fmt: skip
    return table(ENCOUNTER_COLUMNS, arrays, n), EncounterFacts(paid, service_day, payments, offsets)


_WRITE_OFF_DAYS = 180  # a denial this old that nobody appealed is written off


def _claim_status(
    frame: Frame, denial: np.ndarray, billed: np.ndarray, paid: np.ndarray, service_day: np.ndarray
) -> np.ndarray:
    """Index into CLAIM_STATUSES, from what the bill's amounts and denial say (never contradicting them)."""
    age = frame.export_day - service_day
    return np.select(
        [
            (paid >= billed) & (paid > 0),
            (denial == 1) & (age > _WRITE_OFF_DAYS),
            denial == 1,
            denial == 3,
            paid > 0,
            age <= 7,
        ],
        [2, 6, 4, 5, 3, 0],
        default=1,
    )


def payments(frame: Frame, bills: EncounterFacts) -> pa.Table:
    """Each paid bill's amount_paid split over 1-3 payments, cents-exact."""
    rng = frame.rng(9)
    encounter, _ = group_positions(bills.payments)
    n = len(encounter)
    amount = _split_cents(rng, bills.paid_cents[bills.payments > 0], bills.payments[bills.payments > 0])
    day = bills.service_day[encounter] + bills.payment_offsets
    created = np.minimum(day * SECONDS_PER_DAY + rng.integers(9 * 3_600, 17 * 3_600, n), frame.export_s)
    method = weighted(rng, np.array([0.25, 0.08, 0.07, 0.5, 0.1]), n)
    arrays = [ids(n), text(encounter + 1), dates(day), money(amount), pick(v.PAYMENT_METHODS, method), stamps(created)]
    return table(PAYMENT_COLUMNS, arrays, n)


def treatment_plans(frame: Frame, people: PatientFacts) -> pa.Table:
    rng = frame.rng(10)
    patient, _ = group_positions(rng.poisson(TREATMENT_PLANS_PER_PATIENT, frame.patients))
    n = len(patient)
    codes = [pick(v.CPT_CODES, rng.integers(0, len(v.CPT_CODES), n)) for _ in range(3)]
    count = rng.integers(1, 4, n)
    procedures = where(count == 1, codes[0], where(count == 2, cat(codes[0], ";", codes[1]),
                                                     cat(codes[0], ";", codes[1], ";", codes[2])))  # fmt: skip
    start = rng.integers(frame.export_day - 3 * 365, frame.export_day, n)
    status = weighted(rng, np.array([0.35, 0.5, 0.15]), n)  # active, completed, cancelled
    length = np.where(status == 2, rng.integers(1, 20, n), rng.integers(30, 180, n))
    end = start + length
    open_ended = (status == 0) & (rng.random(n) < 0.6)
    finished = np.where(status != 0, np.minimum(end, frame.export_day), end)
    created = start * SECONDS_PER_DAY + rng.integers(8 * 3_600, 18 * 3_600, n)
    created, updated = _clamped_times(rng, frame, created, np.where(status == 0, created, finished * SECONDS_PER_DAY))
    arrays = [
        ids(n), text(patient + 1), text(people.provider[patient] + 1),
        pick(v.ICD10_CODES, rng.integers(0, len(v.ICD10_CODES), n)), procedures, dates(start),
        null_where(open_ended, dates(finished)), pick(np.array(["active", "completed", "cancelled"]), status),
        stamps(created), stamps(updated),
    ]  # fmt: skip
    return table(TREATMENT_PLAN_COLUMNS, arrays, n)


def _ranges() -> np.ndarray:
    return np.array([f"{lo:g}-{hi:g}" for lo, hi in zip(v.LAB_LOW, v.LAB_HIGH, strict=True)])


def lab_results(frame: Frame, people: PatientFacts) -> pa.Table:
    """Structured results (some with messy values) and free-text reports with no value."""
    rng = frame.rng(11)
    r = frame.rates
    patient, _ = group_positions(rng.poisson(LAB_RESULTS_PER_PATIENT, frame.patients))
    n = len(patient)
    report = rng.random(n) < r.unstructured_labs
    test = rng.integers(0, len(v.LAB_TESTS), n)
    report_test = rng.integers(0, len(v.REPORT_TESTS), n)
    low, high = v.LAB_LOW[test], v.LAB_HIGH[test]
    value = np.maximum(rng.normal((low + high) / 2, (high - low) / 2.5), 0.0)
    tenths = np.round(value * 10).astype(np.int64)
    shown = tenths / 10
    flag = np.where(shown > high, 1, np.where(shown < low, 2, 0))
    messy = ~report & (rng.random(n) < r.messy_lab_values)
    sentences = [pick(v.REPORT_SENTENCES, rng.integers(0, len(v.REPORT_SENTENCES), n)) for _ in range(5)]
    report_text = cat(*[part for s in sentences for part in (s, " ")][:-1])
    day = rng.integers(frame.export_day - 3 * 365, frame.export_day, n)
    created = day * SECONDS_PER_DAY + rng.integers(8 * 3_600, 20 * 3_600, n)
    created, updated = _clamped_times(rng, frame, created, created + rng.integers(0, 3, n) * SECONDS_PER_DAY)
    values = where(messy, pick(v.MESSY_LAB_VALUES, rng.integers(0, len(v.MESSY_LAB_VALUES), n)), decimal1(tenths))
    arrays = [
        ids(n), text(patient + 1), text(people.provider[patient] + 1),
        where(report, pick(v.REPORT_TESTS, report_test), pick(v.LAB_TESTS, test)),
        where(report, pick(v.REPORT_LOINC, report_test), pick(v.LAB_LOINC, test)),
        null_where(report, values), null_where(report, pick(v.LAB_UNITS, test)),
        null_where(report, pick(_ranges(), test)),
        null_where(report | messy | (flag == 0), pick(np.array(["", "H", "L"]), flag)), dates(day),
        null_where(~report, report_text), stamps(created), stamps(updated),
    ]  # fmt: skip
    return table(LAB_RESULT_COLUMNS, arrays, n)
