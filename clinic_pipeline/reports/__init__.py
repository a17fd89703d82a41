"""Operator reports: validation report (and later the sample diff and the workflow rebuild reference)."""
