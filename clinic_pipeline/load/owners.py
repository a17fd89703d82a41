"""Record owners: a staged `_owner_email` → the id of an active Freshsales user.

Emails compare case-insensitively. Inactive users are never chosen (Freshsales refuses them as
owners). An optional fallback owner (settings `CLINIC_FALLBACK_OWNER_EMAIL`) takes the records whose
provider has no active user; it must itself be an active user, or the map refuses to be built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.models import Owner


class OwnerConfigurationError(ValueError):
    """The fallback owner is not an active Freshsales user."""


@dataclass(frozen=True)
class OwnerMap:
    by_email: dict[str, int] = field(default_factory=dict)  # casefolded email → active user id
    fallback_id: int | None = None

    @classmethod
    def from_owners(cls, owners: Iterable[Owner], fallback_email: str | None = None) -> OwnerMap:
        active = {o.email.strip().casefold(): o.id for o in owners if o.is_active and o.email}
        fallback_id = None
        if fallback_email:
            fallback_id = active.get(fallback_email.strip().casefold())
            if fallback_id is None:
                raise OwnerConfigurationError("the fallback owner email is not an active Freshsales user")
        return cls(active, fallback_id)

    @classmethod
    def from_client(cls, client: FreshsalesClient, fallback_email: str | None = None) -> OwnerMap:
        return cls.from_owners(client.owners(), fallback_email)

    def resolve(self, email: str | None) -> int | None:
        """The owner's user id, else the fallback's, else None (unresolved)."""
        found = self.by_email.get(email.strip().casefold()) if email else None
        return found if found is not None else self.fallback_id
