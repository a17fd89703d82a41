"""How messy a generated clinic is: every kind of dirt real exports carry, at a configurable rate.

Rates are fractions of the rows of the table they apply to (0.06 = 6 %). The defaults follow what
clinic exports typically show (docs: clinic_sources.md, "Data quality to expect").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _rate(default: float, description: str) -> float:
    return Field(default=default, ge=0.0, le=1.0, description=description)


class MessRates(BaseModel):
    """Fractions of rows that carry each kind of mess. All default to realistic values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duplicate_patients: float = _rate(
        0.06,
        "patients rows that are a second registration of an earlier patient: new chart number, same email, "
        "and either the same name and birth date, a nickname (Bob/Robert) or day and month swapped",
    )
    missing_email: float = _rate(0.20, "patients without an email (empty)")
    shared_family_email: float = _rate(
        0.05, "patients in a family of 2-4 sharing the guarantor's email, phone, address and last name"
    )
    placeholder_email: float = _rate(0.02, "patients whose email is a placeholder: none@none.com, N/A, declined")
    malformed_email: float = _rate(0.02, "patients whose email is malformed: no top-level domain or a doubled @")
    invalid_phone: float = _rate(
        0.03, "patients whose phone is invalid: 000-000-0000, N/A, 7 digits, Excel's 5.55E+09, an x204 extension"
    )
    mixed_phone_format: float = _rate(
        0.30, "patients whose phone uses another format: 555.123.4567, (555) 123-4567, +1 555 123 4567"
    )
    zero_date_of_birth: float = _rate(0.005, "patients with date_of_birth 0000-00-00")
    sentinel_date_of_birth: float = _rate(0.005, "patients with the sentinel date_of_birth 1900-01-01")
    us_date_of_birth: float = _rate(0.03, "patients whose date_of_birth is MM/DD/YYYY instead of the manifest's format")
    trailing_whitespace: float = _rate(0.03, "patients whose first or last name ends with spaces")
    non_ascii_names: float = _rate(0.08, "patients and subscribers named José, Zoë, O'Brien, Nguyễn, Müller …")
    soft_deleted: float = _rate(0.02, "patients and appointments flagged deleted=1")
    orphan_foreign_keys: float = _rate(
        0.005, "appointments and billing_encounters whose patient_id points at no patients row"
    )
    messy_money: float = _rate(0.02, "billing_encounters whose amount_billed is written $1,234.50")
    icd10_prefix: float = _rate(0.05, "billing_encounters whose icd10_code carries an ICD10: prefix")
    messy_lab_values: float = _rate(0.05, "structured lab_results whose value is <0.5, >1000, Negative, 5.2 H or TNTC")
    unstructured_labs: float = _rate(
        0.15, "lab_results that are a free-text report: empty result_value, long report_text"
    )
    dst_gap_appointments: float = _rate(
        0.002, "appointments booked inside the clinic zone's spring-forward gap (02:00-02:59 local)"
    )
    provider_missing_email: float = _rate(0.15, "providers without an email")
    inactive_providers: float = _rate(0.10, "providers with active=N")
    referred_patients: float = _rate(0.30, "patients with a referring_physician_id")
    marked_merged: float = _rate(
        0.4, "duplicate registrations the clinic already merged: merged_into names the chart that survives"
    )
    test_patients: float = _rate(
        0.005, "patients that are test or demo charts (Test ZZZTEST, Demo Zztest); at least one in a clinic of 50"
    )

    @model_validator(mode="after")
    def _email_kinds_fit(self) -> MessRates:
        # The email kinds replace one another, so together they cannot exceed every row.
        if self.missing_email + self.placeholder_email + self.malformed_email + self.shared_family_email > 1.0:
            raise ValueError("missing, placeholder, malformed and shared family email rates add up to more than 1")
        if self.zero_date_of_birth + self.sentinel_date_of_birth + self.us_date_of_birth > 1.0:
            raise ValueError("date_of_birth mess rates add up to more than 1")
        return self
