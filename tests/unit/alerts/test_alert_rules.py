"""Storm control's rules on plain data: what is posted, folded, queued, counted and resolved.

The rules take one DAG's state as a dict and mutate it; no file, no database here (the
stores have their own tests: test_alert_state_file.py, and test_alert_state_postgres.py
against a real PostgreSQL).
"""

from __future__ import annotations

import pytest
from safeload.alerts import rules as r


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Dag:
    """One DAG's state and the rules applied to it, as AlertState applies them."""

    def __init__(self, clock: Clock, dag_id: str = "orders_daily", **settings) -> None:
        self.state = r.empty_dag_state()
        self.clock = clock
        self.dag_id = dag_id
        self.settings = r.Settings(**settings)

    def fail(self, task="load", run="r1", try_number=1, final=True, map_index=None, dag_alert=True):
        return r.record_failure(self.state, self.clock(), self.settings, dag_id=self.dag_id, task_id=task,
                                run_id=run, try_number=try_number, final=final, map_index=map_index,
                                dag_alert=dag_alert, detail={"error": f"{task} broke"})

    def retry(self, task="load", run="r1", try_number=1):
        return r.record_retry(self.state, self.clock(), self.settings, dag_id=self.dag_id, task_id=task,
                              run_id=run, try_number=try_number)

    def dag_fail(self, run="r1", reason="task_failure", causing=None):
        return r.record_dag_failure(self.state, self.clock(), self.settings, dag_id=self.dag_id, run_id=run,
                                    reason=reason, causing_task=causing)

    def commit(self, decision, ok=True, ts="1.000001", channel="C1"):
        return r.commit(self.state, decision, self.clock(), ok=ok, thread_ts=ts, channel=channel)

    def posted(self, decision, ts="1.000001"):
        self.commit(decision, ts=ts)
        return decision

    def resolve(self, task=None):
        return r.resolve(self.state, self.clock(), dag_id=self.dag_id, task_id=task)

    def settle(self, resolution, ok=True):
        r.settle(self.state, resolution, self.clock(), ok=ok)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def dag(clock):
    return Dag(clock)


# ---------------------------------------------------------------------------- one task


def test_first_failure_posts_and_repeats_in_other_runs_are_counted(dag, clock):
    first = dag.posted(dag.fail(run="r1"))
    assert (first.action, first.count, first.reason) == (r.POST, 1, "first failure in the window")
    actions = []
    for i in range(2, 12):
        clock.advance(60)
        d = dag.fail(run=f"r{i}")
        actions.append((d.count, d.action, d.thread_ts))
        if d.send:
            dag.commit(d, ts=f"9.{i}")
    # 2nd, 3rd, 5th and 10th are announced, in the first message's thread; the rest counted
    assert [(c, a) for c, a, _ in actions] == [
        (2, r.REPEAT), (3, r.REPEAT), (4, r.SUPPRESS), (5, r.REPEAT), (6, r.SUPPRESS),
        (7, r.SUPPRESS), (8, r.SUPPRESS), (9, r.SUPPRESS), (10, r.REPEAT), (11, r.SUPPRESS),
    ]
    assert {ts for _, a, ts in actions if a == r.REPEAT} == {"1.000001"}


def test_a_new_window_posts_the_full_message_again_as_still_failing(dag, clock):
    dag.posted(dag.fail(run="r1"))
    clock.advance(1800)
    dag.fail(run="r2")
    clock.advance(1800)  # the window (from the first failure) is over
    d = dag.fail(run="r3")
    assert (d.action, d.count, d.incident_count, d.thread_ts) == (r.POST, 1, 3, None)
    assert d.incident_start == clock.now - 3600


def test_undelivered_post_is_tried_again_on_the_next_failure(dag, clock):
    dag.commit(dag.fail(run="r1"), ok=False)
    clock.advance(10)
    again = dag.fail(run="r2")
    assert (again.action, again.count) == (r.POST, 2)


def test_same_event_twice_is_a_duplicate(dag):
    dag.posted(dag.fail(run="r1", try_number=1))
    assert dag.fail(run="r1", try_number=1).action == r.DUPLICATE


def test_final_failure_after_a_will_retry_alert_of_the_same_run_always_goes_out(dag):
    first = dag.posted(dag.fail(run="r1", try_number=1, final=False))
    assert first.action == r.POST
    second = dag.fail(run="r1", try_number=2, final=False)
    assert (second.action, second.reason) == (r.SUPPRESS, "run r1 was alerted already")
    final = dag.fail(run="r1", try_number=3, final=True)
    assert (final.action, final.broadcast, final.thread_ts) == (r.REPEAT, True, "1.000001")


def test_mapped_instances_of_one_run_make_one_message(dag):
    decisions = [dag.fail(run="r1", map_index=i) for i in range(20)]
    assert [d.action for d in decisions] == [r.POST] + [r.SUPPRESS] * 19


# ---------------------------------------------------------------------------- one run


def test_second_failing_task_is_folded_into_the_dag_message_and_joins_its_thread(dag):
    dag.posted(dag.fail(task="extract"))
    load, check = dag.fail(task="load"), dag.fail(task="check")
    assert (load.action, check.action) == (r.FOLD, r.FOLD)
    assert check.others == ["extract", "load"]
    message = dag.dag_fail()
    assert (message.action, message.failed_tasks, message.folded) == (
        r.POST, ["extract", "load", "check"], ["load", "check"])
    assert message.announces == ["load", "check"]
    dag.posted(message, ts="5.5")
    # the next run's repeats of the folded tasks go to the DAG message's thread
    again = dag.fail(task="load", run="r2")
    assert (again.action, again.thread_ts) == (r.REPEAT, "5.5")


def test_without_a_dag_message_a_folded_task_gets_a_line_in_the_run_thread(dag):
    first = dag.posted(dag.fail(task="extract"), ts="1.1")
    also = dag.fail(task="load", dag_alert=False)
    assert (also.action, also.thread_ts, also.others) == (r.ALSO, "1.1", ["extract"])
    dag.commit(also, ts="1.2")
    # it is a member of that thread now: a later repeat goes there, the DAG message skips it
    assert dag.dag_fail().action == r.SKIP
    assert dag.fail(task="load", run="r2", dag_alert=False).thread_ts == "1.1"
    assert first.thread_id == dag.state["keys"]["load"]["thread"]


def test_replies_wait_for_a_thread_still_being_posted_and_go_out_with_it(dag):
    first = dag.fail(task="extract")  # its post is under way (another worker)
    also = dag.fail(task="load", dag_alert=False)
    repeat_first = dag.fail(task="extract", run="r2")  # 2nd failure: worth a line
    assert (also.action, repeat_first.action) == (r.QUEUED, r.QUEUED)
    queued = dag.commit(first, ts="1.1")
    assert [(q["task_id"], q["action"]) for q in queued] == [("load", r.ALSO), ("extract", r.REPEAT)]
    assert queued[0]["error"] == "load broke"
    assert dag.state["threads"][first.thread_id]["pending"] == []
    # after the post, replies go straight to the thread
    assert dag.fail(task="check", dag_alert=False).thread_ts == "1.1"


def test_a_thread_whose_poster_died_stops_holding_replies(dag, clock):
    dag.fail(task="extract")  # never committed: the worker was killed
    clock.advance(r.STALE_SENDING + 1)
    again = dag.fail(task="extract", run="r2")
    assert again.action == r.POST  # the first was never seen: the full message again


def test_an_undelivered_first_message_takes_its_members_and_queue_with_it(dag):
    first = dag.fail(task="extract")
    dag.fail(task="load", dag_alert=False)  # queued on the first's thread
    assert dag.commit(first, ok=False) == []
    assert not dag.state["keys"]["load"]["posted"]
    assert dag.state["runs"]["r1"]["posts"] == 0
    assert dag.dag_fail().announces == ["extract", "load"]  # the DAG message names both


def test_task_posts_per_run_is_configurable(clock):
    dag = Dag(clock, task_posts_per_run=2)
    assert [dag.fail(task=x).action for x in ("a", "b", "c")] == [r.POST, r.POST, r.FOLD]


def test_dag_message_is_skipped_when_the_task_alerts_said_it_all(dag):
    dag.posted(dag.fail(task="extract"))
    assert dag.dag_fail().action == r.SKIP
    assert dag.dag_fail(reason="timed_out").action == r.DUPLICATE  # same run
    assert dag.dag_fail(run="r2", reason="timed_out").action == r.POST


def test_dag_message_names_the_causing_task_without_task_alerts(dag):
    d = dag.dag_fail(causing="load")
    assert (d.action, d.failed_tasks) == (r.POST, ["load"])


def test_dag_failures_are_storm_controlled_too(dag, clock):
    actions = []
    for i in range(1, 6):
        d = dag.dag_fail(run=f"r{i}", reason="timed_out")
        actions.append(d.action)
        if d.send:
            dag.posted(d)
        clock.advance(60)
    assert actions == [r.POST, r.REPEAT, r.REPEAT, r.SUPPRESS, r.REPEAT]


def test_a_later_failed_run_names_its_unnamed_tasks_in_the_dag_thread(dag, clock):
    dag.posted(dag.dag_fail(run="r1", reason="timed_out"), ts="7.7")
    clock.advance(60)
    dag.posted(dag.fail(task="x", run="r2"), ts="8.8")
    dag.fail(task="y", run="r2")  # folded
    d = dag.dag_fail(run="r2")
    assert (d.action, d.thread_ts, d.announces) == (r.REPEAT, "7.7", ["y"])


def test_retries_post_once_per_window_and_open_the_incident(dag):
    r1 = dag.posted(dag.retry(run="r1"), ts="7.7")
    r2 = dag.retry(run="r2")
    assert (r1.action, r2.action) == (r.POST, r.SUPPRESS)
    [summary] = dag.resolve("load")
    assert (summary.failures, summary.thread_ts) == (2, "7.7")


def test_final_failure_after_a_retry_alert_still_gets_the_full_message(dag):
    dag.posted(dag.retry(run="r1"), ts="7.7")
    assert dag.fail(run="r1", try_number=2).action == r.POST


# ---------------------------------------------------------------------------- recovery


def test_resolve_answers_in_the_failure_thread_and_closes_the_incident(dag, clock):
    dag.posted(dag.fail(run="r1"), ts="1.1")
    clock.advance(120)
    dag.fail(run="r2")
    clock.advance(60)
    [summary] = dag.resolve("load")
    assert (summary.failures, summary.thread_ts, summary.channel, summary.since) == (
        2, "1.1", "C1", clock.now - 180)
    dag.settle(summary)
    assert dag.resolve("load") == []
    assert dag.fail(run="r3").action == r.POST  # after the recovery: a first failure again


def test_resolve_is_silent_when_nothing_was_ever_posted(dag):
    dag.commit(dag.fail(run="r1"), ok=False)
    assert dag.resolve("load") == []
    assert dag.resolve("never_failed") == []
    assert dag.state["keys"]["load"]["incident_count"] == 0  # closed, silently


def test_one_summary_when_the_last_member_of_a_thread_recovers(dag):
    dag.posted(dag.fail(task="extract"), ts="1.1")
    for task in ("load", "check"):
        dag.commit(dag.fail(task=task, dag_alert=False), ts="1.9")
    assert dag.resolve("extract") == [] and dag.resolve("load") == []  # check still failing
    [summary] = dag.resolve("check")
    assert (summary.thread_ts, summary.tasks, summary.failures) == ("1.1", ["check", "extract", "load"], 3)
    dag.settle(summary)
    assert dag.resolve("check") == [] and dag.resolve() == []


def test_an_undelivered_summary_is_posted_on_the_next_success(dag):
    dag.posted(dag.fail(), ts="1.1")
    [summary] = dag.resolve("load")
    dag.settle(summary, ok=False)
    [again] = dag.resolve("load")
    assert (again.failures, again.thread_ts) == (1, "1.1")


def test_dag_level_success_posts_one_summary_per_thread(dag):
    dag.posted(dag.fail(task="extract"), ts="1.1")
    for task in ("load", "check"):
        dag.fail(task=task)  # folded into the DAG message
    dag.commit(dag.fail(task="unsent", run="r9"), ok=False)
    dag.posted(dag.dag_fail(), ts="2.2")
    summaries = sorted(dag.resolve(), key=lambda s: s.thread_ts)
    assert [(s.thread_ts, s.tasks) for s in summaries] == [("1.1", ["extract"]), ("2.2", ["check", "load"])]
    assert dag.state["keys"]["unsent"]["incident_count"] == 0  # never announced: closed silently


def test_folded_tasks_are_members_of_the_dag_thread_not_top_level(dag):
    dag.posted(dag.fail(task="extract"), ts="1.1")
    for task in "abcdefg":
        dag.fail(task=task)
    dag.posted(dag.dag_fail(), ts="2.2")
    [first] = dag.resolve("extract")
    assert first.thread_ts == "1.1"
    dag.settle(first)
    results = [dag.resolve(task) for task in "abcdef"]
    assert results == [[]] * 6  # six recovered, one still failing: nothing yet
    [summary] = dag.resolve("g")
    assert (summary.thread_ts, summary.tasks, summary.failures) == ("2.2", list("abcdefg"), 7)
    dag.settle(summary)
    assert dag.resolve() == []  # the DAG message's own incident closed with its tasks


def test_a_timed_out_run_is_resolved_by_the_dag_success_only(dag):
    dag.posted(dag.fail(task="a"), ts="3.1")
    dag.fail(task="b")  # folded: the DAG message names it
    dag.posted(dag.dag_fail(reason="timed_out"), ts="3.3")
    [a] = dag.resolve("a")
    assert a.thread_ts == "3.1"
    dag.settle(a)
    assert dag.resolve("b") == []  # b is fine, the run's timeout is not over by that
    [run] = dag.resolve()
    assert (run.thread_ts, run.tasks) == ("3.3", ["b"])


def test_once_says_a_notice_once_per_period(dag, clock):
    assert r.once(dag.state, clock(), "localhost-links", 86400)
    assert not r.once(dag.state, clock(), "localhost-links", 86400)
    clock.advance(86401)
    assert r.once(dag.state, clock(), "localhost-links", 86400)


# ---------------------------------------------------------------------------- bounds


def test_state_is_bounded(clock):
    dag = Dag(clock, max_keys=20, max_runs=10)
    for i in range(60):
        d = dag.fail(task=f"t{i}" + "x" * 200, run=f"run_{i}")
        if d.send:
            dag.posted(d)
        r.prune(dag.state, clock(), dag.settings)
        clock.advance(1)
    assert len(dag.state["keys"]) <= 20 and len(dag.state["runs"]) <= 10
    for i in range(30):
        dag.fail(task="same", run="r", try_number=i)
    assert len(dag.state["keys"]["same"]["events"]) == r.MAX_EVENTS_PER_KEY
    sending = dag.fail(task="p", run="p")  # its post is under way: replies queue on it
    for i in range(r.MAX_PENDING + 20):
        r._queue(dag.state, sending.thread_id, {"i": i})
    pending = dag.state["threads"][sending.thread_id]["pending"]
    assert len(pending) == r.MAX_PENDING and pending[-1]["more"] == 20


def test_old_closed_keys_and_their_threads_are_dropped(dag, clock):
    dag.posted(dag.fail())
    dag.settle(dag.resolve("load")[0])
    clock.advance(7 * 3600)
    r.prune(dag.state, clock(), dag.settings)
    assert dag.state["keys"] == {} and len(dag.state["runs"]) == len(dag.state["threads"]) == 1
    clock.advance(2 * 86400)  # runs are kept two days, their threads with them
    r.prune(dag.state, clock(), dag.settings)
    assert dag.state["runs"] == {} and dag.state["threads"] == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"window": 0}, "window=0: the storm-control window must be positive", id="window"),
        pytest.param({"task_posts_per_run": 0}, "task_posts_per_run=0: must be at least 1", id="posts"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        r.Settings(**kwargs)
