"""The Freshsales object model: what every other package reads and none redefines.

`objects` holds the entities, their fields, keys, required fields, links, load order and bulk support;
`outcomes` the load outcomes; `transforms` the plan's transform vocabulary with its SQL. This package
imports nothing else of the project, so mapping, staging, loading and reports all import down into it.
"""
