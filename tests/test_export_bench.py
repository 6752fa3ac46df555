"""A tiny run of bench/ledger_scale.py: the synthetic ledger is a real ledger."""

import importlib.util
import json
from pathlib import Path

from rsr import open_db
from rsr.db import SCHEMA_SQL

BENCH = Path(__file__).resolve().parent.parent / "bench" / "ledger_scale.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("ledger_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_ledger_is_consistent_and_exports(db_path, invoke):
    assert load_bench().build(db_path, prompts=40, per_prompt=5, response_chars=80) == 200
    db = open_db(db_path)
    # the bulk build fills the counters the triggers would have kept
    fast = db.execute("select * from prompt_progress order by prompt_id").fetchall()
    slow = db.execute("select * from prompt_progress_slow order by prompt_id").fetchall()
    assert fast == slow
    verdicts = db.execute(
        "select prompt_id, verifier, passed, failed, unparsed, distinct_passed from verdicts"
        " where passed + failed + unparsed > 0 order by 1, 2").fetchall()
    assert verdicts == db.execute(
        "select * from verifier_progress_slow order by 1, 2").fetchall()
    triggers = db.execute("select count(*) from sqlite_master where type = 'trigger'").fetchone()[0]
    assert triggers == SCHEMA_SQL.count("create trigger")
    solved = db.execute(
        """select count(distinct r.prompt_id) from rollouts r join scores s on s.rollout_id = r.id
           where s.passed = 1 and r.truncated = 0 and r.error is null"""
    ).fetchone()[0]
    result = invoke("export", db_path, "--format", "sft")
    assert result.stderr == f"Exported {solved} rows (sft, verifier math)\n"
    stats = json.loads(invoke("stats", db_path, "--json").stdout)
    assert stats["prompts"]["total"] == 40 and stats["rollouts"]["total"] == 200
    assert stats["prompts"]["satisfied"] == solved
