"""A generated clinic outside the United States: the same tables, written the way a UK practice system
writes them. Phone numbers become UK landlines and mobiles (`020 7946 0958`, `07700 900123`, `+44 …`),
dates are day first (`31/01/2026`; the few written the other way are ISO), amounts carry `£`, cities,
counties and postcodes are British, and the clinic keeps UK time.

Applied to the finished tables, so every draw (and the US clinic) stays as it was.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clinic_pipeline.samples.generator import vocab as v
from clinic_pipeline.samples.generator.columns import cat, pick, text, where

Country = Literal["US", "GB"]
TIME_ZONES: dict[str, str] = {"US": "America/Chicago", "GB": "Europe/London"}
DATE_FORMATS: dict[str, str] = {"US": "%Y-%m-%d", "GB": "%d/%m/%Y"}

# One UK town per US city of the vocabulary (same index), its county and its postcode area.
GB_CITIES = np.array(
    ["London", "Manchester", "Leeds", "Bristol", "Birmingham", "Sheffield", "Nottingham", "Leicester", "Cardiff",
     "Edinburgh", "Glasgow", "Liverpool", "Newcastle upon Tyne", "Brighton", "Oxford"]
)  # fmt: skip
GB_COUNTIES = np.array(
    ["Greater London", "Greater Manchester", "West Yorkshire", "Bristol", "West Midlands", "South Yorkshire",
     "Nottinghamshire", "Leicestershire", "South Glamorgan", "City of Edinburgh", "Glasgow City", "Merseyside",
     "Tyne and Wear", "East Sussex", "Oxfordshire"]
)  # fmt: skip
GB_POSTCODE_AREAS = np.array(["N", "M", "LS", "BS", "B", "S", "NG", "LE", "CF", "EH", "G", "L", "NE", "BN", "OX"])
_POSTCODE_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
_CITY_INDEX = {name: i for i, name in enumerate(v.CITIES)}
_ISO_DATE = r"^(\d{4})-(\d{2})-(\d{2})$"
_US_DATE = r"^(\d{2})/(\d{2})/(\d{4})$"
# A column holds dates when this share of its values are ISO dates (a few are the export's mess).
_DATE_COLUMN_SHARE = 0.8


def localise(tables: dict[str, pa.Table], country: Country) -> dict[str, pa.Table]:
    if country == "US":
        return tables
    return {name: _uk_table(table) for name, table in tables.items()}


def _uk_table(table: pa.Table) -> pa.Table:
    columns = {name: table.column(name).combine_chunks() for name in table.schema.names}
    for city_col, county_col, postcode_col in (("city", "state", "zip"), ("practice_city", "practice_state", None)):
        if city_col in columns:
            index = _city_index(columns[city_col])
            columns[city_col] = _keep_nulls(columns[city_col], pick(GB_CITIES, index))
            if county_col in columns:
                columns[county_col] = _keep_nulls(columns[county_col], pick(GB_COUNTIES, index))
            if postcode_col and postcode_col in columns:
                columns[postcode_col] = _keep_nulls(columns[postcode_col], _postcodes(columns[postcode_col], index))
    for name, values in list(columns.items()):
        if not pa.types.is_string(values.type):
            continue
        if "phone" in name:
            columns[name] = _uk_phones(values)
        elif name == "time_zone":
            columns[name] = _keep_nulls(values, pa.repeat(pa.scalar(TIME_ZONES["GB"]), len(values)))
        elif _is_date_column(values):
            columns[name] = _day_first(values)
        elif pc.any(pc.match_substring(values, "$")).as_py():
            columns[name] = pc.replace_substring(values, "$", "£")
    return pa.table(columns)


def _keep_nulls(original: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_null(original), pa.scalar(None, pa.string()), values)


def _city_index(cities: pa.Array) -> np.ndarray:
    return np.array([_CITY_INDEX.get(c, 0) for c in cities.to_pylist()], dtype=np.int64)


def _postcodes(zips: pa.Array, city: np.ndarray) -> pa.Array:
    """`62704` in Springfield → `M4 7DU`-like: the town's area, then district and unit from the zip's digits."""
    digits = np.array([int(z) if z and z.isdigit() else 0 for z in zips.to_pylist()], dtype=np.int64)
    letters = len(_POSTCODE_LETTERS)
    return cat(
        pick(GB_POSTCODE_AREAS, city), text(1 + digits % 20), " ", text(digits // 20 % 10),
        pick(_POSTCODE_LETTERS, digits // 200 % letters), pick(_POSTCODE_LETTERS, digits // 7 % letters),
    )  # fmt: skip


def _uk_phones(phones: pa.Array) -> pa.Array:
    """A US number's area code, exchange and line become a London landline or a mobile, written three ways;
    placeholders and broken numbers (N/A, seven digits, Excel's 5.55E+09) stay as broken as they were."""
    out = []
    for value in phones.to_pylist():
        out.append(None if value is None else _uk_phone(value))
    return pa.array(out, pa.string())


def _uk_phone(value: str) -> str:
    main, sep, extension = value.partition(" x")
    digits = "".join(ch for ch in main if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10 or set(digits) == {"0"} or "E+" in main:
        return value
    area, exchange, line = int(digits[:3]), digits[3:6], digits[6:]
    if area % 2:
        mobile = f"07{7 + area % 3}{exchange}{line}{area % 10}"  # 07XXX XXXXXX
        written = (f"{mobile[:5]} {mobile[5:]}", f"+44 {mobile[1:5]} {mobile[5:]}", mobile)
    else:
        written = (f"020 7{exchange} {line}", f"+44 20 7{exchange} {line}", f"(020) 7{exchange} {line}")
    return written[int(line) % 3] + (sep + extension if sep else "")


def _is_date_column(values: pa.Array) -> bool:
    present = len(values) - values.null_count
    iso = pc.sum(pc.match_substring_regex(values, _ISO_DATE)).as_py() or 0
    return present > 0 and iso >= _DATE_COLUMN_SHARE * present


def _day_first(values: pa.Array) -> pa.Array:
    """ISO dates → DD/MM/YYYY; US dates (the export's mess) → ISO, the other way a UK export gets them wrong."""
    iso = pc.fill_null(pc.match_substring_regex(values, _ISO_DATE), False).to_numpy(zero_copy_only=False)
    us = pc.fill_null(pc.match_substring_regex(values, _US_DATE), False).to_numpy(zero_copy_only=False)
    day_first = pc.replace_substring_regex(values, _ISO_DATE, r"\3/\2/\1")
    iso_from_us = pc.replace_substring_regex(values, _US_DATE, r"\3-\1-\2")
    return where(iso, day_first, where(us, iso_from_us, values))
