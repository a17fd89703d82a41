"""Freshsales target catalog, mapping proposer, plan model and the confirmation gate."""
