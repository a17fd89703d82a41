"""Entity names, in the one place that knows them: path segment (plural), JSON root (singular),
search kind and the `targetable_type` model name.

`entity` everywhere in the client is the plural path segment (`contacts`, `sales_accounts`, ...) or a
custom module, given as `custom_module/cm_<name>` or just `cm_<name>`.
"""

from __future__ import annotations

ROOTS: dict[str, str] = {
    "contacts": "contact",
    "sales_accounts": "sales_account",
    "deals": "deal",
    "tasks": "task",
    "appointments": "appointment",
    "sales_activities": "sales_activity",
    "notes": "note",
}
# Entities listed by a plain paged endpoint (no view, no mandatory filter), which no contact side-loads.
PLAIN_LISTS = frozenset({"sales_activities"})
# Entities whose list endpoint needs a filter, and the filters that together list every record.
LIST_FILTERS: dict[str, tuple[str, ...]] = {"tasks": ("open", "completed"), "appointments": ("past", "upcoming")}
TARGETABLE_TYPES: dict[str, str] = {"contacts": "Contact", "sales_accounts": "SalesAccount", "deals": "Deal"}
_PLURALS: dict[str, str] = {root: plural for plural, root in ROOTS.items()}
CUSTOM_MODULE_PREFIX = "custom_module/"


def _module_name(entity: str) -> str | None:
    name = entity.removeprefix(CUSTOM_MODULE_PREFIX)
    return name if name.startswith("cm_") and "/" not in name else None


def path_of(entity: str) -> str:
    """The path segment(s) after `/api/`: `contacts`, `custom_module/cm_lab_result`."""
    module = _module_name(entity)
    if module is not None:
        return CUSTOM_MODULE_PREFIX + module
    if entity not in ROOTS:
        raise ValueError(f"unknown Freshsales entity {entity!r}: use one of {', '.join(ROOTS)} or cm_<name>")
    return entity


def root_of(entity: str) -> str:
    """The JSON root a single record travels under: `contact`, `cm_lab_result`."""
    module = _module_name(entity)
    return module if module is not None else ROOTS[path_of(entity)]


def list_key(entity: str) -> str:
    """The key a list answer holds its records under: `contacts`, `cm_lab_result`."""
    module = _module_name(entity)
    return module if module is not None else path_of(entity)


def kind_of(entity: str) -> str:
    """A singular kind from a plural entity or a kind: `contacts` and `contact` both give `contact`."""
    return entity if entity in _PLURALS else root_of(entity)


def plural_of_kind(kind: str) -> str:
    """`contact` -> `contacts`; a custom module keeps its name."""
    return _PLURALS.get(kind, kind)


def search_kind(entity: str) -> str:
    """The entity as `/filtered_search/<kind>` and `/lookup?entities=` name it: `contact`, `cm_x`."""
    return root_of(entity)


def settings_segment(entity: str) -> str:
    """The entity as `/settings/<segment>/fields` names it: `contacts`, `cm_x`."""
    return list_key(entity)
