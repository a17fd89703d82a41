"""Kill harness: the migration SIGKILLed at random moments and restarted ends with exactly what an
uninterrupted run puts in Freshsales, every time.

One generated clinic is migrated up to its signed-off sample and kept as a template. The reference is an
uninterrupted `migrate --full` from it. Then 20 kills, each followed by the same command run again until it
exits 0 and a comparison of Freshsales with the reference (every record, its links named by source key;
no duplicate, nothing missing; the id map following Freshsales; no load intent left open):
- `migrate --full` SIGKILLed while it stages, mid-batch in the loads (between an answer and its state
  commit included) and while it validates: from the template, and from a state `rollback --all` emptied;
- `rollback --all` SIGKILLed part-way, run again (Freshsales and the id map must end empty), then
  `migrate --full` (killed too);
- a Dagster run of every load (one process per step) killed as a whole process group.
The delays (for the Dagster run: numbers of answered writes) are drawn from what uninterrupted runs
measured, with a seeded RNG: the seed is printed, and KILL_HARNESS_SEED replays it. Each kill prints one
line: its delay, where it landed, how it ended. A second test answers a killed load with `rollback --all`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinic_pipeline_tests.e2e.kill_harness import (
    DAGSTER_LOADS,
    KINDS,
    MIGRATE,
    ROLLBACK,
    Clinic,
    Harness,
    content,
    live_ids,
    measure,
    prepared_clinic,
    rolled_back,
    spread,
)

SEED = int(os.environ.get("KILL_HARNESS_SEED", "5"))
# 13 kills of `migrate --full` (3 while staging, 9 in the loads, 1 while validating), 4 of `rollback
# --all`, 3 of a Dagster run: 20.
STAGING_KILLS, LOAD_KILLS, VALIDATION_KILLS = 3, 9, 1
ROLLBACK_KILLS = 4
TEMPLATE_KILLS = 8  # of the migrate kills, those from the signed-off sample; the others follow a rollback
DAGSTER_KILLS = 3
# From the signed-off sample: past the accounts' and contacts' bulk upserts, inside the first batch of
# records created one by one.
WRITES_INTO_A_BATCH = 60


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    with prepared_clinic(tmp_path_factory.mktemp("kill_harness")) as prepared:
        yield prepared


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_and_restarted_runs_end_identical_to_an_uninterrupted_one(clinic: Clinic, tmp_path: Path) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    print(f"\nkill harness: seed {SEED} (replay with KILL_HARNESS_SEED={SEED})", flush=True)
    clinic.restore_template()

    # The reference: one uninterrupted full run from the signed-off sample.
    full, timeline = measure(clinic, MIGRATE)
    snapshot = clinic.snapshot()
    reference = content(snapshot)
    assert all(n == 1 for records in reference.values() for n in records.values()), "the reference has duplicates"
    mapped, intents = clinic.state()
    assert mapped == live_ids(snapshot) and not any(intents.values())
    counts = {name: len(ids) for name, ids in mapped.items()}
    print(
        f"reference: migrate --full {full.seconds:.1f} s, {timeline.total} API writes from {timeline.first:.1f} s "
        f"to {timeline.last:.1f} s; records { {kind: sum(n.values()) for kind, n in reference.items()} }",
        flush=True,
    )
    harness = Harness(clinic, reference)
    first, last = timeline.first, timeline.last
    # (delay, counted from the start (0) or from the first answered write (1), what it was drawn from). The
    # loads' delays count from their first write: staging's seconds of jitter would shift them off the
    # writes, which come in bursts.
    migrate_delays = [
        *(
            (d, 0, f"staging, before the first write at {first:.1f} s")
            for d in spread(rng, STAGING_KILLS, 0.1 * first, first)
        ),
        *(
            (timeline.moment(f) - first, 1, f"loads, {f:.0%} of the reference's {timeline.total} writes")
            for f in spread(rng, LOAD_KILLS, 0.0, 1.0)
        ),
        *(
            (d - first, 1, f"validation: the reference's writes ended {last - first:.1f} s after its first")
            for d in spread(rng, VALIDATION_KILLS, last, last + 0.8 * (full.seconds - last))
        ),
    ]
    rng.shuffle(migrate_delays)

    # An uninterrupted rollback: what the killed ones must end as, and when its deletes happen.
    _, rollback_timeline = measure(clinic, ROLLBACK)
    assert not clinic.problems(rolled_back(reference)), clinic.problems(rolled_back(reference))

    def kill_migrate(what: str) -> None:
        delay, after_writes, drawn = migrate_delays.pop()
        since = time.time()
        counted = "after its first write" if after_writes else "after its start"
        kill = harness.kill(
            MIGRATE,
            delay=delay,
            after_writes=after_writes,
            what=f"migrate --full {what}",
            window=f"{delay:.2f} s {counted}: {drawn}",
            target=counts,
        )
        harness.expect_reference(kill, since)

    kill_migrate("after a rollback")
    for fraction in spread(rng, ROLLBACK_KILLS, 0.0, 1.0):
        window = f"at {fraction:.0%} of an uninterrupted rollback's {rollback_timeline.total} writes"
        kill = harness.kill(
            ROLLBACK, delay=rollback_timeline.moment(fraction), what="rollback --all", window=window, target={}
        )
        harness.expect_rolled_back(kill)
        kill_migrate("after a killed rollback")
    for _ in range(TEMPLATE_KILLS):
        clinic.restore_template()
        kill_migrate("from the signed-off sample")
    assert not migrate_delays

    # Dagster: the same loads from the same template, each step a process of its own. Starting those costs
    # seconds of jitter, so a delay would mostly land between steps: the kill waits for the run's writes.
    for n, fraction in enumerate(spread(rng, DAGSTER_KILLS, 0.0, 1.0)):
        clinic.restore_template()
        since = time.time()
        writes = max(1, round(fraction * timeline.total))
        kill = harness.kill(
            DAGSTER_LOADS,
            writes=writes,
            what="dagster asset materialize (process group)",
            window=f"once {writes} of the reference's {timeline.total} writes were answered",
            target=counts,
            env=clinic.dagster_env(tmp_path / f"dagster-{n}"),
            whole_group=True,
        )
        harness.expect_reference(kill, since)

    print(f"kill harness: {len(harness.kills)} kills in {time.monotonic() - began:.0f} s", flush=True)
    for kill in harness.kills:
        print(kill.line())
        for failure in kill.failed_attempts:
            print(f"    restart failed: {failure}")
    assert len(harness.kills) == 20
    assert sum(k.missed for k in harness.kills) <= 2, "most kills came after the command had finished"
    assert all(k.identical for k in harness.kills), [k.line() for k in harness.kills if not k.identical]


@pytest.mark.slow
def test_a_rollback_after_a_killed_load_removes_what_the_load_never_committed(clinic: Clinic) -> None:
    """The operator answers a killed load with `rollback --all` instead of a restart: the records the load
    sent without committing (their intents open, no audit row with their ids) go too."""
    clinic.restore_template()
    expected = rolled_back(content(clinic.snapshot()))
    stopped = clinic.interrupt(MIGRATE, writes=WRITES_INTO_A_BATCH)
    assert stopped.killed
    mapped, _ = clinic.state()
    held = live_ids(clinic.snapshot())
    assert any(held[name] - mapped[name] for name in KINDS), "the kill left nothing the state never heard of"
    clinic.cli("rollback", "--all")
    assert not clinic.problems(expected), clinic.problems(expected)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_cli_migration_and_a_dagster_run_at_once_end_as_one_uninterrupted_run(clinic: Clinic, tmp_path: Path) -> None:
    """Two operators start the same migration, one with `migrate --full`, one in Dagster: they take turns at
    the state store, each says in one line what it waits for or refuses, and Freshsales ends as after one run
    (no record twice, nothing missing, the id map following it)."""
    clinic.restore_template()
    clinic.cli("migrate", "--full")
    reference = content(clinic.snapshot())
    clinic.restore_template()
    cli, cli_log = clinic.start(MIGRATE)
    dagster, dagster_log = clinic.start(DAGSTER_LOADS, clinic.dagster_env(tmp_path / "dagster"))
    codes = [process.wait(timeout=600) for process in (cli, dagster)]
    for log in (cli_log, dagster_log):
        assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace"), log.read_text()[-3000:]
    # A run the other one kept out says so in one line and leaves nothing half done: a rerun finishes it.
    if codes[0] != 0:
        assert "error:" in cli_log.read_text(), cli_log.read_text()[-2000:]
        clinic.cli("migrate", "--full")
    assert not clinic.problems(reference), clinic.problems(reference)
    assert all(n == 1 for records in content(clinic.snapshot()).values() for n in records.values())
