"""Evidence in an export of the clinic's country: which countries its phone numbers are valid in, and the
currency signs its amounts carry. The proposer weighs it into the plan's clinic settings.

A number written without its country code (`020 7946 0958`, `(217) 555-0134`) is a valid number of one
country and, nearly always, not of the others: area codes and number lengths differ. The countries tried
are the export's own (its time zone's) and those the tool's clinics are usually in.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

import phonenumbers

# Where clinics migrating with this tool usually are; the export's time zone adds its own country.
USUAL_COUNTRIES = ("US", "CA", "GB", "IE", "AU", "NZ", "ZA", "IN")
# Distinct numbers of a column tried: enough to tell countries apart, few enough to stay cheap.
SAMPLE_NUMBERS = 300
CURRENCY_SIGNS = ("$", "£", "€", "¥", "₹", "R")


@cache
def _zone_countries() -> dict[str, str]:
    """IANA zone → ISO 3166 code, from tzdata's zone.tab (the zone's principal country)."""
    table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    found = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            code, _coordinates, zone, *_ = line.split("\t")
            found[zone] = code
    return found


def zone_country(zone: str) -> str | None:
    """`Europe/London` → GB; None for zones of no one country (UTC)."""
    return _zone_countries().get(zone)


def zones_of(country: str) -> list[str]:
    """The IANA zones whose principal country is `country` (IN → Asia/Kolkata; US → a dozen)."""
    return sorted(zone for zone, code in _zone_countries().items() if code == country)


def candidate_countries(zone: str) -> tuple[str, ...]:
    own = zone_country(zone)
    return tuple(dict.fromkeys([*([own] if own in phonenumbers.SUPPORTED_REGIONS else []), *USUAL_COUNTRIES]))


def phone_validity(numbers: Iterable[str], countries: Iterable[str]) -> dict[str, float]:
    """Country → share of `numbers` that are valid numbers of it when read there (rounded to 0.01)."""
    sample = [n for n in numbers if n][:SAMPLE_NUMBERS]
    if not sample:
        return {}
    shares = {}
    for country in countries:
        valid = 0
        for number in sample:
            try:
                valid += phonenumbers.is_valid_number_for_region(phonenumbers.parse(number, country), country)
            except phonenumbers.NumberParseException:
                continue
        shares[country] = round(valid / len(sample), 2)
    return {c: s for c, s in shares.items() if s}
