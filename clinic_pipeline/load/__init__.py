"""State store (id map, audit log) and the ordered, idempotent loader."""
