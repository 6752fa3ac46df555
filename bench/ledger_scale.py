"""How rsr stats and rsr export scale: a synthetic ledger of a million rollouts.

Builds a ledger of PROMPTS x PER_PROMPT rollouts (default 100,000 x 10) with
plain SQL (no model, no Python loop per row), then times the real commands as
a user runs them:

    rsr stats RUN.db --json            goal: under 15 s at 1,000,000 rollouts
    rsr export RUN.db --format sft     goal: under 30 s
    rsr export RUN.db --format dpo

and prints the database size per rollout. The data is deterministic: prompt i
has a difficulty i % 11 that sets how many of its rollouts pass; about 2% of
rollouts are truncated and 0.5% errored; responses average about
--response-chars characters.

    python bench/ledger_scale.py
    python bench/ledger_scale.py --prompts 1000 --per-prompt 4 --db /tmp/small.db
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rsr import open_db
from rsr.db import backfill_arm_counters, m001_backfill_progress_counters

TRIGGERS_SQL = "select name from sqlite_master where type = 'trigger'"

FILLER = (
    "Let us work through the problem step by step, checking each intermediate result "
    "carefully before moving on to the next part of the calculation. "
)

PROMPTS_SQL = """
with recursive n(i) as (select 0 union all select i + 1 from n where i < :prompts - 1)
insert into prompts (id, messages, metadata, source)
select
    'p' || i,
    json_array(json_object('role', 'user', 'content',
        'Question ' || i || ': what is ' || (i % 997) || ' + ' || (i * 7 % 101) || '?')),
    json_object('answer', cast((i % 997) + (i * 7 % 101) as text),
                'subject', case i % 4 when 0 then 'algebra' when 1 then 'geometry'
                                      when 2 then 'counting' else 'number theory' end,
                'level', 1 + i % 5),
    'bench:' || i
from n
"""

# rollout j of prompt i passes when ((i * 31 + j * 17) % 10) < difficulty (i % 11)
ROLLOUTS_SQL = """
with recursive n(i) as (select 0 union all select i + 1 from n where i < :prompts - 1),
k(j) as (select 0 union all select j + 1 from k where j < :per_prompt - 1)
insert into rollouts (id, prompt_id, sample_index, step, run_id, model, sampler, response,
                      finish_reason, truncated, prompt_tokens, completion_tokens, latency_ms,
                      error)
select
    i * :per_prompt + j + 1,
    'p' || i,
    j,
    1 + j / 4,
    1,
    'bench-model',
    'bench',
    case when (i + j * 13) % 200 = 0 then null
         else substr(:filler_long, 1 + (i * 13 + j * 7) % 50,
                     (:response_chars / 2) + (i * 131 + j * 71) % :response_chars)
              || ' The answer is ' || ((i % 997) + (i * 7 % 101)
                 + case when (i * 31 + j * 17) % 10 < i % 11 then 0 else 1 + j end) || '.'
    end,
    case when (i + j * 13) % 200 = 0 then null
         when (i * 7 + j * 3) % 50 = 0 then 'length' else 'stop' end,
    (i * 7 + j * 3) % 50 = 0 and (i + j * 13) % 200 != 0,
    40 + i % 60,
    case when (i + j * 13) % 200 = 0 then null else 60 + (i * 131 + j * 71) % 700 end,
    200 + (i * 17 + j * 29) % 3000,
    case when (i + j * 13) % 200 = 0 then 'HTTP 500 after 5 retries' end
from n, k
"""

SCORES_SQL = """
insert into scores (rollout_id, verifier, score, passed, extracted)
select id, 'math', passed, passed, null
from (
    select id, ((cast(substr(prompt_id, 2) as integer) * 31 + sample_index * 17) % 10
               < cast(substr(prompt_id, 2) as integer) % 11) as passed
    from rollouts where error is null
)
"""

STEPS_SQL = """
insert into steps (prompt_id, step, run_id, requested, received, finished_at)
select prompt_id, step, 1, count(*), count(*), max(created_at)
from rollouts group by prompt_id, step
"""

RUN_SQL = """
insert into runs (id, command, config, rsr_version, status, started_at, finished_at, summary)
values (1, 'sample', :config, 'bench', 'finished', '2026-01-01T00:00:00.000Z',
        '2026-01-01T01:00:00.000Z', 'synthetic')
"""


def build(path, prompts=100_000, per_prompt=10, response_chars=600):
    "Build a synthetic ledger at path; returns the number of rollouts."
    db = open_db(path)
    # Bulk inserts skip the per-row counter triggers; the counters are then
    # filled once from the from-scratch views, and open_db() puts the
    # triggers back.
    triggers = [row[0] for row in db.execute(TRIGGERS_SQL)]
    filler = FILLER * (1 + 2 * response_chars // len(FILLER))
    with db.atomic():
        for name in triggers:
            db.execute(f"drop trigger {name}")  # names read from sqlite_master
        db.execute(RUN_SQL, {"config": '{"target": "sft", "max_rollouts": 16, "max_steps": 8}'})
        db.execute(PROMPTS_SQL, {"prompts": prompts})
        db.execute(
            ROLLOUTS_SQL,
            {
                "prompts": prompts,
                "per_prompt": per_prompt,
                "filler_long": filler,
                "response_chars": response_chars,
            },
        )
        db.execute(SCORES_SQL)
        db.execute(STEPS_SQL)
        m001_backfill_progress_counters(db)
        # No response hashes here: every passing rollout is its own kind.
        db.execute("update verdicts set distinct_passed = passed")
        backfill_arm_counters(db)
    db.close()
    db = open_db(path)
    db.execute("pragma wal_checkpoint(truncate)")
    count = db.execute("select count(*) from rollouts").fetchone()[0]
    db.close()
    return count


def timed(args):
    """Run an rsr command; (wall seconds, CPU seconds, stderr's last line).

    CPU time (user + system) is reported beside wall time because on a shared
    machine the wall time also measures everyone else's load.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "rsr", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise SystemExit(f"rsr {' '.join(args)} failed:\n{result.stderr}")
    lines = result.stderr.strip().splitlines()
    return elapsed, cpu, lines[-1] if lines else ""


def early_stop_queries(path):
    "Seconds for the pending-prompts question: its first page, and a full pass."
    from rsr import early_stop

    db = open_db(path, readonly=True)
    target = early_stop.parse_target("sft", 16)
    params = early_stop.state_params(target, "math", 16, 8)
    page_sql = early_stop.pending_sql(target)
    count_sql = (f"select count(*) from ({early_stop.prompt_state_sql(target)})"
                 " where not satisfied and within_budget or incomplete")
    start = time.perf_counter()
    rows = db.execute(page_sql, dict(params, after=0, page=256)).fetchall()
    first_page = time.perf_counter() - start
    start = time.perf_counter()
    pending = db.execute(count_sql, params).fetchone()[0]
    full = time.perf_counter() - start
    db.conn.close()
    return first_page, len(rows), full, pending


def resume_startup(path):
    """Seconds from starting `rsr sample` on the ledger to its first request
    reaching a server; the run is then stopped."""
    sys.path.insert(0, str(Path(__file__).parent))
    import json
    import signal
    import urllib.request

    from common import start_stub

    server, url = start_stub(0.0)
    stats_url = url.replace("/v1", "/stats")
    try:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "rsr", "sample", str(path), "--base-url", url, "--model", "stub",
             "--verifier", "math", "--max-rollouts", "16", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None:
            with urllib.request.urlopen(stats_url) as response:
                if json.load(response)["requests"]:
                    break
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        process.send_signal(signal.SIGINT)
        process.wait(60)
    finally:
        server.kill()
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--per-prompt", type=int, default=10)
    parser.add_argument("--response-chars", type=int, default=600)
    parser.add_argument("--db", help="ledger path (default: a temporary file, removed after)")
    parser.add_argument("--reuse", action="store_true", help="time the existing ledger at --db")
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="rsr-bench-")
    path = Path(args.db or os.path.join(folder, "bench.db"))
    if args.reuse:
        with open_db(path, readonly=True) as db:
            rollouts = db.execute("select count(*) from rollouts").fetchone()[0]
        print(f"reusing {path}: {rollouts:,} rollouts")
    elif path.exists():
        raise SystemExit(f"{path} exists; give a new path, or --reuse it")
    else:
        start = time.perf_counter()
        rollouts = build(path, args.prompts, args.per_prompt, args.response_chars)
        print(
            f"built {rollouts:,} rollouts ({args.prompts:,} prompts x {args.per_prompt}) "
            f"in {time.perf_counter() - start:.1f} s"
        )
    size = path.stat().st_size
    print(f"database: {size / 1e6:,.1f} MB, {size / rollouts:,.0f} bytes per rollout", flush=True)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for label, command in [
        ("rsr stats --json", ["stats", str(path), "--json"]),
        (
            "rsr export --format sft",
            ["export", str(path), "--format", "sft", "-o", os.path.join(folder, "sft.jsonl")],
        ),
        (
            "rsr export --format dpo",
            ["export", str(path), "--format", "dpo", "-o", os.path.join(folder, "dpo.jsonl")],
        ),
        (
            "rsr export --format dpo --dedupe --max-pairs-per-prompt 4",
            [
                "export",
                str(path),
                "--format",
                "dpo",
                "--dedupe",
                "--max-pairs-per-prompt",
                "4",
                "-o",
                os.path.join(folder, "dpo4.jsonl"),
            ],
        ),
    ]:
        seconds, cpu, last = timed(command)
        note = f"  ({last})" if last else ""
        print(f"{label}: {seconds:.2f} s wall, {cpu:.2f} s CPU{note}", flush=True)
    first_page, rows, full, pending = early_stop_queries(path)
    print(f"pending-prompts query, first page of {rows}: {first_page:.3f} s "
          f"(goal < 0.5 s: {'met' if first_page < 0.5 else 'NOT met'})", flush=True)
    print(f"pending-prompts query, full pass ({pending:,} pending): {full:.3f} s", flush=True)
    startup = resume_startup(path)
    print(f"resume start-up, rsr sample to first request: {startup:.2f} s "
          f"(goal < 2 s: {'met' if startup < 2 else 'NOT met'})", flush=True)
    for name in ("sft.jsonl", "dpo.jsonl", "dpo4.jsonl"):
        Path(folder, name).unlink(missing_ok=True)
    if not args.db:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
