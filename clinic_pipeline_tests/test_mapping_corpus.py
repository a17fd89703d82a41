"""The proposer on the evaluation corpus: exports shaped on real clinic systems' schemas, scored against gold
maps written before the proposer was changed for them (fixtures/corpus/README.md)."""

from __future__ import annotations

import pytest
from corpus_scores import exports, score_export

# Field and link accuracy each export must keep: the current scores, rounded down. The README's mapping
# section shows them beside each export's first score.
FLOORS: dict[str, tuple[float, float]] = {
    "care": (0.82, 0.75),
    "fhir_views": (0.91, 0.92),
    "frappe_health": (0.75, 1.0),
    "freemed": (0.84, 0.75),
    "gnu_health": (0.65, 0.66),
    "gnumed": (0.88, 0.71),
    "hospitalrun": (0.72, 0.66),
    "nosh": (0.81, 0.85),
    "open_hospital": (0.86, 1.0),
    "open_dental": (0.82, 0.75),
    "openclinic_ga": (0.86, 0.75),
    "openemr": (0.93, 1.0),
    "openmrs": (0.88, 1.0),
    "oscar": (0.88, 1.0),
    "simple_server": (0.92, 1.0),
    "synthea": (0.93, 1.0),
    "tamanu": (0.87, 1.0),
}


@pytest.mark.parametrize("export", exports())
def test_corpus_export_scores(export: str) -> None:
    score = score_export(export)
    assert not score.secrets_migrated, score.secrets_migrated
    fields, links = FLOORS.get(export, (0.0, 0.0))
    assert score.field_accuracy >= fields, score.misses
    assert score.link_accuracy >= links, score.misses
