"""Thin Dagster wrappers over `clinic_pipeline.steps`, one module per stage."""
