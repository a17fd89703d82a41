"""The clinic's communications log: calls with direction, duration and outcome, emails, SMS, letters, portal
messages and automated reminder sends, with the usual mess (the same channel written several ways, staff
missing on automated sends, the odd row for a patient who is gone)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from clinic_pipeline.samples.generator import vocab as v
from clinic_pipeline.samples.generator.columns import (
    SECONDS_PER_DAY,
    cat,
    group_positions,
    ids,
    null_where,
    pick,
    stamps,
    table,
    text,
    weighted,
)
from clinic_pipeline.samples.generator.frame import Frame
from clinic_pipeline.samples.generator.tables import PatientFacts

COMMUNICATION_COLUMNS = (
    "comm_id", "patient_id", "staff_id", "channel", "direction", "occurred_at", "duration_seconds", "outcome",
    "subject", "message", "created_at",
)  # fmt: skip
COMMUNICATIONS_PER_PATIENT = 3.0


def communications(frame: Frame, people: PatientFacts) -> pa.Table:
    rng = frame.rng(16)
    patient, _ = group_positions(rng.poisson(COMMUNICATIONS_PER_PATIENT, frame.patients))
    n = len(patient)
    channel = weighted(rng, v.CHANNEL_WEIGHTS, n)
    kind = v.CHANNEL_KIND[channel]
    call = kind == 0
    automated = ~call & (kind != 3) & (rng.random(n) < 0.3)  # reminder sends by email or SMS: no staff
    outbound = automated | (rng.random(n) < 0.7)
    start = np.maximum(people.created_s[patient], frame.history_start_s) + (
        rng.random(n) * (frame.export_s - np.maximum(people.created_s[patient], frame.history_start_s))
    ).astype(np.int64)
    start = (start // SECONDS_PER_DAY) * SECONDS_PER_DAY + rng.integers(8 * 3_600, 18 * 3_600, n)
    start = np.minimum(start, frame.export_s - 60)
    subject = np.where(automated, 0, 1 + kind * 3 + rng.integers(0, 3, n))
    orphan = rng.random(n) < frame.rates.orphan_foreign_keys
    patient_id = np.where(orphan, frame.patients + 1 + rng.integers(0, max(1, frame.patients), n), patient + 1)
    arrays = [
        ids(n), text(patient_id), null_where(automated, text(people.provider[patient] + 1)),
        pick(v.CHANNELS, channel), pick(np.array(["Outbound", "Inbound"]), (~outbound).astype(np.int64)),
        stamps(start), null_where(~call, text(rng.integers(20, 900, n))),
        null_where(~call, pick(v.CALL_OUTCOMES, weighted(rng, v.CALL_OUTCOME_WEIGHTS, n))),
        pick(v.COMMUNICATION_SUBJECTS, subject),
        cat(pick(v.COMMUNICATION_SUBJECTS, subject), ": ", pick(v.COMMUNICATION_BODIES, rng.integers(0, 4, n))),
        stamps(start + rng.integers(0, 60, n)),
    ]  # fmt: skip
    return table(COMMUNICATION_COLUMNS, arrays, n)
