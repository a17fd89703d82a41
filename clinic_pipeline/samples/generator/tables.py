"""The clinic's people and organisations: locations, providers, referrers, carriers, patients, policies.

One function per table, each vectorized over numpy/Arrow and seeded by its own stream of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clinic_pipeline.samples.generator import vocab as v
from clinic_pipeline.samples.generator.columns import (
    SECONDS_PER_DAY,
    cat,
    dates,
    group_positions,
    ids,
    null_where,
    padded,
    pick,
    stamps,
    table,
    text,
    us_dates,
    weighted,
    where,
)
from clinic_pipeline.samples.generator.frame import Frame

LOCATION_COLUMNS = ("location_id", "location_name", "address", "city", "state", "zip", "phone", "time_zone")
PROVIDER_COLUMNS = ("provider_id", "first_name", "last_name", "email", "npi", "specialty", "active", "location_id")
REFERRER_COLUMNS = (
    "referrer_id", "referrer_name", "email", "phone", "npi", "specialty", "practice_name",
    "practice_city", "practice_state", "created_at", "updated_at",
)  # fmt: skip
CARRIER_COLUMNS = ("carrier_id", "carrier_name", "payer_code", "city", "state", "phone")
PATIENT_COLUMNS = (
    "patient_id", "chart_number", "first_name", "last_name", "date_of_birth", "sex", "email", "phone", "address",
    "city", "state", "zip", "location_id", "primary_provider_id", "referring_physician_id", "preferred_language",
    "marketing_consent", "deleted", "created_at", "updated_at",
    "how_did_you_hear", "last_xray_date", "allergy_notes", "pain_scale", "newsletter_opt_in", "patient_status",
    "merged_into",
)  # fmt: skip
POLICY_COLUMNS = (
    "policy_id", "patient_id", "carrier_id", "policy_number", "group_number", "coverage_order", "subscriber_name",
    "subscriber_relationship", "effective_date", "termination_date", "created_at", "updated_at",
)  # fmt: skip

_LETTERS = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"))
_INVALID_PHONES = 5
_MIXED_FORMATS = 3


def _phone_digits(rng: np.random.Generator, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(200, 1000, len(area)), rng.integers(0, 10_000, len(area))


def standard_phones(area: np.ndarray, exchange: np.ndarray, line: np.ndarray) -> pa.Array:
    return cat(text(area), "-", text(exchange), "-", padded(line, 4))


def messy_phones(rng: np.random.Generator, area: np.ndarray, invalid: float, mixed: float) -> pa.Array:
    """Phones in the clinic's usual `555-123-4567`, other formats at `mixed`, broken ones at `invalid`."""
    n = len(area)
    exchange, line = _phone_digits(rng, area)
    a, e, ln = text(area), text(exchange), padded(line, 4)
    standard = standard_phones(area, exchange, line)
    digits = area * 10_000_000 + exchange * 10_000 + line
    kind = rng.integers(0, _INVALID_PHONES * _MIXED_FORMATS, n)
    invalid_forms = [
        pa.repeat(pa.scalar("000-000-0000"), n),
        pa.repeat(pa.scalar("N/A"), n),
        cat(e, "-", ln),
        # What Excel leaves of a phone stored as a number: six significant digits.
        cat(text(digits // 1_000_000_000), ".", padded((digits // 10_000) % 100_000, 5), "E+09"),
        cat(standard, " x", text(rng.integers(100, 1000, n))),
    ]
    mixed_forms = [cat(a, ".", e, ".", ln), cat("(", a, ") ", e, "-", ln), cat("+1 ", a, " ", e, " ", ln)]
    u = rng.random(n)
    out = standard
    for i, form in enumerate(mixed_forms):
        out = where((u >= invalid) & (u < invalid + mixed) & (kind % _MIXED_FORMATS == i), form, out)
    for i, form in enumerate(invalid_forms):
        out = where((u < invalid) & (kind % _INVALID_PHONES == i), form, out)
    return out


def _created_updated(rng: np.random.Generator, frame: Frame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Creation times in id order over the history, updates after them (a third never updated)."""
    created = np.sort(rng.integers(frame.history_start_s, frame.export_s - SECONDS_PER_DAY, n))
    updated = created + (rng.random(n) * (frame.export_s - created)).astype(np.int64)
    return created, np.where(rng.random(n) < 0.33, created, updated)


def _zip(rng: np.random.Generator, city: np.ndarray) -> pa.Array:
    return padded(v.CITY_ZIP_PREFIX[city] * 100 + rng.integers(0, 100, len(city)), 5)


def _street(rng: np.random.Generator, n: int) -> pa.Array:
    number = text(rng.integers(1, 9_900, n))
    return cat(number, " ", pick(v.STREETS, rng.integers(0, len(v.STREETS), n)), pick(v.UNITS, rng.integers(0, 8, n)))


def _npi(first_digit: int, index: np.ndarray, seed: int) -> pa.Array:
    # A multiplier coprime with 10^9 keeps NPIs of one table distinct.
    return text(first_digit * 1_000_000_000 + (index * 7_919 + seed * 104_729) % 1_000_000_000)


def locations(frame: Frame) -> pa.Table:
    rng = frame.rng(1)
    n = frame.locations
    city = np.array([1, 2, 0, 3, 4, 7])[:n]  # the two Riverside clinics sit in Springfield and Peoria
    exchange, line = _phone_digits(rng, v.CITY_AREA_CODE[city])
    arrays = [
        ids(n), pick(v.LOCATION_NAMES, np.arange(n)), _street(rng, n), pick(v.CITIES, city),
        pick(v.CITY_STATES, city), _zip(rng, city), standard_phones(v.CITY_AREA_CODE[city], exchange, line),
        frame.time_zone,
    ]  # fmt: skip
    return table(LOCATION_COLUMNS, arrays, n)


def provider_locations(frame: Frame) -> np.ndarray:
    """0-based location of each provider: round robin, so every location has providers."""
    return np.arange(frame.providers) % frame.locations


def providers(frame: Frame) -> pa.Table:
    rng = frame.rng(2)
    n = frame.providers
    first_i = rng.integers(0, v.NON_ASCII_FIRST, n)
    last_i = rng.integers(0, len(v.LAST_NAMES), n)
    email = cat(
        pick(v.FIRST_NAMES_ASCII, first_i), ".", pick(v.LAST_NAMES_ASCII, last_i), text(np.arange(1, n + 1)),
        "@", v.CLINIC_EMAIL_DOMAIN,
    )  # fmt: skip
    arrays = [
        ids(n), pick(v.FIRST_NAMES, first_i), pick(v.LAST_NAMES, last_i),
        null_where(rng.random(n) < frame.rates.provider_missing_email, email), _npi(1, np.arange(n), frame.seed),
        pick(v.SPECIALTIES, rng.integers(0, len(v.SPECIALTIES), n)),
        where(rng.random(n) < frame.rates.inactive_providers, "N", "Y"), text(provider_locations(frame) + 1),
    ]  # fmt: skip
    return table(PROVIDER_COLUMNS, arrays, n)


def _written_name(rng: np.random.Generator, first: pa.Array, last: pa.Array) -> pa.Array:
    """One name column as referral directories write it: `Luis Ferreira, MD`, `FERREIRA, LUIS`, `Dr. Luis
    Ferreira`, `Ferreira, Luis`."""
    forms = [
        cat(first, " ", last, ", MD"),
        cat(pc.utf8_upper(last), ", ", pc.utf8_upper(first)),
        cat("Dr. ", first, " ", last),
        cat(last, ", ", first),
    ]
    kind = rng.integers(0, len(forms), len(first))
    out = forms[0]
    for i, form in enumerate(forms[1:], start=1):
        out = where(kind == i, form, out)
    return out


def referring_physicians(frame: Frame) -> pa.Table:
    rng = frame.rng(3)
    n = frame.referrers
    first_i = rng.integers(0, len(v.FIRST_NAMES), n)
    last_i = rng.integers(0, len(v.LAST_NAMES), n)
    city = rng.integers(0, len(v.CITIES), n)
    # Few practice names over many cities: same-named practices in different cities come naturally.
    practice = rng.integers(0, len(v.PRACTICE_NAMES), n)
    created, updated = _created_updated(rng, frame, n)
    email = cat(pick(v.FIRST_NAMES_ASCII, first_i), ".", pick(v.LAST_NAMES_ASCII, last_i), text(np.arange(1, n + 1)),
                "@", pick(v.EMAIL_DOMAINS, rng.integers(0, len(v.EMAIL_DOMAINS), n)))  # fmt: skip
    arrays = [
        ids(n), _written_name(rng, pick(v.FIRST_NAMES, first_i), pick(v.LAST_NAMES, last_i)),
        null_where(rng.random(n) < 0.1, email),
        messy_phones(rng, v.CITY_AREA_CODE[city], 0.0, 0.3), _npi(1, np.arange(n) + 500_000, frame.seed),
        pick(v.SPECIALTIES, rng.integers(0, len(v.SPECIALTIES), n)), pick(v.PRACTICE_NAMES, practice),
        pick(v.CITIES, city), pick(v.CITY_STATES, city), stamps(created), stamps(updated),
    ]  # fmt: skip
    return table(REFERRER_COLUMNS, arrays, n)


def insurance_carriers(frame: Frame) -> pa.Table:
    rng = frame.rng(4)
    n = frame.carriers
    name = np.arange(n)
    # The last two carriers repeat the first two names in other cities (regional plans of one brand).
    name[-2:] = [0, 1]
    city = rng.integers(0, len(v.CITIES), n)
    city[-2:] = (city[:2] + 1) % len(v.CITIES)
    exchange, line = _phone_digits(rng, v.CITY_AREA_CODE[city])
    payer = cat(pick(_LETTERS, rng.integers(0, len(_LETTERS), n)), pick(_LETTERS, rng.integers(0, len(_LETTERS), n)),
                padded(np.arange(1, n + 1), 3))  # fmt: skip
    arrays = [
        ids(n), pick(v.CARRIER_NAMES, name), payer, pick(v.CITIES, city), pick(v.CITY_STATES, city),
        standard_phones(v.CITY_AREA_CODE[city], exchange, line),
    ]  # fmt: skip
    return table(CARRIER_COLUMNS, arrays, n)


@dataclass(frozen=True)
class PatientFacts:
    """What child tables need to know about the patients (0-based arrays, one entry per patient row)."""

    location: np.ndarray
    provider: np.ndarray
    created_s: np.ndarray
    first_name: pa.Array
    last_name: pa.Array


def _families(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(head per row: the row itself outside families, is-head mask). Families of 2-4 consecutive rows."""
    head_of = np.arange(n)
    # Heads at least five rows apart: families of up to four never overlap.
    heads = np.sort(rng.choice(n // 5, size=min(n // 5, round(n * rate / 3)), replace=False)) * 5
    heads = heads[heads + 4 <= n]
    sizes = rng.integers(2, 5, len(heads))
    owner, position = group_positions(sizes - 1)
    head_of[heads[owner] + position + 1] = heads[owner]
    is_head = np.zeros(n, dtype=bool)
    is_head[heads] = True
    return head_of, is_head


def _duplicates(rng: np.random.Generator, rate: float, head_of: np.ndarray, is_head: np.ndarray) -> np.ndarray:
    """The earlier row each row re-registers (itself when it is no duplicate); families stay whole."""
    n = len(head_of)
    source = np.arange(n)
    is_dup = (rng.random(n) < rate) & (source > 0) & (head_of == source) & ~is_head
    originals = np.flatnonzero(~is_dup)
    dup_rows = np.flatnonzero(is_dup)
    earlier = np.searchsorted(originals, dup_rows)  # originals before each duplicate (>= 1: row 0 is one)
    source[dup_rows] = originals[(rng.random(len(dup_rows)) * earlier).astype(np.int64)]
    return source


def _names(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    first = rng.integers(0, v.NON_ASCII_FIRST, n)
    last = rng.integers(0, v.NON_ASCII_LAST, n)
    accented = rng.random(n) < rate
    in_first = accented & (rng.random(n) < 0.5)
    in_last = accented & ~in_first
    first[in_first] = rng.integers(v.NON_ASCII_FIRST, len(v.FIRST_NAMES), int(in_first.sum()))
    last[in_last] = rng.integers(v.NON_ASCII_LAST, len(v.LAST_NAMES), int(in_last.sum()))
    return first, last


def _emails(rng: np.random.Generator, frame: Frame, first: np.ndarray, last: np.ndarray, keep: np.ndarray) -> pa.Array:
    """Unique addresses, then missing/placeholder/malformed ones on rows not in `keep`."""
    n = len(first)
    r = frame.rates
    local = cat(pick(v.FIRST_NAMES_ASCII, first), ".", pick(v.LAST_NAMES_ASCII, last), text(np.arange(1, n + 1)))
    domain = pick(v.EMAIL_DOMAINS, rng.integers(0, len(v.EMAIL_DOMAINS), n))
    good = cat(local, "@", domain)
    malformed = where(
        rng.random(n) < 0.5, cat(local, "@", pc.utf8_slice_codeunits(domain, 0, 7)), cat(local, "@@", domain)
    )
    placeholder = pick(np.array(["none@none.com", "N/A", "declined"]), rng.integers(0, 3, n))
    # Rates are of all rows; the rows kept clean (family heads) are excluded, so scale up to compensate.
    scale = n / max(1, int((~keep).sum()))
    u = np.where(keep, 1.0, rng.random(n) / scale)
    out = where(u < r.missing_email + r.placeholder_email + r.malformed_email, malformed, good)
    out = where(u < r.missing_email + r.placeholder_email, placeholder, out)
    return null_where(u < r.missing_email, out)


def _swap_day_month(days: np.ndarray) -> np.ndarray:
    """The same date with day and month exchanged where that is a different valid date."""
    d = days.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]")
    month = (month_start - year.astype("datetime64[M]")).astype(np.int64) + 1
    day = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    swappable = (day <= 12) & (day != month)
    swapped = (year.astype("datetime64[M]") + (day - 1)).astype("datetime64[D]") + (month - 1)
    return np.where(swappable, swapped.astype(np.int64), days)


def _date_of_birth(rng: np.random.Generator, frame: Frame, days: np.ndarray, clean: np.ndarray) -> pa.Array:
    r = frame.rates
    n = len(days)
    u = np.where(clean, 1.0, rng.random(n))
    out = where(u < r.zero_date_of_birth + r.sentinel_date_of_birth + r.us_date_of_birth, us_dates(days), dates(days))
    out = where(u < r.zero_date_of_birth + r.sentinel_date_of_birth, "1900-01-01", out)
    return where(u < r.zero_date_of_birth, "0000-00-00", out)


def _trailing_spaces(rng: np.random.Generator, names: pa.Array, rate: float) -> pa.Array:
    return where(rng.random(len(names)) < rate, cat(names, "  "), names)


def _test_charts(frame: Frame, first: pa.Array, last: pa.Array, is_dup: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """A few first registrations renamed as the test or demo charts a clinic tries its software with."""
    n = len(is_dup)
    wanted = round(frame.rates.test_patients * n)
    if frame.rates.test_patients and n >= 50:
        wanted = max(wanted, 1)
    rng = frame.rng(15)
    rows = np.sort(rng.choice(np.flatnonzero(~is_dup), size=min(wanted, int((~is_dup).sum())), replace=False))
    chosen = np.zeros(n, dtype=bool)
    chosen[rows] = True
    kind = np.zeros(n, dtype=np.int64)
    kind[rows] = np.arange(len(rows)) % len(v.TEST_LAST_NAMES)
    return where(chosen, pick(v.TEST_FIRST_NAMES, kind), first), where(chosen, pick(v.TEST_LAST_NAMES, kind), last)


def patients(frame: Frame) -> tuple[pa.Table, PatientFacts]:
    rng = frame.rng(5)
    r = frame.rates
    n = frame.patients
    head_of, is_head = _families(rng, n, r.shared_family_email)
    source = _duplicates(rng, r.duplicate_patients, head_of, is_head)
    is_dup = source != np.arange(n)
    # Shared columns come from the family head of the registered person, personal ones from the person.
    shared = head_of[source]

    first, last = _names(rng, n, r.non_ascii_names)
    city = rng.integers(0, len(v.CITIES), n)
    location = rng.integers(0, frame.locations, n)
    per_location = np.bincount(provider_locations(frame), minlength=frame.locations)
    provider = location + frame.locations * (rng.random(n) * per_location[location]).astype(np.int64)
    dob = frame.export_day - rng.integers(4 * 365, 95 * 365, n)  # born before the history starts
    sex = weighted(rng, np.array([0.49, 0.49, 0.02]), n)

    take_shared = pa.array(shared, pa.int64())
    email = pc.take(_emails(rng, frame, first, last, is_head), take_shared)
    phone = pc.take(messy_phones(rng, v.CITY_AREA_CODE[city], r.invalid_phone, r.mixed_phone_format), take_shared)
    first_names = pick(v.FIRST_NAMES, first[source])
    nickname_dup = is_dup & (rng.random(n) < 0.4)
    swapped_dup = is_dup & ~nickname_dup & (rng.random(n) < 0.6)
    first_names = where(nickname_dup, pick(v.NICKNAME_OF, first[source]), first_names)
    dob = np.where(swapped_dup, _swap_day_month(dob[source]), dob[source])
    first_names = _trailing_spaces(rng, first_names, r.trailing_whitespace / 2)
    last_names = _trailing_spaces(rng, pick(v.LAST_NAMES, last[shared]), r.trailing_whitespace / 2)

    first_names, last_names = _test_charts(frame, first_names, last_names, is_dup)
    location, provider, city = location[shared], provider[shared], city[shared]
    created, updated = _created_updated(rng, frame, n)
    referred = rng.random(n) < r.referred_patients
    xray_days = rng.integers(frame.export_day - 3 * 365, frame.export_day, n)
    arrays = [
        ids(n), cat("C", padded(np.arange(1, n + 1), 7)), first_names, last_names,
        _date_of_birth(rng, frame, dob, is_dup), pick(np.array(["M", "F", "U"]), sex[source]), email, phone,
        pc.take(_street(rng, n), take_shared), pick(v.CITIES, city), pick(v.CITY_STATES, city),
        pc.take(_zip(rng, city), take_shared), text(location + 1), text(provider + 1),
        null_where(~referred, text(rng.integers(1, frame.referrers + 1, n))),
        pick(v.LANGUAGES, weighted(rng, v.LANGUAGE_WEIGHTS, n)),
        null_where(rng.random(n) < 0.2, where(rng.random(n) < 0.55, "Y", "N")),
        where(rng.random(n) < r.soft_deleted, "1", "0"), stamps(created), stamps(updated),
        null_where(rng.random(n) < 0.1, pick(v.HOW_DID_YOU_HEAR, rng.integers(0, len(v.HOW_DID_YOU_HEAR), n))),
        null_where(rng.random(n) < 0.6, dates(xray_days)),
        null_where(rng.random(n) < 0.5, pick(v.ALLERGY_NOTES, rng.integers(0, len(v.ALLERGY_NOTES), n))),
        null_where(rng.random(n) < 0.3, text(rng.integers(0, 11, n))),
        where(rng.random(n) < 0.35, "true", "false"),
        pick(v.PATIENT_STATUSES, weighted(frame.rng(14), v.PATIENT_STATUS_WEIGHTS, n)),
        null_where(~(is_dup & (frame.rng(17).random(n) < r.marked_merged)), text(source + 1)),
    ]  # fmt: skip
    facts = PatientFacts(location, provider, created, first_names, last_names)
    return table(PATIENT_COLUMNS, arrays, n), facts


def insurance_policies(frame: Frame, people: PatientFacts) -> pa.Table:
    """0-3 plans per patient (about 1.3 on average); most first plans are the patient's own."""
    rng = frame.rng(6)
    plans = weighted(rng, np.array([0.10, 0.55, 0.27, 0.08]), frame.patients)
    patient, order = group_positions(plans)
    n = len(patient)
    base = rng.integers(0, frame.carriers, frame.patients)
    carrier = (base[patient] + 3 * order) % frame.carriers  # distinct carriers within a patient
    relationship = np.where((order == 0) & (rng.random(n) < 0.8), 0, 1 + weighted(rng, np.array([0.5, 0.35, 0.15]), n))
    last = pc.take(people.last_name, pa.array(patient, pa.int64()))
    own = cat(pc.take(people.first_name, pa.array(patient, pa.int64())), " ", last)
    other = cat(pick(v.FIRST_NAMES, rng.integers(0, len(v.FIRST_NAMES), n)), " ", last)
    effective = frame.export_day - rng.integers(30, 5 * 365, n)
    terminated = rng.random(n) < 0.2
    created = np.maximum(people.created_s[patient], effective * SECONDS_PER_DAY) + rng.integers(0, 86_400, n)
    created = np.minimum(created, frame.export_s - 3_600)
    updated = created + (rng.random(n) * (frame.export_s - created) * (rng.random(n) < 0.5)).astype(np.int64)
    number = cat(
        pick(_LETTERS, rng.integers(0, len(_LETTERS), n)), pick(_LETTERS, rng.integers(0, len(_LETTERS), n)),
        padded(rng.integers(0, 100_000_000, n), 8),
    )  # fmt: skip
    arrays = [
        ids(n), text(patient + 1), text(carrier + 1), number,
        null_where(rng.random(n) < 0.15, cat("G", padded(rng.integers(0, 100_000, n), 5))), text(order + 1),
        where(relationship == 0, own, other), pick(np.array(["self", "spouse", "child", "other"]), relationship),
        dates(effective), null_where(~terminated, dates(effective + rng.integers(180, 720, n))),
        stamps(created), stamps(updated),
    ]  # fmt: skip
    return table(POLICY_COLUMNS, arrays, n)
