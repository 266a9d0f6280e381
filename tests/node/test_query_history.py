"""The answered-query history: durable, scoped per grantee and dataset version, idempotent."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ledger.ids import InvalidInput
from node.query_history import QueryHistory

GRANTEE, OTHER = b"\x01" * 32, b"\x02" * 32
DATASET = b"\x0d" * 32
GRANT_A, GRANT_B = b"\xa0" * 32, b"\xb0" * 32


def task(n: int) -> bytes:
    return n.to_bytes(32, "big")


def record(history: QueryHistory, n: int, **overrides: object) -> bool:
    values: dict[str, object] = {
        "task_id": task(n),
        "dataset_id": DATASET,
        "version": 1,
        "grantee_org": GRANTEE,
        "grant_id": GRANT_A,
        "selection": {"column": "age", "op": ">", "value": n},
        "selected": 10 + n,
        "epsilon": None,
    }
    values.update(overrides)
    return history.record(**values)  # type: ignore[arg-type]


def test_recorded_queries_survive_a_restart_and_are_scoped(db_url: str) -> None:
    with QueryHistory(db_url) as history:
        assert record(history, 1) is True
        assert record(history, 1) is False  # a retried record changes nothing
        assert record(history, 2, selection=None)
        assert record(history, 3, grantee_org=OTHER)
        assert record(history, 4, version=2)
    with QueryHistory(db_url) as reopened:
        answered = reopened.answered(GRANTEE, DATASET, 1)
        assert [q.task_id for q in answered] == [task(1), task(2)]
        assert answered[0].selection == {"column": "age", "op": ">", "value": 1}
        assert answered[1].selection is None and answered[1].selected == 12
        assert [q.task_id for q in reopened.answered(OTHER, DATASET, 1)] == [task(3)]


def test_epsilon_is_metered_per_grant(db_url: str) -> None:
    with QueryHistory(db_url) as history:
        assert history.epsilon_spent(GRANT_A) == 0.0
        record(history, 1, epsilon=0.5)
        record(history, 2, epsilon=0.25)
        record(history, 3, epsilon=1.0, grant_id=GRANT_B)
        record(history, 4)  # no noise: no epsilon
        assert history.epsilon_spent(GRANT_A) == pytest.approx(0.75)
        assert history.epsilon_spent(GRANT_B) == pytest.approx(1.0)


def test_bad_values_name_the_field(db_url: str) -> None:
    with QueryHistory(db_url) as history:
        with pytest.raises(InvalidInput, match="task_id"):
            record(history, 1, task_id=b"short")
        with pytest.raises(InvalidInput, match="selected"):
            record(history, 1, selected=-1)
        assert history.answered(GRANTEE, DATASET, 1) == []


def test_the_guard_serialises_check_and_record(tmp_path: Path) -> None:
    history = QueryHistory(f"sqlite:///{tmp_path / 'history.db'}")
    inside: list[int] = []
    overlaps: list[bool] = []

    def worker(n: int) -> None:
        with history.guard(GRANTEE, DATASET, 1):
            inside.append(n)
            overlaps.append(len(inside) > 1)
            threading.Event().wait(0.01)
            inside.remove(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [False] * 8
    history.close()
