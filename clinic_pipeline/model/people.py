"""A person's name as a key that two spellings of one name share: `Dr. Lucía Herrera` and `Lucia Herrera`,
`Okafor, Amara` and `Amara Okafor`. Staff of a source that keeps no email resolve to Freshsales users by it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import TypeVar

from nameparser import HumanName

T = TypeVar("T")

# Distinct names remembered: a clinic's staff and the account's users, bounded all the same.
_CACHE_SIZE = 10_000
# A role written after the name (`Patrick Okello - Medical Superintendent`); a hyphenated name has no spaces.
_ROLE_AFTER = re.compile(r"\s+[-\u2013\u2014]\s+.*$")  # a hyphen, an en or an em dash


def _plain(text: str) -> str:
    """Accents stripped and case folded: `Lucía` → `lucia` (a Freshsales name is often typed without them)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=_CACHE_SIZE)
def name_key(name: str | None) -> str | None:
    """The first and the last name, plain (nameparser drops titles, suffixes and middle names, and reads
    `Last, First`), a role after a spaced dash left out: `Dr. Lucía M. Herrera, MD` → `lucia herrera`. None
    without both: a one-word name (`admin`, `Pharmacy`) names no one in particular."""
    if not name:
        return None
    parsed = HumanName(_ROLE_AFTER.sub("", _plain(name)))
    first, last = " ".join(parsed.first.split()), " ".join(parsed.last.split())
    return f"{first} {last}" if first and last else None


def by_unique_name(named: Iterable[tuple[str | None, T]]) -> tuple[dict[str, T], frozenset[str]]:
    """(name key → the one item of that name, the keys two or more items share): a shared name picks no one."""
    keyed = [(name_key(name), item) for name, item in named]
    counts = Counter(key for key, _item in keyed if key)
    unique = {key: item for key, item in keyed if key and counts[key] == 1}
    return unique, frozenset(key for key, n in counts.items() if n > 1)
