"""General clinic and CRM vocabulary: how exports name things, normalised for fuzzy matching.

Nothing here names a particular vendor or fixture: abbreviations are the ones practice software and
spreadsheets use everywhere (pt, dob, fname, amt, npi, dx, cpt, e-mail, cell...), and each concept
lists the plain-English phrases a column or table about it is called.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# token → expansion, applied word by word after normalisation.
ABBREVIATIONS: dict[str, str] = {
    "pt": "patient",
    "pat": "patient",
    "pnt": "patient",
    "dob": "date of birth",
    "bdate": "birth date",
    "bday": "birthday",
    "fname": "first name",
    "firstname": "first name",
    "lname": "last name",
    "lastname": "last name",
    "surname": "last name",
    "mname": "middle name",
    "mi": "middle initial",
    "ins": "insurance",
    "amt": "amount",
    "npi": "national provider identifier",
    "dx": "diagnosis",
    "icd": "diagnosis code",
    "cpt": "procedure code",
    "hcpcs": "procedure code",
    "addr": "address",
    "ph": "phone",
    "phn": "phone",
    "tel": "phone",
    "tele": "phone",
    "telephone": "phone",
    "cell": "mobile",
    "cellphone": "mobile phone",
    "mobilephone": "mobile phone",
    "email": "email",
    "emailaddress": "email address",
    "mail": "email",
    "zip": "zip",
    "zipcode": "zip",
    "postal": "zip",
    "postcode": "zip",
    "no": "number",
    "num": "number",
    "nbr": "number",
    "nr": "number",
    "dt": "date",
    "desc": "description",
    "sex": "gender",
    "ssn": "social security number",
    "sin": "social insurance number",
    "hin": "health insurance number",
    "mrn": "medical record number",
    "acct": "account",
    "dept": "department",
    "prov": "provider",
    "dr": "provider",
    "doc": "provider",
    "loc": "location",
    "fac": "facility",
    "appt": "appointment",
    "proc": "procedure",
    "apt": "appointment",
    "hm": "home",
    "hphone": "home phone",
    "wphone": "work phone",
    "mphone": "mobile phone",
    "wk": "work",
    "dur": "duration",
    "obs": "observations",
    "opd": "outpatient visit",
    "pmt": "payment",
    "pymt": "payment",
    "chg": "charge",
    "bal": "balance",
    "qty": "quantity",
    "ref": "referral",
    "emerg": "emergency",
    "tz": "time zone",
    "timezone": "time zone",
    "lang": "language",
    "dod": "date of death",
    "upd": "updated",
    "mod": "modified",
    "cre": "created",
}

# Words that only repeat what the table is about ("Patient First Name" in a patient list).
# `data.` is the prefix a flattened JSON document gives every field (CouchDB, Firestore exports).
SUBJECT_WORDS = frozenset({"patient", "client", "person", "member", "customer", "contact", "data"})


def normalise(name: str) -> str:
    """`Pt #` → `pt number`, `D.O.B.` → `dob`, `E-mail Address` → `email address`, `PatNum` → `pat num`."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    # Dotted acronyms first (D.O.B., S.S.N.), before dots become word breaks.
    text = re.sub(r"\b(?:[A-Za-z]\.){2,}", lambda m: m.group(0).replace(".", ""), text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"([A-Za-z]{2,})(\d+)$", r"\1 \2", text)  # `addr1`, `Phone2`: the word, then its number
    text = text.replace("#", " number ").replace("&", " and ")
    text = re.sub(r"\be-?mail\b", "email", text, flags=re.IGNORECASE)
    return " ".join(re.split(r"[^0-9a-zA-Z]+", text.lower())).strip()


def snake_name(name: str) -> str:
    """A column's name as the tail of a custom field name: `Home Phone #` → `home_phone_number`."""
    snake = normalise(name).replace(" ", "_")[:48] or "field"
    return f"f_{snake}" if snake[0].isdigit() else snake


# A table's column prefix (FreeMED's `pt` of `ptlname`): a share of its columns start with it, glued on.
GLUED_PREFIX_SHARE = 0.6
GLUED_PREFIX_LENGTHS = range(2, 7)
_GLUED = re.compile(r"[a-z][a-z0-9]*")


@lru_cache(maxsize=4096)
def glued_prefix(columns: tuple[str, ...]) -> str:
    """The letters most of a table's column names start with, glued to the word that follows: `pt` of
    `ptlname`, `ptdob`, `ptzip`; `cal` of `calpatient`, `calphysician`. Only single lower-case tokens count
    (a separator or a capital already splits `PAT_TELE` and `PatNum`); the longest such prefix that at least
    60 % of the columns (and three) carry, with a word of two letters or more after it; else ''."""
    glued = [c for c in columns if _GLUED.fullmatch(c)]
    needed = max(3, GLUED_PREFIX_SHARE * len(columns))
    for length in reversed(GLUED_PREFIX_LENGTHS):
        counts: dict[str, int] = {}
        for name in glued:
            if len(name) >= length + 2:
                counts[name[:length]] = counts.get(name[:length], 0) + 1
        best = max(counts.items(), key=lambda item: item[1], default=("", 0))
        if best[1] >= needed:
            return best[0]
    return ""


def bare(column: str, prefix: str) -> str:
    """`ptlname` → `lname` under the table's glued prefix `pt`; other names as they are."""
    return column[len(prefix) :] if prefix and column.startswith(prefix) and len(column) >= len(prefix) + 2 else column


def expand(normalised: str) -> str:
    return " ".join(ABBREVIATIONS.get(word, word) for word in normalised.split())


def variants(name: str) -> list[str]:
    """The spellings of a column name worth matching: as written, expanded, and without subject words."""
    plain = normalise(name)
    expanded = expand(plain)
    joined = plain.replace(" ", "")
    # `fName`, `LName` split into a lone letter: the joined spelling is the abbreviation (fname → first name).
    split = " ".join(column_words(name))
    found = [plain, expanded, joined, expand(joined), split, expand(split)]
    for form in (plain, expanded):
        stripped = " ".join(w for w in form.split() if w not in SUBJECT_WORDS)
        if stripped:
            found.append(stripped)
    return list(dict.fromkeys(v for v in found if v))


@dataclass(frozen=True)
class Concept:
    key: str
    phrases: tuple[str, ...]  # normalised, expanded forms
    value_types: frozenset[str]  # inventory types consistent with the concept
    sensitive: bool = False


def _c(key: str, phrases: str, types: str, sensitive: bool = False) -> Concept:
    return Concept(key, tuple(p.strip() for p in phrases.split(",")), frozenset(types.split()), sensitive)


# Field-level concepts. Types are the inventory's ValueType names.
CONCEPTS: tuple[Concept, ...] = (
    _c(
        "source_key",
        "id, patient id, patient number, chart number, chart, medical record number, record number, "
        "account number, pid, public id, identifier, key, external id, number, uid, uuid, guid",
        "id integer text",
    ),
    _c("first_name", "first name, given name, first, forename, given, preferred first name", "text"),
    _c("last_name", "last name, family name, last, family, name last, surname", "text"),
    _c("middle_name", "middle name, middle initial, middle", "text"),
    _c("full_name", "name, full name, display name, patient name, contact name", "text"),
    _c("date_of_birth", "date of birth, birth date, birthdate, birthday, born, birth", "date datetime"),
    _c("email", "email, email address, primary email, contact email, email id", "email"),
    _c(
        "mobile",
        "mobile, mobile phone, mobile number, cellular, mobile phone number, sms, wireless phone, wireless",
        "phone integer",
    ),
    _c(
        "phone",
        "phone, phone number, home phone, primary phone, contact number, home number, phone home, phone 1",
        "phone integer",
    ),
    _c("work_phone", "work phone, office phone, business phone, work number, phone work, phone biz", "phone integer"),
    _c(
        "address",
        "address, street, street address, address line 1, address 1, address1, mailing address, street 1, street line",
        "text",
    ),
    _c("address_2", "address line 2, address 2, address2, street 2, apartment, suite, unit", "text"),
    _c("city", "city, town, municipality, locality", "text"),
    _c("state", "state, st, province, region, state code, state province", "text"),
    _c("zipcode", "zip, zip code, postal code, zip number, pincode, pin code", "zip integer"),
    _c("country", "country, country code, nation", "text"),
    _c("county", "county, parish, borough", "text"),
    _c("job_title", "job title, occupation, title, position, job", "text"),
    _c("time_zone", "time zone", "text"),
    _c("gender", "gender, gender identity, administrative gender", "text boolean"),
    _c(
        "location",
        "location, clinic, clinic location, facility, site, office, practice, branch, clinic name, "
        "facility name, location name, service location, practice location, home clinic, primary location, "
        "practice name",
        "text id integer",
    ),
    _c(
        "created_at",
        "created at, created, date created, creation date, created date, date added, added, date entered, "
        "entered, registration date, registered, regdate, create date, created on, create time, creation time",
        "datetime date",
    ),
    _c(
        "updated_at",
        "updated at, updated, last modified, modified, date modified, last updated, changed, modified date, "
        "modified at, last update, updated on, last changed, update time",
        "datetime date",
    ),
    _c(
        "ssn",
        "social security number, social security, social, ss, ssn last 4, social insurance number",
        "text id integer phone",
        sensitive=True,
    ),
    _c(
        "member_id",
        "member id, insurance member id, member number, insurance member number, policy number, policy id, "
        "subscriber id, subscriber number, insurance id, insurance number, medicaid number, medicare number, "
        "health insurance claim number, health insurance number, health card number",
        "text id integer",
        sensitive=True,
    ),
    _c(
        "license",
        "driver license, drivers license, driver license number, drivers license number, license number, drivers, "
        "passport, passport number",
        "text id",
        sensitive=True,
    ),
    # A login name is half of a credential, not a person's name.
    _c("login", "username, user name, login, login name, user login, login id", "text id", sensitive=True),
    _c("notes", "notes, note, comment, comments, remarks, memo, description, message, body, message body", "text"),
    _c("record_name", "test name, test, plan name, procedure name, title, subject", "text"),
    _c("invoice_number", "invoice number, invoice, bill number, claim number, encounter number, invoice id", "text id"),
    _c(
        "amount_billed",
        "amount billed, billed amount, billed, charge amount, charges, total charge, fee, amount, total, total amount",
        "money decimal integer",
    ),
    _c("amount_paid", "amount paid, paid amount, paid, payment amount, amount received", "money decimal integer"),
    _c("payment_date", "payment date, paid date, date paid, paid on", "date datetime"),
    _c("service_date", "service date, date of service, dos, encounter date, bill date, invoice date", "date datetime"),
    _c("denial_status", "denial status, denied, denial, claim status, denial reason, payment status", "text boolean"),
    _c(
        "appointment_date",
        "appointment date, date, visit date, event date, scheduled date, start date, begin date, start, begin, "
        "appointment date time, start date time, date time, appointment datetime, start datetime, occurred at, "
        "sent at, date sent, sent on, call date, call time, contact date, planned date, encounter date, "
        "consultation date",
        "date datetime",
    ),
    _c(
        "due_date",
        "due date, date due, due, due on, payment due date, deadline, recall date, follow up date",
        "date datetime",
    ),
    _c("start_time", "start time, time, appointment time, from time, begin time, event time", "time"),
    _c("duration", "duration, duration minutes, length, minutes, duration in minutes, length minutes", "integer"),
    _c("activity_type", "appointment type, visit type, type, category, event type, reason, visit reason", "text"),
    _c("status", "status, appointment status, visit status, state code", "text"),
    _c(
        "channel",
        "channel, communication type, comm type, contact method, method, medium, mode, via, message type, kind",
        "text",
    ),
    _c("direction", "direction, inbound outbound, in out, incoming outgoing, call direction", "text"),
    _c("file_path", "file path, path, file location, storage path, url, document path", "text"),
    _c("file_name", "file name, filename, document name, original name", "text"),
    _c("mime_type", "mime type, content type, mime, file type, media type", "text"),
    _c("file_size", "size bytes, file size, size, bytes, length bytes", "integer"),
    _c("checksum", "sha256, checksum, hash, sha 256, digest, md5", "text id"),
    _c(
        "result_value", "result value, value, result, observation value, numeric result, result numeric", "text decimal"
    ),
    _c("all_day", "all day, all day event, allday, all day appointment, is all day", "boolean integer"),
    _c(
        "recorded_by",
        "created by, updated by, modified by, entered by, changed by, creator, last update user, last updated by, "
        "last modified by, voided by, retired by, deleted by, entered user, void reason, date voided, retire reason, "
        "date retired, deleted at, date deleted, deletion reason, update user, update user id, update uid, "
        "create user, create uid",
        "id integer text email",
    ),
    # When the row was written on the device that synced it (offline-first apps): the sync's, not the clinic's.
    _c("device_stamp", "device created at, device updated at, device created, device updated", "datetime date"),
    _c("deleted_flag", "deleted, is deleted, deleted flag, void, voided, removed, archived", "boolean integer text"),
    # A row's revision or lock counter (CouchDB's `_rev`, OSCAR's `ver`, Open Hospital's `*_LOCK`): the source's
    # concurrency bookkeeping, meaningless in a CRM.
    _c(
        "row_version",
        "rev, revision, ver, version, row version, record version, lock, lock version, concurrency stamp, etag, "
        "sync tick, sync counter, pk audit, audit id",
        "integer text id",
    ),
    _c("website", "website, web site, url, web, homepage", "text"),
)
CONCEPT_BY_KEY = {c.key: c for c in CONCEPTS}


@dataclass(frozen=True)
class TableConcept:
    target: str
    phrases: tuple[str, ...]
    signals: frozenset[str]  # field concepts whose presence says "this table is one of these"


def _t(target: str, phrases: str, signals: str) -> TableConcept:
    return TableConcept(target, tuple(p.strip() for p in phrases.split(",")), frozenset(signals.split()))


# Table-level vocabulary: what a table holding each Freshsales target is called.
TABLE_CONCEPTS: tuple[TableConcept, ...] = (
    _t(
        "contact",
        "patient, patients, patient data, patient list, patient demographics, demographics, person, people, "
        "client, clients, member, members, chart, identity, identities, referring physician, referring physicians, "
        "referring provider, referring providers, referring doctor, referring doctors, referrer, referrers, "
        "referral source, referral sources",
        "first_name last_name date_of_birth email mobile phone gender",
    ),
    _t(
        "sales_account",
        "location, locations, clinic, clinics, facility, facilities, site, sites, office, offices, practice, "
        "branch, ward, wards, organization, organisation, payer, payers, insurance company, insurance companies, "
        "carrier, carriers, insurance carrier, insurance carriers, insurer, insurers, "
        "payer list, pharmacy",
        "full_name address city zipcode website phone",
    ),
    _t(
        "appointment",
        "appointment, appointments, visit, visits, encounter, encounters, calendar, event, events, schedule, "
        "booking, bookings, calendar event, calendar events, outpatient, outpatient visit, outpatient visits, "
        "admission, admissions, planning, agenda, consultation, consultations, evaluation, evaluations",
        "",
    ),
    _t(
        "deal",
        "billing, billing encounter, billing encounters, bill, invoice, invoices, charge, charges, payment, "
        "payments, claim, claims, ledger, procedure, procedures",
        "",
    ),
    _t(
        "sales_activity",
        "communication, communications, communication log, call, calls, call log, phone call, phone calls, "
        "phone log, message, messages, message log, correspondence, contact log, sms, sms log, text messages, "
        "email log, sent emails, outreach, patient communication, patient communications, interactions",
        "channel direction",
    ),
    _t("task", "task, tasks, reminder, reminders, follow up, recall, recalls, to do, todo, tickler, ticklers", ""),
    _t("note", "note, notes, progress note, clinical note, comment, comments, narrative, narratives", ""),
    _t("file", "document, documents, file, files, attachment, attachments, scan, scans, image, images", ""),
    _t(
        "user",
        "provider, providers, user, users, staff, doctor, doctors, physician, employee, practitioner, practitioners, "
        "health professional, health professionals, healthprofessional, clinician, clinicians",
        "",
    ),
    _t("custom_module:insurance_plan", "insurance, insurance data, coverage, policy, policies, insurance plan", ""),
    _t("custom_module:treatment_plan", "treatment plan, treatment plans, care plan, care plans, plan of care", ""),
    _t(
        "custom_module:clinical_list",
        "problem list, problems, problem, allergy, allergies, medication, medications, medication list, drugs, "
        "prescription, prescriptions, diagnosis, diagnoses, condition, conditions, disease, diseases, "
        "immunization, immunizations, lists, medical history, patient disease, patient medication, vaccine, vaccines, "
        "vaccination, vaccinations, patient vaccine, procedure, procedures, health issue, health issues, issue, issues",
        "",
    ),
    _t(
        "custom_module:lab_result",
        "lab, labs, lab result, lab results, result, results, observation, observations, measurement, measurements, "
        "laboratory, laboratories, lab exam, lab exams, lab analysis, lab analyses, analyses, "
        "vital, vitals, vital signs",
        "",
    ),
)

# Table-name words of a clinical act that is billed line by line in practice software (Open Dental's
# `procedurelog`): with a charge column the table is billing lines, without one a clinical history.
BILLED_ACT_WORDS = frozenset({"procedure", "procedures"})

# Table-name words too generic to decide a table alone when another word of its name names a kind of record
# (`call results`, `email events`, `mailing lists`).
GENERIC_TABLE_WORDS = frozenset({"result", "results", "event", "events", "lists"})

# Words of a referencing column that say it names the patient (`patient_id`, `PatNum`, `client`): the table
# several such columns point at is the patients' table, whatever it is called.
PATIENT_REFERENCE_WORDS = frozenset({"patient", "pat", "pid", "client", "person", "member"})
# Words of a table name that say it holds people (GNUmed's `dem.identity`): a patient-role column points into it.
PEOPLE_TABLE_WORDS = frozenset({"patient", "person", "people", "client", "member", "identity", "demographic"})
# Field concepts only a person has: a table with one is no organization, whatever else it holds.
PERSON_ONLY_SIGNALS = frozenset({"date_of_birth", "gender"})

# Tables whose logic an admin rebuilds in Freshsales (design.md): word → why it is not migrated.
REBUILD_TABLE_WORDS: dict[str, str] = {
    "workflow": "workflow/automation rules are not migrated: exported as a rebuild reference",
    "automation": "workflow/automation rules are not migrated: exported as a rebuild reference",
    "rule": "workflow/automation rules are not migrated: exported as a rebuild reference",
    "rules": "workflow/automation rules are not migrated: exported as a rebuild reference",
    "report": "report/dashboard definitions are not migrated: listed for the rebuild, the data underneath migrates",
    "reports": "report/dashboard definitions are not migrated: listed for the rebuild, the data underneath migrates",
    "dashboard": "report/dashboard definitions are not migrated: listed for the rebuild, the data underneath migrates",
    "definitions": "definitions of the source software's own fields/screens: they shape the plan, not records",
}

# Tables that belong to the software itself, not to the clinic's records: its logs and settings, and the
# stock reference rows it ships (menus, templates, list options, categories, code tables).
SYSTEM_TABLE_WORDS = frozenset(
    {
        "menu",
        "menus",
        "template",
        "templates",
        "option",
        "options",
        "categories",
        "type",
        "types",
        "role",
        "roles",
        "code",
        "codes",
        "lookup",
        "lookups",
        "definition",
        "translation",
        "translations",
        "label",
        "labels",
        "lang",
        "background",
        "registry",
        "secure",
        "log",
        "logs",
        "audit",
        "config",
        "configuration",
        "setting",
        "settings",
        "session",
        "sessions",
        "sequence",
        "sequences",
        "migration",
        "migrations",
        "cache",
        "lock",
        "locks",
        "tmp",
        "temp",
        "globals",
        "version",
    }
)


# Words of a column name that mark a secret: never migrated, whatever the plan says, unless a person marks
# the line `allow_secret: true`. Value shapes (password hashes, tokens) are the inventory's `secret_shape`.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "salt",
        "token",
        "secret",
        "apikey",
        "pin",
        "otp",
        "totp",
        "mfa",
        "2fa",
        "credential",
        "credentials",
        "passcode",
        "pass",
        "creditcard",
        "cvv",
    }
)
HASH_WORDS = frozenset({"hash", "hashed", "digest"})
# Two-word secrets: api key, private key, security answer, payment card data (PCI: never in a CRM)...
SECRET_PHRASES = (
    "credit card",
    "card number",
    "registration key",
    "registration code",
    "activation key",
    "reset key",
    "service key",
    "signing key",
    "api key",
    "private key",
    "security answer",
    "secret answer",
    "auth key",
    "access key",
    "derived key",
)

# Staff references: the clinician who attends or renders the service owns the record; the clerk who typed
# it does not. Words of the referencing column, best owner first.
OWNER_ROLE_WORDS = (
    "provider",
    "doctor",
    "physician",
    "practitioner",
    "clinician",
    "attending",
    "rendering",
    "healthprof",
    "dentist",
    "therapist",
    "prescriber",
    "prescribing",
    "prescribed",
    "ordering",
    "ordered",
    "requested",
    "requesting",
    "performed",
    "performing",
    "examiner",
    "surgeon",
    "nurse",
    "owner",
    "assigned",
    "staff",
    "prov",
    "dr",
)
# Words of a table name that say it holds staff: a staff-role column (provider, doctor...) points into it.
STAFF_TABLE_WORDS = frozenset(
    {
        "provider",
        "providers",
        "user",
        "users",
        "staff",
        "doctor",
        "doctors",
        "physician",
        "physicians",
        "employee",
        "employees",
        "practitioner",
        "practitioners",
        "healthprofessional",
        "healthprof",
        "clinician",
        "clinicians",
        "userod",
    }
)
# ...unless the table holds people outside the clinic (referring physicians are contacts, not staff).
EXTERNAL_PEOPLE_WORDS = frozenset({"referring", "referral", "referrer", "referrers", "specialist", "specialists"})
# Of two links to the same kind of record, the one naming the present wins (`assigned_facility_id` over
# `registration_facility_id`): a contact holds one account, the clinic it belongs to now.
CURRENT_LINK_WORDS = frozenset({"assigned", "primary", "current", "default", "home", "preferred", "usual"})
PAST_LINK_WORDS = frozenset({"registration", "registered", "original", "first", "previous", "former", "creation"})
# ...but a staff role qualified by a later act on the record (`discontinuing_clinician_id`, `voided_by`) names
# who ended or checked it, not who owns it.
LATER_ACT_WORDS = frozenset(
    {
        "discontinuing", "discontinued", "cancelling", "cancelled", "canceled", "voiding", "voided", "approving",
        "approved", "reviewing", "reviewed", "verifying", "verified", "closing", "closed", "completing", "deleting",
        "signing", "signed",
    }
)  # fmt: skip
CLERK_ROLE_WORDS = frozenset(
    {"user", "clerk", "entered", "enteredby", "created", "creator", "author", "modified", "updated", "by", "operator"}
)

# When a row was deleted, voided or archived (Tamanu's `deleted_at`, OpenMRS's `date_voided`): a row with one
# is soft-deleted, skipped with that reason like a deleted flag's.
DELETED_AT_NAMES = frozenset(
    {
        "deleted at",
        "deleted on",
        "deleted date",
        "date deleted",
        "deletion date",
        "deleted time",
        "voided at",
        "voided on",
        "date voided",
        "void date",
        "archived at",
        "archived on",
        "date archived",
    }
)

# Words of a billing line's column that name the encounter it belongs to: one deal per value.
ENCOUNTER_WORDS = frozenset({"encounter", "visit", "claim", "invoice", "appointment"})
# Values of an active flag that mean off (a voided billing line).
INACTIVE_VALUES = ("0", "n", "no", "false", "f")

# A payer column (`payer_id`, `carrier`, `InsuranceCompany`) points into the table of payers by its role.
PAYER_ROLE_WORDS = frozenset({"payer", "payor", "carrier", "insurer", "insco"})
PAYER_TABLE_WORDS = frozenset({"insurance", "payer", "payers", "payor", "payors", "carrier", "carriers", "insurer"})


def says(value: str, phrases: tuple[str, ...]) -> bool:
    """Whether a status value says one of `phrases`: the whole value, one of its words, or a phrase within."""
    text = normalise(value)
    words = set(text.split())
    return any(text == p or (" " not in p and p in words) or (" " in p and p in text) for p in phrases)


# A visit's status values → the Freshsales outcome (the default outcomes of an account: freshsales_api.md's
# sales_activity_outcomes); matched on the normalised value's words.
OUTCOME_VALUES: dict[str, tuple[str, ...]] = {
    "Completed": (
        "completed",
        "complete",
        "done",
        "attended",
        "arrived",
        "checked out",
        "seen",
        "fulfilled",
        "kept",
        "visited",
    ),
    "No show": ("no show", "noshow", "missed", "did not attend", "dna", "broken", "failed"),
}
# Words of a list table's column that says what a code means (OpenEMR's list_options.title), best first.
LABEL_COLUMN_WORDS = ("title", "label", "description", "meaning", "display", "name", "text")
# Status values of a visit that did not happen and that the plan skips by default (a plan choice).
CANCELLED_VALUES = ("cancelled", "canceled", "cancel", "canceled by patient", "cancelled by clinic")

# Last words of a column name that make it an identifier (a number), never a name.
IDENTIFIER_WORDS = frozenset({"number", "id", "no", "num", "nbr", "code", "identifier"})
# Words ending like an identifier (`-id`) that are not one: a key named so is no `personid`, `objectid`.
NOT_IDENTIFIER_ID_WORDS = frozenset(
    {"paid", "void", "valid", "invalid", "covid", "fluid", "acid", "lipid", "thyroid", "steroid", "opioid", "rapid",
     "solid", "hybrid", "said", "avoid"}
)  # fmt: skip

# Words of a contact table's name that say it holds referring physicians (tagged Referrer, their practices
# given a territory by a plan rule), not patients.
REFERRER_TABLE_WORDS = frozenset({"referring", "referrer", "referrers", "referral", "referrals"})
REFERRER_TAG = "Referrer"

# A column flagging test or demo charts (`is_test`, `TestPatient`, `demo`): normalised names.
TEST_FLAG_NAMES = frozenset(
    {"test", "is test", "test patient", "test flag", "is test patient", "demo", "is demo", "test data"}
)
# Values of such a flag that mean yes.
ACTIVE_VALUES = ("1", "y", "yes", "true", "t")
# A column marking a chart the source merged into another (a flag, or the survivor's id): normalised names.
# A word that marks a column as the superseded copy of another (`date_of_birth_legacy` beside `date_of_birth`).
# Words naming a clinical measurement: its numbers say something in a note (`systolic: 142`), unlike codes.
MEASUREMENT_WORDS = frozenset(
    {
        "systolic", "diastolic", "pulse", "temperature", "temp", "weight", "height", "bmi", "glucose", "sugar",
        "spo2", "saturation", "respiration", "resp", "rate", "bp", "pressure", "cholesterol", "hba1c", "reading",
        "dose", "dosage", "quantity", "refills", "strength",
    }
)  # fmt: skip
# A copy in another type (`diabetes_boolean` beside the `diabetes` that replaced it) is one too.
SUPERSEDED_WORDS = frozenset({"legacy", "old", "deprecated", "obsolete", "boolean", "bool"})

MERGED_FLAG_NAMES = frozenset(
    {"merged", "is merged", "merged flag", "duplicate", "is duplicate", "merged into", "merged to", "merged with",
     "duplicate of", "merged into id", "merged to id", "merged patient id", "merged into patient id"}
)  # fmt: skip

# A patient's status values → (lifecycle stage, contact status) of the account, matched on the normalised
# value's words. The names are what an admin sets up for a clinic (freshsales_api.md: contact_statuses belong
# to a lifecycle stage); the schema check refuses, before any record moves, a name the account lacks.
PATIENT_STATUS_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("Lead", "New"): ("new", "prospective", "prospect", "pending", "registered", "referred", "waitlist", "lead"),
    ("Customer", "Active patient"): ("active", "current", "established", "existing", "enrolled"),
    ("Customer", "Inactive patient"): (
        "inactive", "discharged", "archived", "former", "dormant", "moved", "transferred", "deceased", "expired",
        "died", "dead", "closed",
    ),
}  # fmt: skip
# A bill's or claim's status values → the deal stage, matched on the normalised value's words; the stage's
# forecast type (won, lost, open) is the account's.
CLAIM_STATUS_VALUES: dict[str, tuple[str, ...]] = {
    "Partially paid": ("partially paid", "partial", "part paid", "partial payment", "underpaid", "short paid"),
    "Written off": ("written off", "write off", "writeoff", "bad debt", "adjusted off", "uncollectible"),
    "Paid": ("paid", "paid in full", "settled", "closed paid"),
    "Denied": ("denied", "rejected", "declined", "refused"),
    "Appealed": ("appealed", "appeal", "in appeal", "resubmitted"),
    "Submitted": ("submitted", "sent", "filed", "pending payer", "in process", "processing", "claimed"),
    "Billed": ("billed", "open", "unpaid", "outstanding", "due", "invoiced", "new", "created", "ready"),
}

# A country's currency (ISO 3166 → ISO 4217), for exports whose amounts carry no sign; and which currency a
# sign names (the dollar sign: the country's own dollar, or the US dollar).
CURRENCY_OF_COUNTRY = {
    "US": "USD", "CA": "CAD", "GB": "GBP", "IE": "EUR", "AU": "AUD", "NZ": "NZD", "ZA": "ZAR", "IN": "INR",
    "DE": "EUR", "FR": "EUR", "ES": "EUR", "IT": "EUR", "NL": "EUR", "BE": "EUR", "AT": "EUR", "PT": "EUR",
    "MX": "MXN", "BR": "BRL", "SG": "SGD", "JP": "JPY",
}  # fmt: skip
CURRENCY_OF_SIGN = {"£": "GBP", "€": "EUR", "₹": "INR", "¥": "JPY", "R": "ZAR"}
DOLLAR_COUNTRIES = frozenset({"US", "CA", "AU", "NZ", "SG", "MX"})

# Communication logs (calls, emails, SMS, letters): words of their table names, and which words in a log's
# name keep it from being taken for the software's own log.
COMMUNICATION_TABLE_WORDS = frozenset(
    {"call", "calls", "phone", "sms", "text", "email", "emails", "letter", "letters", "correspondence", "message",
     "messages", "communication", "communications", "comm", "comms", "outreach", "contact"}
)  # fmt: skip
# A communication's kind, as its channel column writes it → the Freshsales sales activity type it is (the
# account's default types: Call, Email, SMS, Chat), or None: no default type, the plan sends it as a note.
COMMUNICATION_KINDS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "call": ("Call", ("call", "phone", "phone call", "telephone", "tel", "voice", "voicemail", "inbound call",
                      "outbound call", "phonecall")),
    "email": ("Email", ("email", "e mail", "emails", "electronic mail")),
    "sms": ("SMS", ("sms", "text", "text message", "txt", "mms", "texting")),
    "chat": ("Chat", ("chat", "live chat", "whatsapp")),
    "letter": (None, ("letter", "post", "postal", "mail", "fax", "postcard")),
    "portal": (None, ("portal", "portal message", "secure message", "patient portal", "message")),
}  # fmt: skip
# A call's outcome values → the account's default call outcomes; answered calls have none to say.
CALL_OUTCOME_VALUES: dict[str, tuple[str, ...]] = {
    "Left voicemail": ("left voicemail", "voicemail", "left message", "vm", "message left"),
    "No response": ("no answer", "no response", "not answered", "unanswered", "busy", "unreachable", "missed"),
    "Wrong number": ("wrong number", "invalid number", "disconnected", "number not in service"),
}

# Words a table's name glues together (`procedurelog`, `insplan`, `procrec`) that are not vocabulary above:
# a piece → the word it stands for. Only table names are read this way; a column's glued prefix is `bare`'s.
TABLE_NAME_PIECES: dict[str, str] = {
    "rec": "record",
    "record": "record",
    "records": "records",
    "sub": "subscriber",
    "pay": "payment",
    "treat": "treatment",
    "procedure": "procedure",
    "procedures": "procedures",
    "security": "security",
    "requested": "requested",
    "item": "item",
    "items": "items",
    "line": "line",
    "lines": "lines",
    "entry": "entry",
    "detail": "detail",
    "details": "details",
    "history": "history",
    "list": "list",
    "code": "code",
}
# Words a column's name glues together beyond the field vocabulary's own (`OC_ENCOUNTER_UPDATETIME`,
# `PLANNEDEND`, `resultvalue`).
COLUMN_NAME_PIECES = frozenset(
    {"update", "create", "creation", "planned", "end", "object", "request", "requested", "storage", "userid", "uid"}
)
# Abbreviations that mean something else in a table's name than in a column's: a `doc` table holds documents,
# a `doc` column names the doctor.
TABLE_ABBREVIATIONS = {"doc": "document", "docs": "documents", "org": "organization", "orgs": "organizations"}
# The shortest piece a glued table name is split into: two letters split too much (`pt` in `ptrecall`
# is better read as a whole by the column prefix).
MIN_TABLE_PIECE = 3


@lru_cache(maxsize=1)
def _table_pieces() -> frozenset[str]:
    words = {w for c in TABLE_CONCEPTS for p in c.phrases for w in p.split()}
    words |= SYSTEM_TABLE_WORDS | set(REBUILD_TABLE_WORDS) | STAFF_TABLE_WORDS | PAYER_TABLE_WORDS
    words |= set(TABLE_NAME_PIECES) | set(TABLE_ABBREVIATIONS) | {a for a in ABBREVIATIONS if len(a) >= MIN_TABLE_PIECE}
    return frozenset(w for w in words if len(w) >= MIN_TABLE_PIECE)


@lru_cache(maxsize=1)
def _column_pieces() -> frozenset[str]:
    words = {w for c in CONCEPTS for p in c.phrases for w in p.split()} | set(COLUMN_NAME_PIECES)
    words |= {a for a in ABBREVIATIONS if len(a) >= MIN_TABLE_PIECE}
    return frozenset(w for w in words if len(w) >= MIN_TABLE_PIECE)


def _glued_pieces(word: str) -> tuple[str, ...]:
    return tuple(TABLE_NAME_PIECES.get(p, p) for p in _split_glued(word, _table_pieces()))


@lru_cache(maxsize=8192)
def _split_glued(word: str, pieces: frozenset[str]) -> tuple[str, ...]:
    """`procedurelog` → (procedure, log); a word the vocabulary knows whole, or cannot cover in two or three
    known pieces, stays as it is. Of several splits, the fewest pieces, then the longest shortest piece."""
    if word in pieces or len(word) < 2 * MIN_TABLE_PIECE:
        return (word,)
    splits = []
    for i in range(MIN_TABLE_PIECE, len(word) - MIN_TABLE_PIECE + 1):
        head, tail = word[:i], word[i:]
        if head not in pieces:
            continue
        if tail in pieces:
            splits.append((head, tail))
        for j in range(MIN_TABLE_PIECE, len(tail) - MIN_TABLE_PIECE + 1):
            if tail[:j] in pieces and tail[j:] in pieces:
                splits.append((head, tail[:j], tail[j:]))
    if not splits:
        return (word,)
    return min(splits, key=lambda s: (len(s), -min(map(len, s))))


def column_words(name: str) -> list[str]:
    """A column name's words, glued ones split (`updatetime` → update time, `PATIENTUID` → patient uid)."""
    return [piece for word in normalise(name).split() for piece in _column_word_pieces(word)]


def _column_word_pieces(word: str) -> tuple[str, ...]:
    pieces = _split_glued(word, _column_pieces())
    if len(pieces) == 1 and word.endswith("id") and len(word) > 2 + MIN_TABLE_PIECE:
        head = _split_glued(word[:-2], _column_pieces())  # `updateuserid`: too short a piece for the splitter
        if len(head) > 1 or head[0] in _column_pieces():
            return (*head, "id")
    return pieces


def table_words(name: str) -> list[str]:
    """A table name's words, glued ones split (`procedurelog` → procedure log, `insplan` → ins plan), and a
    table's own abbreviations spelled out (`doc_med`: medical documents)."""
    words = [piece for word in normalise(name).split() for piece in _glued_pieces(word)]
    return [TABLE_ABBREVIATIONS.get(word, word) for word in words]
