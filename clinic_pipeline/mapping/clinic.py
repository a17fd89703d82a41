"""The plan's clinic settings (country, time zone, currency), proposed from evidence in the export.

- Country: the country of the time zone the export's manifest states; without one, where the export's phone
  numbers are valid when read without a country code (the inventory's `phone_countries`, weighted by each
  column's filled rows). Where the two disagree, the assumption says so for a person to check.
- Time zone: the export manifest's (said to be assumed when the manifest has none).
- Currency: the sign the amounts carry (£, €; a $ is the country's own dollar), else the country's.
Each is said in the plan's assumptions, with its evidence, and a person can change it under `clinic:`.
"""

from __future__ import annotations

from collections import Counter

from clinic_pipeline.mapping.plan import ClinicSettings
from clinic_pipeline.mapping.synonyms import CURRENCY_OF_COUNTRY, CURRENCY_OF_SIGN, DOLLAR_COUNTRIES
from clinic_pipeline.model.transforms import DEFAULT_COUNTRY
from clinic_pipeline.source.inventory import SchemaInventory
from clinic_pipeline.source.locale_evidence import zone_country

# Below this share of valid numbers the phones say little (made-up 555 numbers, extensions, mess).
MIN_VALID_SHARE = 0.5


def propose_clinic(inventory: SchemaInventory) -> tuple[ClinicSettings, list[str]]:
    """(settings, the assumptions they rest on, in words)."""
    country, country_said = _country(inventory)
    currency, currency_said = _currency(inventory, country)
    zone_said = (
        f"time zone {inventory.time_zone}: from the export's manifest; every local date-time is read in it"
        if not inventory.time_zone_assumed
        else f"time zone {inventory.time_zone}: assumed (the export does not say); every local date-time is read in "
        "it: set clinic.time_zone in the plan, or the export's manifest.json"
    )
    settings = ClinicSettings(country=country, time_zone=inventory.time_zone, currency=currency)
    return settings, [country_said, zone_said, currency_said]


def _country(inventory: SchemaInventory) -> tuple[str, str]:
    """A time zone the manifest states names the country; the phone numbers decide where it does not (no
    manifest, or UTC), and are said beside it when they disagree, for a person to check."""
    own = None if inventory.time_zone_assumed else zone_country(inventory.time_zone)
    weights: Counter[str] = Counter()
    numbers = 0
    for table in inventory.tables:
        for column in table.columns:
            if column.phone_countries:
                filled = table.row_count - column.null_count
                numbers += filled
                weights.update({c: share * filled for c, share in column.phone_countries.items()})
    best = max(sorted(weights), key=lambda c: weights[c]) if weights else None
    shares = ", ".join(f"{c} {weights[c] / numbers:.0%}" for c in sorted(weights, key=lambda c: -weights[c])[:3])
    evidence = f"phone numbers valid when read there: {shares} of {numbers} numbers" if weights else "no phone numbers"
    if own:
        check = f"; check: the numbers look like {best}'s" if best and best != own else ""
        return own, f"clinic country {own}: the time zone's ({evidence}){check}; clinic.country in the plan"
    if best and weights[best] >= MIN_VALID_SHARE * numbers:
        return best, (
            f"clinic country {best}: {evidence}; numbers without a country code are read as its (clinic.country)"
        )
    return DEFAULT_COUNTRY, f"clinic country {DEFAULT_COUNTRY}: assumed ({evidence}); set clinic.country in the plan"


def _currency(inventory: SchemaInventory, country: str) -> tuple[str | None, str]:
    signs: Counter[str] = Counter()
    for table in inventory.tables:
        for column in table.columns:
            signs.update(column.currency_signs)
    if signs:
        sign = signs.most_common(1)[0][0]
        dollar = CURRENCY_OF_COUNTRY.get(country, "USD") if country in DOLLAR_COUNTRIES else "USD"
        currency = dollar if sign == "$" else CURRENCY_OF_SIGN.get(sign)
        if currency:
            return currency, f"currency {currency}: the amounts carry {sign}; every deal gets it (clinic.currency)"
    currency = CURRENCY_OF_COUNTRY.get(country)
    if currency:
        return currency, f"currency {currency}: the clinic country's (no sign on the amounts); every deal gets it"
    return None, "currency: the Freshsales account's default (the export names none, nor its country)"
