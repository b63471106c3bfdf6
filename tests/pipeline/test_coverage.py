"""The coverage planner (harness/pipeline/coverage.py `plan`): which lowerings can win, the greedy order of
tasks by their share of the candidates' latency, one task serving every workload that contains it, and the
stop at `max_untuned`. Pure functions on synthetic surveys: no TVM."""

from __future__ import annotations

import pytest

from harness.pipeline.coverage import TaskRow, Workload, coverage_table, plan


def _w(model, lowering, *tasks):
    """tasks: (workload hash, calls, default ms, tuned ms or None)"""
    return Workload(model, lowering, tuple(TaskRow(f"t_{h}", h, c, d, t) for h, c, d, t in tasks))


def test_only_lowerings_within_the_factor_of_the_fastest_are_candidates():
    ws = [
        _w("a@1", "phase", ("h1", 1, 90.0, None), ("h2", 1, 10.0, None)),  # 100 ms
        _w("a@1", "native", ("h1", 1, 90.0, None), ("h3", 1, 500.0, None)),  # 590 ms: cannot win
        _w("a@1", "zero_insert", ("h1", 1, 90.0, None), ("h4", 1, 100.0, None)),  # 190 ms: within 2x
    ]
    p = plan(ws, max_untuned=0.02, within=2.0)
    assert p.candidates == {"a@1": ["phase", "zero_insert"]}
    assert "h3" not in [s.workload for s in p.steps], "a task only a losing lowering has is not tuned"


def test_greedy_order_follows_the_share_summed_over_the_workloads_a_task_serves():
    ws = [
        _w("a@1", "phase", ("h1", 1, 50.0, None), ("h2", 1, 50.0, None)),
        _w("b@1", "phase", ("h2", 2, 10.0, None), ("h3", 1, 80.0, None)),
    ]
    p = plan(ws)
    # h2: 0.5 of a + 0.2 of b = 0.7; h3: 0.8 of b; h1: 0.5 of a
    assert [s.workload for s in p.steps] == ["h3", "h2", "h1"]
    h2 = next(s for s in p.steps if s.workload == "h2")
    assert h2.serves == ("a@1/phase", "b@1/phase") and h2.score == pytest.approx(0.7)
    assert h2.source == "a@1/phase", "tuned through the workload where it costs most"
    assert all(v == 0.0 for v in p.after.values())


def test_it_stops_once_every_candidate_is_at_or_under_the_goal_and_skips_tuned_tasks():
    ws = [
        _w("a@1", "phase", ("h1", 1, 97.0, 40.0), ("h2", 1, 2.0, None), ("h3", 1, 1.0, None)),
    ]
    # with h1 tuned (40 ms), latency 43 ms; untuned 3/43 = 7% > 2% -> h2 (2/43) is tuned, then 1/43 = 2.3% > 2%
    p = plan(ws, max_untuned=0.025)
    assert [s.workload for s in p.steps] == ["h2"]
    assert p.before["a@1/phase"] == pytest.approx(3 / 43)
    assert p.after["a@1/phase"] == pytest.approx(1 / 43)
    assert plan(ws, max_untuned=0.1).steps == []


def test_the_coverage_table_reports_the_tuned_share_of_latency():
    ws = [_w("a@1", "phase", ("h1", 2, 10.0, 5.0), ("h2", 1, 30.0, None))]
    (row,) = coverage_table(ws, plan(ws))
    assert row["latency_ms"] == pytest.approx(40.0) and row["default_latency_ms"] == pytest.approx(50.0)
    assert row["tuned_share"] == pytest.approx(0.25) and row["untuned_share"] == pytest.approx(0.75)
    assert row["tasks_tuned"] == 1 and row["candidate"]


def test_a_round_is_tuned_through_as_few_workloads_as_hold_its_tasks():
    from harness.pipeline.coverage import group_by_source

    ws = [
        _w("a@1", "phase", ("h1", 1, 50.0, None), ("h2", 1, 40.0, None)),
        _w("b@1", "phase", ("h2", 1, 30.0, None), ("h3", 1, 20.0, None), ("h1", 1, 5.0, None)),
    ]
    p = plan(ws)
    groups = group_by_source(p.steps, ws)
    assert list(groups) == ["b@1/phase"], "b holds all three tasks: one tuning process"
    assert sorted(s.workload for s in groups["b@1/phase"]) == ["h1", "h2", "h3"]
    assert all(s.source == "b@1/phase" and s.task == f"t_{s.workload}" for s in groups["b@1/phase"])
