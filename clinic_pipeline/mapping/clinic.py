"""The plan's clinic settings (country, time zone, currency), proposed from evidence in the export.

- Country: the country of the time zone the export's manifest states; without one, where the export's phone
  numbers are valid when read without a country code (the inventory's `phone_countries`, weighted by each
  column's filled rows). Where the two disagree, the assumption says so for a person to check.
- Time zone: the export manifest's; without one, the clinic country's one zone whose UTC offsets cover the
  offsets the export's date-times are written with; else assumed, and said so.
- Currency: the sign the amounts carry (£, €; a $ is the country's own dollar), else the country's.
Each is said in the plan's assumptions, with its evidence, and a person can change it under `clinic:`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from clinic_pipeline.mapping.plan import ClinicSettings
from clinic_pipeline.mapping.synonyms import CURRENCY_OF_COUNTRY, CURRENCY_OF_SIGN, DOLLAR_COUNTRIES
from clinic_pipeline.model.transforms import DEFAULT_COUNTRY
from clinic_pipeline.source.inventory import SchemaInventory
from clinic_pipeline.source.locale_evidence import zone_country, zones_of

# Below this share of valid numbers the phones say little (made-up 555 numbers, extensions, mess).
MIN_VALID_SHARE = 0.5
# The year whose January and July offsets stand for a zone's (today's rules; old offsets are history).
OFFSET_YEAR = 2025


def propose_clinic(inventory: SchemaInventory) -> tuple[ClinicSettings, list[str]]:
    """(settings, the assumptions they rest on, in words)."""
    country, country_said = _country(inventory)
    currency, currency_said = _currency(inventory, country)
    zone, zone_said = _time_zone(inventory, country)
    settings = ClinicSettings(country=country, time_zone=zone, currency=currency)
    return settings, [country_said, zone_said, currency_said]


def _time_zone(inventory: SchemaInventory, country: str) -> tuple[str, str]:
    """The manifest's zone; else the one zone of the clinic's country whose UTC offsets (in January and July)
    cover every non-zero offset the export's date-times are written with (`+05:30` in India: Asia/Kolkata);
    else the assumed one, said so. Offsets of zero say nothing: many systems write every instant in UTC."""
    if not inventory.time_zone_assumed:
        return inventory.time_zone, (
            f"time zone {inventory.time_zone}: from the export's manifest; every local date-time is read in it"
        )
    offsets: Counter[str] = Counter()
    for table in inventory.tables:
        for column in table.columns:
            offsets.update(column.utc_offsets)
    seen = {o for o in offsets if o not in ("+00:00", "-00:00")}
    fitting = [z for z in zones_of(country) if seen and seen <= _offsets_of(z)]
    written = ", ".join(f"{o} on {offsets[o]:,} values" for o in sorted(seen))
    if len(fitting) == 1:
        return fitting[0], (
            f"time zone {fitting[0]}: the export's date-times are written with {written}, and it is {country}'s "
            "only zone with that offset; every local date-time is read in it (clinic.time_zone in the plan)"
        )
    hint = f" (its date-times are written with {written}: one of {', '.join(fitting[:4])}?)" if fitting else ""
    return inventory.time_zone, (
        f"time zone {inventory.time_zone}: assumed (the export does not say){hint}; every local date-time is read "
        "in it: set clinic.time_zone in the plan, or the export's manifest.json"
    )


def _offsets_of(zone: str) -> set[str]:
    """The zone's UTC offsets in January and July of a recent year, as `+05:30`."""
    found = set()
    for month in (1, 7):
        delta = datetime(OFFSET_YEAR, month, 15, 12, tzinfo=ZoneInfo(zone)).utcoffset()
        minutes = int(delta.total_seconds() // 60) if delta is not None else 0
        sign = "-" if minutes < 0 else "+"
        found.add(f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
    return found


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
    # A tie (a 10-digit number is valid in the US and in India) goes to the default country; the shares say so.
    best = max(sorted(weights), key=lambda c: (weights[c], c == DEFAULT_COUNTRY)) if weights else None
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
