"""An API key given by option, environment or recipe is sent, and appears nowhere
rsr writes: the ledger and its -wal, -vv logs, exported files, stats.json."""

import pytest
from faultserver import FaultServer
from proc import assert_clean_error, env_without_key, query, rsr, write_prompts
from servers import OpenAIStub

SECRET = "sk-reliability-SECRET-7f3a9c"


def judge_server():
    return FaultServer(rate=0.0, responder=lambda seed, i: "right\nVERDICT: CORRECT")


def assert_nowhere(folder, *outputs):
    for text in outputs:
        assert SECRET not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path



@pytest.mark.parametrize("how", ["option", "environment"])
def test_sample_verify_and_export_keep_no_key(tmp_path, how):
    db_path = tmp_path / "run.db"
    assert rsr("load", db_path, write_prompts(tmp_path / "p.jsonl", 3)).returncode == 0
    key_args = ["--api-key", SECRET] if how == "option" else []
    env = env_without_key(OPENAI_API_KEY=SECRET) if how == "environment" else None
    with FaultServer(rate=0.0) as server, judge_server() as judge:
        sample = rsr("-vv", "sample", db_path, "--base-url", server.url, "--model", "m",
                     "--verifier", "exact", "--max-rollouts", 2, "--step-size", 2, *key_args, env=env)
        assert sample.returncode == 0, sample.stderr
        judge_key = ["--verifier-option", f"api_key={SECRET}"] if how == "option" else []
        verify = rsr("-vv", "verify", db_path, "--verifier", "judge", "--verifier-option", "model=j",
                     "--verifier-option", f"base_url={judge.url}", *judge_key, env=env)
        assert verify.returncode == 0, verify.stderr
        assert len(judge.log) > 0
    exported = rsr("-vv", "export", db_path, "--format", "sft", "--verifier", "exact",
                   "-o", tmp_path / "sft.jsonl", env=env)
    assert exported.returncode == 0, exported.stderr
    assert_nowhere(tmp_path, sample.stderr, sample.stdout, verify.stderr, exported.stderr)


@pytest.mark.parametrize("how", ["recipe", "override", "environment"])
def test_run_keeps_no_key(tmp_path, how):
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    with FaultServer(rate=0.0) as server:
        key_line = f"  api_key: {SECRET}\n" if how == "recipe" else ""
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            f"data: {{files: [{prompts}]}}\n"
            f"sampler:\n  name: openai\n  base_url: {server.url}\n  model: m\n{key_line}"
            "sampling: {target: sft, max_rollouts: 2, step_size: 2}\n"
            "verifier: {name: exact}\n"
            f"outputs: {{dir: {tmp_path / 'out'}, exports: [{{format: sft, file: sft.jsonl}}], stats: stats.json}}\n")
        extra = [f"sampler.api_key={SECRET}"] if how == "override" else []
        env = env_without_key(OPENAI_API_KEY=SECRET) if how == "environment" else None
        result = rsr("-vv", "run", recipe, "--db", tmp_path / "out" / "run.db", *extra, env=env)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "stats.json").exists()
    recipe.unlink()  # the user's own file holds the key; nothing rsr wrote may
    assert_nowhere(tmp_path, result.stderr, result.stdout)


def test_a_key_echoed_in_server_errors_is_redacted(tmp_path):
    # Servers and proxies echo the key they were sent ("Incorrect API key
    # provided: sk-..."); that text becomes the rollout's error and log lines.
    db_path = tmp_path / "run.db"
    assert rsr("load", db_path, write_prompts(tmp_path / "p.jsonl", 3)).returncode == 0
    with OpenAIStub() as stub:
        # The endpoint answers once (a 401 before that would be a config error,
        # written nowhere), then refuses the key.
        stub.script.extend([{"choices": ["right"]}] + [
            {"status": 401, "message": f"Incorrect API key provided: {SECRET}."}] * 2)
        sample = rsr("-vv", "sample", db_path, "--base-url", stub.url, "--model", "m",
                     "--verifier", "exact", "--max-rollouts", 1, "--step-size", 1,
                     "--concurrency", 1, "--api-key", SECRET)
    assert sample.returncode == 0, sample.stderr
    assert all(r["headers"].get("Authorization", r["headers"].get("authorization")) == f"Bearer {SECRET}"
               for r in stub.requests)
    errors = [row[0] for row in query(db_path, "select error from rollouts order by id")]
    assert errors == [None] + ["HTTP 401: Incorrect API key provided: [redacted]."] * 2
    assert_nowhere(tmp_path, sample.stderr, sample.stdout)


def test_a_key_refused_from_the_start_is_a_config_error_without_the_key(tmp_path):
    db_path = tmp_path / "run.db"
    assert rsr("load", db_path, write_prompts(tmp_path / "p.jsonl", 3)).returncode == 0
    with OpenAIStub() as stub:
        stub.script.extend([{"status": 401, "message": f"Incorrect API key provided: {SECRET}."}] * 3)
        sample = rsr("sample", db_path, "--base-url", stub.url, "--model", "m",
                     "--verifier", "exact", "--concurrency", 1, "--api-key", SECRET)
    line = assert_clean_error(sample, "HTTP 401: Incorrect API key provided: [redacted]",
                              "nothing was written")
    assert "--api-key" in line
    assert query(db_path, "select count(*) from rollouts") == [(0,)]
    assert_nowhere(tmp_path, sample.stderr, sample.stdout)
