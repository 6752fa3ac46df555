"""rsr sample against a server that faults 30% of its requests: every kind of
fault in one run, then everything the server answered is checked against the
ledger and the run's summary."""

import re
from collections import Counter

import pytest
from faultserver import CLIENT_KIND, FAULTS, FAULTS_TRANSIENT, FaultServer, default_responder
from proc import integrity, query, rsr, write_prompts

PROMPTS = 500
MAX_ROLLOUTS = 4
MAX_RETRIES = 2


def parse_faults(line):
    "{kind: count} from a summary line's '; faults http_429 12, timeout 3' part."
    match = re.search(r"; faults ([^;]+)$", line.strip())
    assert match, line
    return {kind: int(count.replace(",", "")) for kind, count in
            (part.rsplit(" ", 1) for part in match.group(1).split(", "))}


def expected_faults(log):
    "What the client should count, from the server's log."
    counts = Counter()
    for entry in log:
        if entry.fault in FAULTS_TRANSIENT:
            counts[CLIENT_KIND[entry.fault]] += 1
        elif entry.fault == "short" and len(entry.choices) < entry.n:
            counts["short"] += 1
        elif entry.fault == "empty":
            counts["empty"] += len(entry.choices)
    return dict(counts)


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory):
    "500 prompts x 4 rollouts through a server that faults 30% of requests."
    folder = tmp_path_factory.mktemp("faults")
    db_path = folder / "run.db"
    assert rsr("load", db_path, write_prompts(folder / "p.jsonl", PROMPTS)).returncode == 0
    with FaultServer(seed=8, rate=0.3, hang_s=2.5, slow_s=0.1) as server:
        result = rsr(
            "sample", db_path, "--base-url", server.url, "--model", "m", "--verifier", "exact",
            "--target", "sft", "--max-rollouts", MAX_ROLLOUTS, "--step-size", 4, "--seed", 3,
            "--concurrency", 32, "--request-timeout", 2.0, "--max-retries", MAX_RETRIES,
            "--retry-base-delay", 0.01, "--silent", timeout=240,
        )
    return db_path, server, result


def test_every_prompt_ends_satisfied_or_out_of_budget(faulted_run):
    db_path, server, result = faulted_run
    assert result.returncode == 0, result.stderr
    assert integrity(db_path) == [("ok",)]
    # Every fault kind was met (the schedule is seeded: this holds every time).
    assert set(server.counts()) - {None} == set(FAULTS)
    rows = query(db_path, """
        select p.id, coalesce(pr.rollouts, 0), coalesce(v.passed, 0)
        from prompts p left join progress pr on pr.prompt_id = p.id
        left join verdicts v on v.prompt_id = p.id and v.verifier = 'exact'""")
    assert len(rows) == PROMPTS
    undone = [r for r in rows if not (r[2] >= 1 or r[1] == MAX_ROLLOUTS)]
    assert undone == []
    assert max(r[1] for r in rows) == MAX_ROLLOUTS
    assert "0 pending" in result.stderr


def test_no_duplicates_and_nothing_lost(faulted_run):
    db_path, server, _ = faulted_run
    # Sample indexes are 0..k-1 per prompt; steps received all they asked for.
    gaps = query(db_path, """select prompt_id from rollouts group by prompt_id
                             having max(sample_index) + 1 != count(*)""")
    assert gaps == []
    assert query(db_path, "select count(*) from steps where received != requested") == [(0,)]
    # No rollout was asked for again once it had arrived: every key got at most
    # one answer with choices.
    answered = Counter(e.key for e in server.log if e.choices)
    assert [key for key, times in answered.items() if times > 1] == []
    # Every choice the server delivered is in the ledger, and nothing else is.
    sent = Counter((e.seed, text, reason) for e in server.log if e.choices and e.delivered
                   for _, text, reason in e.choices)
    stored = Counter(query(db_path, """select seed, response, finish_reason from rollouts
                                       where error is null"""))
    assert stored == sent
    # Contents are the engine's, and truncation comes from finish_reason only.
    for e in server.log:
        for index, text, reason in e.choices:
            assert text == ("" if e.fault == "empty" else default_responder(e.seed, index))
    assert query(db_path, "select count(*) from rollouts where truncated != (finish_reason = 'length')") == [(0,)]


def test_errors_are_recorded_per_rollout(faulted_run):
    db_path, server, _ = faulted_run
    attempts = {}
    for e in server.log:
        attempts.setdefault(e.key, []).append(e)
    # Requests that met a transient fault on every attempt failed for good.
    failed = [entries for entries in attempts.values()
              if all(e.fault in FAULTS_TRANSIENT for e in entries)]
    assert failed, "the seeded schedule should make some requests fail for good"
    assert all(len(entries) == MAX_RETRIES + 1 for entries in failed)
    expected = Counter()
    for entries in failed:
        expected[entries[0].seed] += entries[0].n
    errors = query(db_path, "select seed, error, response, truncated from rollouts where error is not null")
    assert Counter(seed for seed, *_ in errors) == expected
    # The error says what happened on the last attempt.
    wording = {"429": "HTTP 429", "429-retry-after": "HTTP 429", "500": "HTTP 500",
               "502": "HTTP 502", "503": "HTTP 503", "hang": "timeout",
               "close": "connection error", "malformed": "malformed",
               "zero-choices": "no choices"}
    last = {entries[0].seed: entries[-1].fault for entries in failed}
    for seed, error, response, truncated in errors:
        assert wording[last[seed]] in error, (last[seed], error)
        assert response is None and truncated == 0
    # Errored rollouts spend budget but never count toward the target.
    assert query(db_path, """select count(*) from scores join rollouts on rollouts.id = rollout_id
                             where rollouts.error is not null""") == [(0,)]


def test_summary_counts_each_fault_kind(faulted_run):
    db_path, server, result = faulted_run
    line = result.stderr.strip().splitlines()[-1]
    expected = expected_faults(server.log)
    assert parse_faults(line) == expected
    assert set(expected) >= {"http_429", "http_500", "http_502", "http_503", "timeout",
                            "disconnect", "malformed", "no_choices", "short", "empty"}
    # The runs table keeps the same counts in its one-line summary.
    (summary, status), = query(db_path, "select summary, status from runs where command = 'sample'")
    assert status == "finished" and "\n" not in summary
    assert parse_faults(summary) == expected
    truncated = sum(len(e.choices) for e in server.log if e.fault == "length")
    assert f"{truncated:,} truncated" in line
    errors = query(db_path, "select count(*) from rollouts where error is not null")[0][0]
    assert f"{errors:,} errors" in line
