"""`python -m clinic_pipeline` is the `clinic-pipeline` command."""

from clinic_pipeline.cli import app

app(prog_name="clinic-pipeline")
