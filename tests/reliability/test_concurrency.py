"""Concurrent use of one ledger: readers (rsr stats, rsr export, Datasette) while
rsr sample writes; rsr verify writing beside rsr sample; a second rsr sample
refused while the first holds the ledger."""

import json
import os
import signal
import sqlite3
import time
import urllib.parse
import urllib.request

import pytest
from faultserver import FaultServer
from proc import assert_clean_error, integrity, load_ledger, query, rsr, start_rsr
from servers import free_port, wait_for_http

from rsr.commands import cli

SAMPLE = ["--model", "m", "--verifier", "exact", "--seed", 2, "--max-rollouts", 8,
          "--step-size", 2, "--concurrency", 4, "--silent"]


RECIPE = """
sampler: {{name: openai, base_url: "{url}", model: m, concurrency: 4}}
sampling: {{target: sft, max_rollouts: 8, step_size: 2, seed: 2}}
verifier: {{name: exact}}
outputs: {{dir: "{out}", exports: [{{format: sft, file: sft.jsonl}}]}}
"""


@pytest.fixture
def ledger(tmp_path):
    return load_ledger(tmp_path, 60)


@pytest.fixture
def slow_server():
    "No faults; every answer takes 50 ms, so a run lasts a while."
    with FaultServer(rate=0.0, delay_s=0.05) as server:
        yield server


def wait_for_requests(server, count, process, deadline=60):
    "Until the server has seen count requests (the sampler is past start-up)."
    end = time.monotonic() + deadline
    while len(server.log) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "the sampler sent no requests"
        time.sleep(0.05)


def wait_for_scores(ledger, process, deadline=60):
    "Until the ledger holds a score: exporting by a verifier needs one."
    end = time.monotonic() + deadline
    while True:
        conn = sqlite3.connect(ledger)
        try:
            if conn.execute("select count(*) from scores").fetchone()[0]:
                return
        finally:
            conn.close()
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "no rollout was scored"
        time.sleep(0.05)


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_stats_export_and_datasette_read_while_sample_writes(ledger, slow_server, tmp_path, runner):
    port = free_port()
    browse = start_rsr("browse", ledger, "--port", port)
    sampler = None
    try:
        wait_for_http(f"http://127.0.0.1:{port}/-/versions.json", process=browse)
        sampler = start_rsr("sample", ledger, "--base-url", slow_server.url, *SAMPLE)
        wait_for_requests(slow_server, 1, sampler)
        wait_for_scores(ledger, sampler)
        sql = urllib.parse.quote("select count(*) as n from rollouts")
        seen, reads_during = [], 0
        # Read until the sampler finishes (bounded: it has finite work).
        for _ in range(500):
            running = sampler.poll() is None
            rows = get_json(f"http://127.0.0.1:{port}/run.json?sql={sql}&_shape=array")
            table = get_json(f"http://127.0.0.1:{port}/run/rollouts.json?_size=5&_sort_desc=id&_shape=objects")
            # The newest rows first, at least as many as the count read just before.
            ids = [row["id"] for row in table["rows"]]
            assert min(5, rows[0]["n"]) <= len(ids) <= 5 and ids == sorted(ids, reverse=True), ids
            # the run summary is rsr stats over Datasette's read connection
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/run", timeout=30) as page:
                assert b'class="rsr-summary"' in page.read()
            stats = runner.invoke(cli, ["stats", str(ledger), "--json"])
            assert stats.exit_code == 0, stats.output
            data = json.loads(stats.stdout)
            out = tmp_path / "sft.jsonl"
            export = runner.invoke(cli, ["export", str(ledger), "--format", "sft",
                                         "--verifier", "exact", "-o", str(out)])
            assert export.exit_code == 0, export.output
            assert all(json.loads(line)["messages"] for line in out.read_text().splitlines())
            assert "locked" not in stats.output + export.output
            seen.append(rows[0]["n"])
            if running and sampler.poll() is None:
                reads_during += 1
            else:
                break
        _, stderr = sampler.communicate(timeout=120)
        assert sampler.returncode == 0, stderr
    finally:
        if sampler is not None and sampler.poll() is None:
            sampler.kill()
        browse.send_signal(signal.SIGINT)
        try:
            _, browse_err = browse.communicate(timeout=20)
        except Exception:
            browse.kill()
            raise
    assert "locked" not in stderr + browse_err
    assert "Traceback" not in browse_err
    # The readers saw the ledger grow while it was written, never shrink.
    final = query(ledger, "select count(*) from rollouts")[0][0]
    assert reads_during >= 2, seen
    assert seen == sorted(seen) and any(0 < n < final for n in seen), (seen, final)
    # The last stats counted at least the rollouts read before it, at most the final count.
    assert seen[-1] <= data["rollouts"]["total"] <= final, (seen, data["rollouts"], final)
    # Processes, not only in-process calls, read it too (once, at the end).
    for args in (["stats", ledger], ["export", ledger, "--format", "dpo", "--verifier", "exact"]):
        result = rsr(*args)
        assert result.returncode == 0 and "locked" not in result.stderr, result.stderr


def test_second_sampler_refuses_clearly(ledger, slow_server):
    first = start_rsr("sample", ledger, "--base-url", slow_server.url, *SAMPLE)
    try:
        wait_for_requests(slow_server, 1, first)
        before = query(ledger, "select id, command, status from runs")
        second = rsr("sample", ledger, "--base-url", slow_server.url, *SAMPLE)
        line = assert_clean_error(second, "another rsr sample", str(ledger))
        assert "already writing" in line
        # rsr run on the same ledger is refused the same way.
        recipe = ledger.parent / "recipe.yaml"
        recipe.write_text(RECIPE.format(url=slow_server.url, out=ledger.parent / "out"))
        third = rsr("run", recipe, "--db", ledger)
        assert_clean_error(third, "another rsr sample", "already writing")
        # The refused sampler recorded nothing and wrote nothing.
        assert query(ledger, "select id, command, status from runs") == before
        assert first.poll() is None
        # A killed sampler releases the ledger at once.
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        again = rsr("sample", ledger, "--base-url", slow_server.url, *SAMPLE, timeout=300)
        assert again.returncode == 0, again.stderr
    finally:
        if first.poll() is None:
            first.kill()
    assert integrity(ledger) == [("ok",)]


def test_verify_writes_beside_sample(ledger, slow_server):
    sampler = start_rsr("sample", ledger, "--base-url", slow_server.url, *SAMPLE)
    runs = []
    try:
        wait_for_requests(slow_server, 1, sampler)
        for _ in range(100):
            if sampler.poll() is not None:
                break
            result = rsr("verify", ledger, "--verifier", "math", "--batch-size", 16, timeout=120)
            assert result.returncode == 0, result.stderr
            assert "locked" not in result.stderr
            runs.append(result.stderr)
        _, stderr = sampler.communicate(timeout=120)
        assert sampler.returncode == 0, stderr
    finally:
        if sampler.poll() is None:
            sampler.kill()
    assert len(runs) >= 1
    last = rsr("verify", ledger, "--verifier", "math")
    assert last.returncode == 0, last.stderr
    # Both wrote: every valid rollout has exactly one score from each verifier.
    assert query(ledger, """select count(*) from rollouts where error is null and truncated = 0
                            and (select count(*) from scores where rollout_id = rollouts.id) != 2""") == [(0,)]
    assert query(ledger, """select count(*) from (select * from prompt_progress
                            except select * from prompt_progress_slow)""") == [(0,)]
    assert integrity(ledger) == [("ok",)]
