"""Reading a clinic export through DuckDB, and its schema inventory."""
