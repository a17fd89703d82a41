"""clinic_pipeline: migrate a clinic's export into Freshsales, step by step, with Dagster."""

__version__ = "0.1.0"
