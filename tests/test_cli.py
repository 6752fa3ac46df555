"""What every command shares: one meaning per short option, one spelling of
the verifier options, and --json summaries (one JSON object on stdout) for
scripting."""

import json

import click
from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.commands import cli


def all_options():
    "Every option of the group and of every command."
    for command in [cli, *cli.commands.values()]:
        yield from (p for p in command.params if isinstance(p, click.Option))


def test_each_short_option_means_one_thing_across_commands():
    meaning = {}
    for param in all_options():
        shorts = [o for o in param.opts + param.secondary_opts if len(o) == 2]
        longs = sorted(o for o in param.opts if o.startswith("--"))
        for short in shorts:
            meaning.setdefault(short, set()).add(longs[0] if longs else short)
    assert {k: v for k, v in meaning.items() if len(v) > 1} == {}
    assert meaning["-o"] == {"--output"}


def test_verifier_options_have_one_spelling():
    spellings = {}
    for command in ("sample", "verify"):
        names = {o for p in cli.commands[command].params for o in p.opts}
        assert "--verifier-option" in names and "--option" not in names and "--partial" not in names
        spellings[command] = next(p for p in cli.commands[command].params
                                  if "--verifier-option" in p.opts).name
    assert set(spellings.values()) == {"verifier_options"}  # as a recipe's verifier.options


PROMPTS = [{"id": "easy", "question": "easy one", "answer": "4"},
           {"id": "hard", "question": "hard one", "answer": "4"}]


def summary(result):
    "The one JSON object a --json command printed."
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_json_summaries(db_path, tmp_path, invoke):
    prompts = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    loaded = summary(invoke("load", db_path, prompts, "--json"))
    assert (loaded["read"], loaded["added"], loaded["unchanged"], loaded["invalid"]) == (2, 2, 0, 0)
    again = summary(invoke("load", db_path, prompts, "--json"))
    assert (again["added"], again["unchanged"]) == (0, 2)

    answers = lambda body: "4" if "easy" in body["messages"][-1]["content"] else "5"  # noqa: E731
    with OpenAIStub(responder=answers) as stub:
        sampled = summary(invoke("sample", db_path, "--base-url", stub.url, "--model", "m",
                                 "--verifier", "exact", "--max-rollouts", "4", "--step-size", "2",
                                 "--silent", "--json"))
    assert (sampled["rollouts"], sampled["passed"], sampled["failed"]) == (6, 2, 4)
    assert sampled["prompts"] == {"total": 2, "satisfied": 1, "exhausted": 1, "pending": 0}

    verified = summary(invoke("verify", db_path, "--verifier", "math", "--silent", "--json"))
    assert verified["verifiers"]["math"]["scored"] == 6
    assert verified["verifiers"]["math"]["passed"] == 2

    imported_file = write_jsonl(tmp_path / "i.jsonl", [{"prompt_id": "hard", "response": "4"}])
    imported = summary(invoke("import", db_path, imported_file, "--json"))
    assert (imported["rollouts_added"], imported["prompts_added"]) == (1, 0)

    stats = summary(invoke("stats", db_path, "--json", "--verifier", "exact"))
    assert stats["prompts"]["total"] == 2
    info = summary(invoke("info", db_path, "--json"))
    assert info["counts"]["rollouts"] == 7
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 5
