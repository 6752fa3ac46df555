"""rsr browse through Datasette's own client: the canned queries, the run
summary, a prompt's page and the DPO preview with options from the URL, the
metadata facets, escaping and the read-only guard. tests/test_browse_browser.py
drives the same pages in a real browser."""

import asyncio
import html
import json
import re
from pathlib import Path

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import open_db
from rsr.browse import database_url, load_metadata, make_datasette
from rsr.datasette_plugin.pages import UrlOptionError, export_options_from_query


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
    }
    # read-only: no canned query writes, and every one is a select
    for query in metadata["databases"]["run"]["queries"].values():
        assert not query.get("write") and query["sql"].lstrip().lower().startswith(("select", "with"))


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


def test_browse_pages_of_its_own_refuse_a_post(db_path):
    build_ledger(db_path)
    datasette = make_datasette(db_path)

    async def run():
        await datasette.invoke_startup()
        return await datasette.client.post("/run/-/dpo-preview", data={"pairs": "best-worst"})

    post = asyncio.run(run())
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")


def fetch_all(db_path, *paths):
    "GET each path from a Datasette for the ledger: {path: response}."
    datasette = make_datasette(db_path)

    async def run():
        await datasette.invoke_startup()
        return {path: await datasette.client.get(path) for path in paths}

    return asyncio.run(run())


def text_of(page_html, css_class):
    "The text inside every element with this class (no nesting), unescaped."
    found = re.findall(rf'class="{css_class}"[^>]*>(.*?)</', page_html, flags=re.DOTALL)
    return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in found]


def test_browse_home_goes_to_the_run_summary(db_path):
    build_ledger(db_path)
    home = fetch_all(db_path, "/")["/"]
    assert (home.status_code, home.headers["location"]) == (302, "/run")
    assert database_url(db_path, "127.0.0.1", 8001) == "http://127.0.0.1:8001/run"


def test_browse_summary_numbers_are_rsr_stats(db_path, invoke):
    build_ledger(db_path)
    stats = json.loads(invoke("stats", db_path, "--json").stdout)
    page = fetch_all(db_path, "/run")["/run"].text
    assert text_of(page, "rsr-target") == [stats["target"]] == ["sft"]
    assert text_of(page, "rsr-satisfied") == [str(stats["prompts"]["satisfied"])] == ["2"]
    assert text_of(page, "rsr-exhausted") == [str(stats["prompts"]["exhausted"])]
    assert text_of(page, "rsr-truncation-rate") == ["14.3%"]  # 1 of 7, as stats has it
    assert stats["rollouts"]["truncation_rate"] == 0.1429
    assert text_of(page, "rsr-saved") == [str(stats["draws"]["saved"])]
    # the pictures: one bar per pass-rate bucket, one point per k of pass@k
    assert page.count('class="rsr-bar"') == len(stats["pass_rate_buckets"])
    assert page.count('class="rsr-point"') == len(stats["pass_at_k"]) == 3


def test_browse_summary_with_several_verifiers_asks_for_one(db_path):
    build_ledger(db_path)
    db = open_db(db_path)
    add_score(db, 1, "exact", 0)
    pages = fetch_all(db_path, "/run", "/run?verifier=exact")
    assert "choose one with --verifier" in html.unescape(pages["/run"].text)
    assert 'href="?verifier=exact"' in pages["/run"].text
    assert text_of(pages["/run?verifier=exact"].text, "rsr-verifier")[0].startswith("exact")


def test_browse_prompt_page_picks_are_the_exports(db_path, invoke, tmp_path):
    build_ledger(db_path)
    query = "pairs=best-worst&max-pairs-per-prompt=2"
    got = fetch_all(db_path, "/run/prompts/hard~2F2?" + query, "/run/prompts/hard~2F2")
    exported = tmp_path / "dpo.jsonl"
    result = invoke("export", db_path, "--format", "dpo", "--pairs", "best-worst",
                    "--max-pairs-per-prompt", "2", "--where", "id = 'hard/2'", "-o", exported)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    page = got["/run/prompts/hard~2F2?" + query].text
    shown = [json.loads(html.unescape(t)) for t in text_of(page, "rsr-row")]
    assert shown == rows and len(rows) == 2
    # without the options, export's defaults: one pass-fail pair
    plain = got["/run/prompts/hard~2F2"].text
    assert len(text_of(plain, "rsr-row")) == 1
    # every rollout side by side (or stacked, one click away), reasoning folded away
    assert len(re.findall(r'class="rsr-candidate( rsr-invalid)?"', plain)) == 4
    assert 'class="rsr-candidates rsr-side"' in plain
    assert "_layout=stacked" in plain
    assert re.search(r'<details class="rsr-reasoning"><summary>reasoning \(10 chars\)</summary>'
                     r'<div class="rsr-text">x\^3/3 at 3</div></details>', plain)
    assert text_of(plain, "rsr-finish") == ["stop", "stop", "stop", "length"]


def test_browse_prompt_page_says_which_option_is_wrong(db_path):
    build_ledger(db_path)
    page = fetch_all(db_path, "/run/prompts/easy-1?pairs=best&min-margin=x")[
        "/run/prompts/easy-1?pairs=best&min-margin=x"]
    assert page.status_code == 200
    assert text_of(page.text, "rsr-error") == [
        "pairs='best': must be one of pass-fail, best-worst, best-random"]


def test_export_options_from_a_url():
    assert export_options_from_query({"pairs": "best-worst", "pass-threshold": "0.5",
                                      "min_margin": "0.2", "dedupe": "1", "verifier": ""}) == {
        "pairs": "best-worst", "pass_threshold": 0.5, "min_margin": 0.2, "dedupe": True}
    with pytest.raises(UrlOptionError, match=r"min-margin='a lot': not a number"):
        export_options_from_query({"min-margin": "a lot"})
    with pytest.raises(UrlOptionError, match="at least 1"):
        export_options_from_query({"max-pairs-per-prompt": "0"})


def test_browse_dpo_preview_follows_the_options(db_path, invoke, tmp_path):
    build_ledger(db_path)
    db = open_db(db_path)
    add_score(db, add_rollout(db, "hard/2", 4, "It is 9.0"), "math", 0, score=0.75)
    paths = ["/run/-/dpo-preview", "/run/-/dpo-preview?min-margin=2",
             "/run/-/dpo-preview?pairs=best-worst&max-pairs-per-prompt=3",
             "/run/-/dpo-preview?pass-threshold=0.7&max-pairs-per-prompt=3"]
    got = fetch_all(db_path, *paths)

    def exported(*options):
        out = tmp_path / "pairs.jsonl"
        assert invoke("export", db_path, "--format", "dpo", "-o", out, *options).exit_code == 0
        return [json.loads(line) for line in out.read_text().splitlines()]

    def shown(path):
        return [json.loads(html.unescape(t)) for t in text_of(got[path].text, "rsr-row")]

    assert shown(paths[0]) == exported() and len(exported()) == 2
    assert shown(paths[1]) == exported("--min-margin", "2") == []
    assert shown(paths[2]) == exported("--pairs", "best-worst", "--max-pairs-per-prompt", "3")
    # easy-1: 2 passes x 1 fail; hard/2: 1.0 and 0.75 against two 0s, and 1.0 against 0.75
    assert len(shown(paths[2])) == 5
    # a score of 0.75 passes at 0.7: "It is 9.0" becomes a chosen answer
    threshold = shown(paths[3])
    assert threshold == exported("--pass-threshold", "0.7", "--max-pairs-per-prompt", "3")
    assert "It is 9.0" in {row["chosen"][0]["content"] for row in threshold}
    without = exported("--max-pairs-per-prompt", "3")
    assert "It is 9.0" not in {row["chosen"][0]["content"] for row in without}


def test_browse_facets_and_filters_on_metadata_fields(db_path):
    build_ledger(db_path)
    facet = "/run/prompt_overview.json?_facet_metadata=subject&_shape=objects"
    only = "/run/prompt_overview.json?_metadata.subject=calculus&_shape=objects"
    got = fetch_all(db_path, facet, only, "/run/prompts.json?_metadata.subject=nothing")
    results = got[facet].json()["facet_results"]["metadata.subject"]["results"]
    assert [(r["value"], r["count"]) for r in results] == [("arithmetic", 1), ("calculus", 1)]
    assert "_metadata.subject=arithmetic" in results[0]["toggle_url"]
    assert [r["prompt_id"] for r in got[only].json()["rows"]] == ["hard/2"]
    assert got["/run/prompts.json?_metadata.subject=nothing"].json()["rows"] == []


XSS = '<script>window.rsrHacked = 1</script><img src="x" onerror="window.rsrHacked = 2">'


def test_browse_escapes_model_output_on_every_page(db_path):
    db = open_db(db_path)
    add_prompt(db, "x", content="Say " + XSS, answer=XSS, subject=XSS)
    add_score(db, add_rollout(db, "x", 0, XSS, reasoning=XSS), "v", 1, extracted=XSS)
    add_score(db, add_rollout(db, "x", 1, "no " + XSS * 40), "v", 0)
    paths = ["/run", "/run/prompts/x", "/run/prompts", "/run/rollouts", "/run/rollouts/1",
             "/run/rollout_verdicts", "/run/prompt_overview?_facet_metadata=subject",
             "/run/-/dpo-preview", "/run/prompt_rollouts?prompt_id=x", "/run/rollouts_scored"]
    for path, response in fetch_all(db_path, *paths).items():
        assert response.status_code == 200, path
        assert "<script>window" not in response.text and "<img src" not in response.text, path
        assert "&lt;script&gt;window" in response.text or path == "/run", path


@pytest.mark.parametrize("fixture", ["ledger_v0.db", "ledger_v1.db"])
def test_browse_an_older_ledger_says_so_and_shows_its_tables(copy_fixture, fixture):
    # browse never writes, so a ledger an older rsr wrote is read as it is
    path = copy_fixture(fixture)
    before = Path(path).read_bytes()
    name = Path(path).stem
    prompt = open_db(path, readonly=True).execute("select id from prompts").fetchone()[0]
    got = fetch_all(path, f"/{name}", f"/{name}/prompts/{prompt}", f"/{name}/rollouts")
    assert [r.status_code for r in got.values()] == [200, 200, 200]
    assert text_of(got[f"/{name}"].text, "rsr-error")[0].startswith(
        "This ledger was written by an older rsr (no such ")
    assert Path(path).read_bytes() == before


def test_browse_a_ledger_with_prompts_only(db_path):
    db = open_db(db_path)
    add_prompt(db, "a", content="2+2?")
    got = fetch_all(db_path, "/run", "/run/prompts/a", "/run/-/dpo-preview")
    assert [r.status_code for r in got.values()] == [200, 200, 200]
    assert text_of(got["/run"].text, "rsr-pending") == ["1"]
    assert text_of(got["/run"].text, "rsr-verifier") == ["none (no scores yet)"]
    assert text_of(got["/run/prompts/a"].text, "rsr-state rsr-pending") == ["pending"]
    assert "No rollouts yet." in got["/run/prompts/a"].text
    assert text_of(got["/run/-/dpo-preview"].text, "rsr-error") == [
        "This ledger has no scores yet; run 'rsr verify' first"]
