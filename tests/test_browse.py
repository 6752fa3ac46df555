import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import open_db
from rsr.browse import load_metadata, make_datasette


def build_ledger(db_path):
    db = open_db(db_path)
    add_prompt(db, "easy-1", content="What is 2+2?\nAnswer with a number.", subject="arithmetic")
    add_prompt(db, "hard/2", content="Integrate x^2 from 0 to 3.", subject="calculus")
    for i, (response, passed) in enumerate([("4", 1), ("The answer is 4", 1), ("5", 0)]):
        add_score(db, add_rollout(db, "easy-1", i, response), "math", passed)
    add_score(db, add_rollout(db, "hard/2", 0, "It is 9", reasoning="x^3/3 at 3"), "math", 1)
    add_score(db, add_rollout(db, "hard/2", 1, "It is 27"), "math", 0)
    add_score(db, add_rollout(db, "hard/2", 2, "It is 3"), "math", 0)
    add_rollout(
        db,
        "hard/2",
        3,
        "Let me compute x^3/3 evaluated at",
        truncated=1,
        finish_reason="length",
        completion_tokens=512,
    )
    return db_path


def test_browse_metadata_names_the_ledger_and_hides_internals():
    metadata = load_metadata("run")
    tables = metadata["databases"]["run"]["tables"]
    assert {name for name, t in tables.items() if t.get("hidden")} >= {
        "_sqlite_migrations",
        "progress",
        "verdicts",
    }
    assert set(metadata["databases"]["run"]["queries"]) == {
        "hardest_prompts",
        "truncated_rollouts",
        "pass_rate_by_field",
        "prompt_rollouts",
        "dpo_pair_preview",
    }


def test_browse_canned_queries_answer(db_path):
    build_ledger(db_path)
    datasette = make_datasette(db_path)

    async def fetch(path):
        response = await datasette.client.get(path)
        assert response.status_code == 200, path
        return response.json()

    async def run():
        await datasette.invoke_startup()
        return {
            "hardest": await fetch("/run/hardest_prompts.json?verifier=&_shape=array"),
            "truncated": await fetch("/run/truncated_rollouts.json?_shape=array"),
            "by_field": await fetch("/run/pass_rate_by_field.json?field=subject&_shape=array"),
            "prompt": await fetch("/run/prompt_rollouts.json?prompt_id=hard/2&_shape=array"),
            "dpo": await fetch("/run/dpo_pair_preview.json?_shape=array"),
        }

    got = asyncio.run(run())
    assert [(r["prompt_id"], r["pass_rate"]) for r in got["hardest"]] == [
        ("hard/2", 0.3333),
        ("easy-1", 0.6667),
    ]
    assert [(r["prompt_id"], r["completion_tokens"]) for r in got["truncated"]] == [("hard/2", 512)]
    assert [(r["value"], r["pass_rate"]) for r in got["by_field"]] == [
        ("arithmetic", 0.6667),
        ("calculus", 0.3333),
    ]
    assert [
        (r["sample_index"], r["response"], json.loads(r["scores"]) if r["scores"] else None)
        for r in got["prompt"]
    ] == [
        (0, "It is 9", {"math": {"passed": 1, "score": 1.0, "extracted": None}}),
        (1, "It is 27", {"math": {"passed": 0, "score": 0.0, "extracted": None}}),
        (2, "It is 3", {"math": {"passed": 0, "score": 0.0, "extracted": None}}),
        (3, "Let me compute x^3/3 evaluated at", {}),
    ]
    assert [(r["prompt_id"], r["chosen"], r["rejected"]) for r in got["dpo"]] == [
        ("easy-1", "4", "5"),
        ("hard/2", "It is 9", "It is 3"),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(db_path):
    build_ledger(db_path)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rsr", "browse", db_path, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/-/versions.json", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError(process.stderr.read().decode())
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_browse_in_a_real_browser(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server + "/run")
            body = page.inner_text("body")
            for title in (
                "Hardest prompts",
                "Truncated rollouts",
                "Pass rate by metadata field",
                "A prompt with all its rollouts",
                "DPO pair preview",
            ):
                assert title in body
            tables = page.locator("h3 a").all_inner_texts()
            assert "prompts" in tables and "rollouts" in tables
            assert "verdicts" not in tables and "progress" not in tables
            page.screenshot(path=str(tmp_path / "database.png"), full_page=True)

            page.goto(server + "/run/hardest_prompts?verifier=")
            first = page.locator("table.rows-and-columns tbody tr").first
            assert first.locator("td.col-prompt_id").inner_text() == "hard/2"
            assert first.locator(".rsr-role").inner_text() == "user"
            assert first.locator("td.col-pass_rate").inner_text() == "0.3333"

            page.goto(server + "/run/truncated_rollouts")
            assert page.locator("td.col-response_tail").inner_text() == (
                "Let me compute x^3/3 evaluated at"
            )

            page.goto(server + "/run/pass_rate_by_field?field=subject")
            values = page.locator("td.col-value").all_inner_texts()
            assert values == ["arithmetic", "calculus"]

            page.goto(server + "/run/dpo_pair_preview")
            assert page.locator("td.col-chosen").all_inner_texts() == ["4", "It is 9"]
            assert page.locator("td.col-rejected").all_inner_texts() == ["5", "It is 3"]

            # a prompt's page: messages rendered as turns, a link to all its rollouts
            page.goto(server + "/run/prompts/easy-1")
            turn = page.locator("td.col-messages .rsr-turn")
            assert turn.locator(".rsr-role").inner_text() == "user"
            assert "What is 2+2?\nAnswer with a number." in turn.inner_text()
            page.screenshot(path=str(tmp_path / "prompt.png"), full_page=True)
            page.locator("a.rsr-rollouts-link").click()
            page.wait_for_load_state()
            assert page.locator("td.col-response").all_inner_texts() == [
                "4",
                "The answer is 4",
                "5",
            ]
            assert page.locator("td.col-scores").all_inner_texts() == [
                "math: pass (score 1.0)",
                "math: pass (score 1.0)",
                "math: fail (score 0.0)",
            ]
            page.screenshot(path=str(tmp_path / "prompt_rollouts.png"), full_page=True)
        finally:
            browser.close()
    for name in ("database.png", "prompt.png", "prompt_rollouts.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_browse_refuses_a_file_that_is_not_a_ledger(tmp_path, invoke):
    other = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(other).execute("create table t (x)")
    result = invoke("browse", other)
    assert result.exit_code == 1
    assert "is not an rsr database (no prompts table)" in result.stderr


@pytest.mark.parametrize("path", ["/run/hardest_prompts", "/run/prompt_rollouts.json"])
def test_browse_post_to_a_canned_query_is_a_clean_405(db_path, path):
    build_ledger(db_path)
    datasette = make_datasette(db_path)

    async def run():
        await datasette.invoke_startup()
        post = await datasette.client.post(path, data={"verifier": "math"})
        get = await datasette.client.get(path.split(".")[0] + ".json?prompt_id=x&verifier=")
        return post, get

    post, get = asyncio.run(run())
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")
    assert "read-only" in post.text and "Traceback" not in post.text
    assert get.status_code == 200
