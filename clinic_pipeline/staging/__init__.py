"""Plan-driven transforms from the source export to Freshsales-shaped Parquet, with quarantine."""
