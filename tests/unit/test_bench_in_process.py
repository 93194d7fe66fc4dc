"""``tracker bench --in-process``: the worker's fold with no Kafka, checked against the pure fold."""

from __future__ import annotations

import pytest

from tracker.bench.inprocess import check_against_pure_fold, fold_in_process
from tracker.bench.workload import generate
from tracker.errors import TrackerError
from tracker.rules_file import build_router
from tracker.settings import Settings

pytestmark = pytest.mark.unit


def test_the_in_process_fold_folds_every_record_and_agrees_with_the_pure_fold() -> None:
    settings = Settings(batch_size=500)
    workload = generate(3000, 300, 1)

    figures = fold_in_process(settings, 3000, 300, seed=1)

    # Each retraction is broadcast: one record per partition.
    assert figures.records == len(workload.records) + workload.retractions * (settings.partitions - 1)
    assert figures.cpu_seconds > 0
    assert "signals equal the pure fold" in figures.table()


def test_a_fold_that_disagrees_with_the_pure_fold_gets_no_rate() -> None:
    settings = Settings()
    router = build_router(settings)
    workload = generate(500, 50, 1)

    with pytest.raises(TrackerError, match="disagrees with the pure fold"):
        check_against_pure_fold(router, workload, {})  # nothing folded
