"""Secrets of the source system: passwords, their hashes and salts, tokens, API keys, PINs, security answers.

They are recognised by name (the catalog's `SECRET_WORDS`/`SECRET_PHRASES`) and by value shape (the
inventory's `password_hash`: bcrypt `$2y$`, crypt, argon2, pbkdf2). The proposer never gives one a target,
and `confirm-mapping` refuses a plan that migrates one unless its line says `allow_secret: true`.
"""

from __future__ import annotations

from clinic_pipeline.mapping.synonyms import HASH_WORDS, SECRET_PHRASES, SECRET_WORDS, normalise
from clinic_pipeline.source.inventory_model import ColumnProfile, SchemaInventory


def secret_evidence(column: ColumnProfile) -> str | None:
    """Why the column holds a secret, or None."""
    words = normalise(column.name)
    named = set(words.split()) & SECRET_WORDS or [p for p in SECRET_PHRASES if p in words]
    if not named and set(words.split()) & HASH_WORDS and not (column.shape == "hex_digest" and column.max_length == 64):
        # A hash is a credential or an integrity seal, never business data; only a file's SHA-256 travels.
        named = set(words.split()) & HASH_WORDS
    if named or "password" in words.replace(" ", ""):
        return f"named like a secret ({', '.join(sorted(named)) or 'password'})"
    if column.shape == "password_hash":
        return "values look like password hashes (crypt/bcrypt)"
    return None


def secret_columns(inventory: SchemaInventory) -> dict[tuple[str, str], str]:
    """(table, column) → the evidence, for every secret column of the export."""
    found = {}
    for table in inventory.tables:
        for column in table.columns:
            evidence = secret_evidence(column)
            if evidence:
                found[(table.name, column.name)] = evidence
    return found
