"""Record owners: a staged `_owner_email`, else `_owner_name` → the id of an active Freshsales user.

Emails compare case-insensitively. A name (staff of a source that keeps no email) compares by its first and
last name, accents and titles aside (`model.people.name_key`), and only where exactly one active user bears
it: a name two users share is never guessed. Inactive users are never chosen (Freshsales refuses them as
owners). An optional fallback owner (settings `CLINIC_FALLBACK_OWNER_EMAIL`) takes the records whose
provider has no active user; it must itself be an active user, or the map refuses to be built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.models import Owner
from clinic_pipeline.model.people import by_unique_name, name_key


class OwnerConfigurationError(ValueError):
    """The fallback owner is not an active Freshsales user."""


@dataclass(frozen=True)
class OwnerMap:
    by_email: dict[str, int] = field(default_factory=dict)  # casefolded email → active user id
    fallback_id: int | None = None
    by_name: dict[str, int] = field(default_factory=dict)  # name key → the one active user of that name

    @classmethod
    def from_owners(cls, owners: Iterable[Owner], fallback_email: str | None = None) -> OwnerMap:
        users = list(owners)
        active = {o.email.strip().casefold(): o.id for o in users if o.is_active and o.email}
        fallback_id = None
        if fallback_email:
            fallback_id = active.get(fallback_email.strip().casefold())
            if fallback_id is None:
                raise OwnerConfigurationError("the fallback owner email is not an active Freshsales user")
        by_name, _shared = by_unique_name((o.display_name, o.id) for o in users if o.is_active)
        return cls(active, fallback_id, by_name)

    @classmethod
    def from_client(cls, client: FreshsalesClient, fallback_email: str | None = None) -> OwnerMap:
        return cls.from_owners(client.owners(), fallback_email)

    def resolve(self, email: str | None, name: str | None = None) -> int | None:
        """The owner's user id by email, else by name, else the fallback's, else None (unresolved)."""
        found = self.by_email.get(email.strip().casefold()) if email else None
        if found is None:
            key = name_key(name)
            found = self.by_name.get(key) if key else None
        return found if found is not None else self.fallback_id
