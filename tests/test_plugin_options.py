"""Plugins that describe themselves: a third-party sampler takes an endpoint, a key
and an option of its own through `rsr sample` and a recipe, an export format
takes its own options, and a plugin adds a command; none of it changes rsr."""

import json

import pytest
from pydantic import Field

from helpers import write_jsonl
from rsr import hookimpl, open_db
from rsr.options import PluginOptions
from rsr.plugins import pm
from rsr.samplers import Completion, Sampler, SamplerOptions
from servers import OpenAIStub


class ShoutingSampler(Sampler):
    "Asks an OpenAI-compatible server and adds `shout` exclamation marks to each answer."

    name = "shouting"
    description = "A test sampler with an endpoint and an option of its own"
    endpoint = True

    class Options(SamplerOptions):
        shout: int = Field(1, ge=1, le=9, description="shouting: exclamation marks to add")

    def __init__(self, model=None, base_url=None, api_key=None, timeout=None, transport=None,
                 shout=1):
        super().__init__(model=model or "default")
        import openai

        self.shout = shout
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "none",
                                         max_retries=0)

    async def complete(self, request):
        reply = await self.client.chat.completions.create(
            model=self.model, messages=request.messages, n=request.n)
        return [Completion(response=choice.message.content + "!" * self.shout,
                           finish_reason=choice.finish_reason) for choice in reply.choices]

    async def aclose(self):
        await self.client.close()


class ShoutingPlugin:
    @hookimpl
    def register_samplers(register):
        register(ShoutingSampler)


@pytest.fixture
def shouting():
    pm.register(ShoutingPlugin, name="test-shouting")
    try:
        yield
    finally:
        pm.unregister(name="test-shouting")


@pytest.fixture
def stub():
    with OpenAIStub(responder=lambda body: "hello") as server:
        yield server


@pytest.fixture
def two_prompts(tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "question": "say hello"}, {"id": "b", "question": "say hello again"}]))
    return db_path


def responses(db_path):
    return sorted(r[0] for r in open_db(db_path).execute("select response from rollouts"))


SECRET = "sk-shouting-123"


def auth_headers(stub):
    "The Authorization headers the server received (any spelling of the name)."
    return {value for r in stub.requests for key, value in r["headers"].items()
            if key.lower() == "authorization"}


def test_a_plugin_sampler_takes_base_url_api_key_and_its_own_option(shouting, stub, two_prompts,
                                                                    invoke):
    assert "--shout INTEGER" in invoke("sample", "--help").stdout
    result = invoke("sample", two_prompts, "--sampler", "shouting", "--base-url", stub.url,
                    "--api-key", SECRET, "--shout", "3", "--target", "none",
                    "--max-rollouts", "2", "--step-size", "2", "--silent")
    assert result.exit_code == 0, result.output
    assert responses(two_prompts) == ["hello!!!"] * 4
    assert auth_headers(stub) == {f"Bearer {SECRET}"}
    assert [r["body"]["n"] for r in stub.requests] == [2, 2]
    db = open_db(two_prompts)
    (config,) = db.execute("select config from runs where command = 'sample'").fetchone()
    assert json.loads(config)["sampler"]["engine"] == {"shout": 3}
    assert SECRET not in config
    assert {r[0] for r in db.execute("select sampler from rollouts")} == {"shouting"}


def test_a_plugin_sampler_option_is_validated_by_its_declaration(shouting, stub, two_prompts,
                                                                 invoke):
    result = invoke("sample", two_prompts, "--sampler", "shouting", "--base-url", stub.url,
                    "--shout", "0", "--target", "none")
    assert result.exit_code == 1
    assert result.stderr == ("Error: The shouting sampler option shout (--shout): input should "
                             "be greater than or equal to 1, not 0\n")
    # Another sampler is told whose option it is.
    result = invoke("sample", two_prompts, "--base-url", stub.url, "--shout", "2",
                    "--target", "none")
    assert result.stderr == "Error: shout: only with --sampler shouting\n"
    assert stub.requests == []
    assert responses(two_prompts) == []


def test_a_plugin_sampler_is_configured_by_a_recipe(shouting, stub, tmp_path, invoke):
    write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "question": "say hello"}])
    recipe = tmp_path / "shout.yaml"
    recipe.write_text(f"""
data: {{files: [p.jsonl]}}
sampler: {{name: shouting, base_url: "{stub.url}", api_key: {SECRET}, engine: {{shout: 2}}}}
sampling: {{target: none, max_rollouts: 3, step_size: 3}}
outputs: {{dir: {tmp_path / 'out'}, exports: [], stats: null}}
""")
    result = invoke("run", str(recipe))
    assert result.exit_code == 0, result.output
    db_path = str(tmp_path / "out" / "run.db")
    assert responses(db_path) == ["hello!!"] * 3
    assert auth_headers(stub) == {f"Bearer {SECRET}"}
    (config,) = open_db(db_path).execute("select config from runs where command = 'run'").fetchone()
    assert SECRET not in config
    # A wrong value in the recipe is named by its key before anything is sent.
    recipe.write_text(recipe.read_text().replace("shout: 2", "shout: loud"))
    stub.requests.clear()
    result = invoke("run", str(recipe), "--db", str(tmp_path / "other.db"))
    assert result.exit_code == 1
    assert "option shout (--shout): input should be a valid integer" in result.stderr
    assert stub.requests == []


# -- a plugin export format with an option of its own -------------------------

class Answers:
    "One row per prompt: its first passing response, after a declared prefix."

    name = "answers"
    description = "Prefixed passing answers"

    class Options(PluginOptions):
        prefix: str = Field("A: ", description="answers: text before each answer")

    def rows(self, db, options):
        prefix = options.extra.get("prefix", "A: ")
        for (response,) in db.execute(
                "select min(r.response) from rollouts r join scores s on s.rollout_id = r.id "
                "where s.passed = 1 group by r.prompt_id order by r.prompt_id"):
            yield {"text": prefix + response}

    def dataset_info(self, file_name):
        return None


class AnswersPlugin:
    @hookimpl
    def register_formatters(register):
        register(Answers())


@pytest.fixture
def answers_format():
    pm.register(AnswersPlugin, name="test-answers-options")
    try:
        yield
    finally:
        pm.unregister(name="test-answers-options")


@pytest.fixture
def scored_ledger(tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "question": "q", "answer": "hello"}]))
    with OpenAIStub(responder=lambda body: "hello") as server:
        result = invoke("sample", db_path, "--base-url", server.url, "--verifier", "exact",
                        "--max-rollouts", "1", "--step-size", "1", "--silent")
    assert result.exit_code == 0, result.output
    return db_path


def test_a_plugin_format_takes_its_own_option(answers_format, scored_ledger, invoke, tmp_path):
    result = invoke("export", scored_ledger, "--format", "answers", "--format-option", "prefix=>> ")
    assert (result.exit_code, result.stdout) == (0, '{"text": ">> hello"}\n')
    # Its default when not given, and a name it does not declare refused with its list.
    assert invoke("export", scored_ledger, "--format", "answers").stdout == '{"text": "A: hello"}\n'
    result = invoke("export", scored_ledger, "--format", "answers", "--format-option", "prefx=1")
    assert result.exit_code == 1
    assert result.stderr == "Error: The answers format has no option 'prefx' (its options: prefix)\n"
    # A built-in format declares none: the same option is refused there.
    result = invoke("export", scored_ledger, "--format", "sft", "--format-option", "prefix=x")
    assert result.stderr == "Error: Unknown export option(s): prefix\n"


def test_a_recipe_export_passes_format_options(answers_format, tmp_path, invoke):
    write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "question": "q", "answer": "hello"}])
    with OpenAIStub(responder=lambda body: "hello") as server:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"""
data: {{files: [p.jsonl]}}
sampler: {{name: openai, base_url: "{server.url}"}}
sampling: {{target: sft, max_rollouts: 1, step_size: 1}}
verifier: {{name: exact}}
outputs:
  dir: {tmp_path / 'out'}
  stats: null
  exports: [{{format: answers, file: a.jsonl, options: {{prefix: "Q> "}}}}]
""")
        result = invoke("run", str(recipe))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.jsonl").read_text() == '{"text": "Q> hello"}\n'


# -- a plugin command ----------------------------------------------------------

PLUGIN_COMMAND = '''
import click
from rsr import hookimpl
from rsr.plugins import pm

class Hello:
    @hookimpl
    def register_commands(cli):
        @cli.command()
        @click.argument("name")
        def hello(name):
            "Say hello"
            click.echo(f"hello {name}")

pm.register(Hello, name="test-hello")
from rsr.commands import cli
cli(["hello", "rsr"])
'''


def test_a_plugin_adds_a_command_through_register_commands():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PLUGIN_COMMAND], capture_output=True, text=True,
                          env={**__import__("os").environ, "RSR_LOAD_PLUGINS": ""})
    assert (done.returncode, done.stdout) == (0, "hello rsr\n"), done.stderr
