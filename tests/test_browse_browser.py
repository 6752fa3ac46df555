"""rsr browse in headless Chromium, as a person reads it: the run summary of a
ledger that `rsr sample` wrote (against a real HTTP server), a prompt's page
with the pair `rsr export` writes, the tables people scan, and model output
that tries to run a script.

Screenshots go to $RSR_TEST_ARTIFACTS (or the test's tmp_path)."""

import json
import sqlite3
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from helpers import add_prompt, add_rollout, add_score, write_jsonl
from servers import OpenAIStub, free_port, wait_for_http

from rsr import open_db

pytestmark = pytest.mark.slow

XSS = '<script>window.rsrHacked = 1</script><img src="x" onerror="window.rsrHacked = 2">'

PROMPTS = [
    {"id": "easy-1", "question": "easy: what is 2+2?", "answer": "4", "subject": "arithmetic"},
    {"id": "easy-2", "question": "easy: what is 3+1?", "answer": "4", "subject": "arithmetic"},
    {"id": "mixed/1", "question": "mixed: what is 2*2?", "answer": "4", "subject": "algebra"},
    {"id": "mixed-2", "question": "mixed: " + XSS, "answer": "4", "subject": "algebra"},
    {"id": "hard-1", "question": "hard: what is 7*6?", "answer": "42", "subject": "algebra"},
]
# What the model says, in turn, to each kind of prompt.
ANSWERS = {"easy": ["4"], "hard": ["I think 41"],
           "mixed": ["I think 5", XSS + " 5", "4", "I think 6"]}


def scripted_model():
    "A responder answering each prompt from ANSWERS in turn."
    seen, lock = Counter(), threading.Lock()

    def respond(body):
        question = body["messages"][-1]["content"]
        kind = question.split(":")[0]
        with lock:
            n = seen[question]
            seen[question] += 1
        return ANSWERS[kind][n % len(ANSWERS[kind])]

    return respond


@pytest.fixture
def sampled_ledger(db_path, tmp_path, invoke):
    "A ledger written by rsr load and rsr sample --target dpo (exact verifier)."
    assert invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", PROMPTS)).exit_code == 0
    with OpenAIStub(responder=scripted_model()) as stub:
        result = invoke("sample", db_path, "--base-url", stub.url, "--model", "stub",
                        "--verifier", "exact", "--target", "dpo", "--max-rollouts", "6",
                        "--step-size", "2", "--silent")
    assert result.exit_code == 0, result.output
    return db_path


def serve(db_path):
    "rsr browse on a free port: (process, the URL it printed)."
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "rsr", "browse", str(db_path),
                                "--port", str(port)], stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    wait_for_http(f"http://127.0.0.1:{port}/-/versions.json", timeout=60, process=process)
    return process, line


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking"])
        try:
            yield chromium.new_page(viewport={"width": 1280, "height": 900})
        finally:
            chromium.close()


@pytest.fixture
def artifacts(tmp_path):
    folder = Path(os.environ.get("RSR_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browse(browser):
    "browse(db_path) -> the URL of its run summary, served until the test ends."
    processes = []

    def start(db_path):
        process, line = serve(db_path)
        processes.append(process)
        url = line.split(" at ")[1].split()[0]
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def shot(page, artifacts, name):
    path = artifacts / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_browse_summary_prompt_page_and_tables_of_a_sampled_run(
        sampled_ledger, browse, browser, artifacts, invoke, tmp_path):
    page = browser
    stats = json.loads(invoke("stats", sampled_ledger, "--json").stdout)
    url = browse(sampled_ledger)
    assert url.endswith("/run")
    home = url.rsplit("/", 1)[0] + "/"

    # / opens the run summary: what rsr stats says, in words and pictures
    page.goto(home)
    assert page.url == url
    summary = page.locator(".rsr-summary")
    assert summary.locator(".rsr-target").inner_text() == stats["target"] == "dpo"
    assert summary.locator(".rsr-verifier").inner_text().startswith("exact")
    assert summary.locator(".rsr-budget").inner_text() == "6 rollouts, 8 steps per prompt"
    counts = {key: summary.locator(f".rsr-{key}").inner_text()
              for key in ("satisfied", "exhausted", "pending")}
    assert counts == {key: str(stats["prompts"][key]) for key in counts}
    assert counts == {"satisfied": "2", "exhausted": "3", "pending": "0"}
    rate = stats["pass_rate"]
    assert summary.locator(".rsr-pass-rate").inner_text().startswith(
        f"{100 * rate['rate']:.1f}% ({rate['passed']} passed, {rate['failed']} failed")
    assert summary.locator(".rsr-saved").inner_text() == str(stats["draws"]["saved"])
    assert summary.locator(".rsr-spent").inner_text() == str(stats["draws"]["spent"]) == "26"
    assert summary.locator(".rsr-histogram rect.rsr-bar").count() == 7
    bars = summary.locator(".rsr-histogram rect.rsr-bar title").all_text_contents()
    assert bars == [f"{b}: {n}" for b, n in stats["pass_rate_buckets"].items()]
    points = summary.locator(".rsr-yield circle.rsr-point title").all_text_contents()
    assert points == [f"{p['k']}: {p['pass_at_k']}" for p in stats["pass_at_k"]]
    runs = summary.locator("tr.rsr-run")
    assert runs.count() == 2  # load and sample
    assert runs.nth(1).locator(".rsr-run-status").inner_text() == "finished"
    shot(page, artifacts, "browse-summary.png")

    # a prompt's page, with export's options in the URL: the pair shown is the pair written
    page.goto(url + "/prompts/mixed~2F1?pairs=best-worst&max-pairs-per-prompt=2")
    assert page.locator(".rsr-prompt .rsr-state").inner_text() == "satisfied"
    assert page.locator(".rsr-prompt .rsr-answer").inner_text() == "4"
    assert page.locator(".rsr-candidate").count() == 4
    shown = [json.loads(t) for t in page.locator("pre.rsr-row").all_text_contents()]
    exported = tmp_path / "dpo.jsonl"
    assert invoke("export", sampled_ledger, "--format", "dpo", "--pairs", "best-worst",
                  "--max-pairs-per-prompt", "2", "--where", "id = 'mixed/1'", "--include-metadata",
                  "-o", exported).exit_code == 0
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(rows) == 2
    assert shown == [{k: v for k, v in row.items() if k != "metadata"} for row in rows]
    chosen = page.locator(".rsr-pick-dpo a.rsr-chosen").first.get_attribute("href")
    assert chosen == f"#rollout-{rows[0]['metadata']['chosen_rollout_id']}"
    marked = page.locator(f"{chosen} .rsr-mark").all_inner_texts()
    assert "dpo chosen" in marked and "sft" in marked
    verdicts = page.locator(".rsr-candidate .rsr-verdict").all_inner_texts()
    assert sorted(verdicts) == ["fail", "fail", "fail", "pass"]
    shot(page, artifacts, "browse-prompt.png")

    # the prompt's rollouts in the list, with their verdicts; each links back to its prompt
    page.click("text=in the rollouts list")
    page.wait_for_load_state()
    # in the order they were written (rollout id), as the ledger has them
    written = [f"exact: {'pass' if passed else 'fail'}" for (passed,) in sqlite3.connect(sampled_ledger).execute(
        "select s.passed from rollouts r join scores s on s.rollout_id = r.id "
        "where r.prompt_id = 'mixed/1' order by r.id")]
    assert sorted(written) == ["exact: fail"] * 3 + ["exact: pass"]
    assert page.locator("td.col-verdict").all_inner_texts() == written
    page.locator("td.col-prompt_id a").first.click()
    page.wait_for_load_state()
    assert page.locator(".rsr-prompt h2").inner_text().startswith("Prompt mixed/1")

    # prompts with pass rate, rollouts and state, faceted by a metadata field
    page.goto(url + "/prompt_overview?_facet_metadata=subject&_sort=prompt_id")
    states = dict(zip(page.locator("td.col-prompt_id a").all_inner_texts(),
                      page.locator("td.col-prompt_id .rsr-state").all_inner_texts()))
    assert states == {"easy-1": "exhausted", "easy-2": "exhausted", "hard-1": "exhausted",
                      "mixed-2": "satisfied", "mixed/1": "satisfied"}
    assert page.locator("td.col-pass_rate").all_inner_texts() == ["1.0", "1.0", "0.0", "0.25",
                                                                   "0.25"]
    page.click(".facet-info-name:has-text('metadata.subject') ~ ul a:has-text('algebra')")
    page.wait_for_load_state()
    assert page.locator("td.col-prompt_id a").all_inner_texts() == ["hard-1", "mixed-2", "mixed/1"]
    shot(page, artifacts, "browse-prompts.png")


def test_browse_model_output_is_text_on_every_page(sampled_ledger, browse, browser):
    page = browser
    url = browse(sampled_ledger)
    rollout = open_db(sampled_ledger).execute(
        "select id from rollouts where response like '<script>%'").fetchone()[0]
    paths = ["", "/prompts/mixed-2", "/prompts", "/rollouts", f"/rollouts/{rollout}",
             "/rollout_verdicts", "/prompt_overview", "/rollouts_scored", "/-/dpo-preview",
             "/prompt_rollouts?prompt_id=mixed-2", "/truncated_rollouts"]
    for path in paths:
        page.goto(url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.rsrHacked") == "undefined", path
        assert page.locator("img[onerror], body script:has-text('rsrHacked')").count() == 0, path
    page.goto(url + "/prompts/mixed-2")
    assert XSS in page.locator(".rsr-messages").inner_text()
    assert XSS + " 5" in page.locator(".rsr-response").all_inner_texts()


def test_browse_rollouts_of_a_big_ledger_fit_a_page(db_path, browse, browser, artifacts):
    db = open_db(db_path)
    long_text = "\n".join(f"Step {i}: a line of working that goes on and on." for i in range(200))
    for p in range(50):
        add_prompt(db, f"p{p}", content=f"Question {p}")
        for i in range(20):
            add_score(db, add_rollout(db, f"p{p}", i, f"{long_text}\nThe answer is {i}",
                                      reasoning=long_text), "exact", i % 2)
    assert db.execute("select count(*) from rollouts").fetchone()[0] == 1000
    url = browse(db_path)
    page = browser
    for table in ("rollouts", "rollout_verdicts"):
        page.goto(f"{url}/{table}")
        assert page.locator("table.rows-and-columns tbody tr").count() == 100
        height = page.evaluate("document.documentElement.scrollHeight")
        shot(page, artifacts, f"browse-{table}.png")
        assert height < 10_000, (table, height)
    assert page.locator("td.col-verdict").first.inner_text() == "exact: fail"
    # the full text is one click away
    page.locator("td.col-response a.rsr-full-link").first.click()
    page.wait_for_load_state()
    assert page.locator("td.col-response").inner_text() == f"{long_text}\nThe answer is 0"
