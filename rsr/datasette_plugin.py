"""A small Datasette plugin for `rsr browse`: ledgers rendered for reading.

Chat `messages` columns become one block per turn with its role; responses,
reasoning and DPO sides keep their line breaks; a rollout's `scores` object
(the prompt_rollouts query) becomes a line per verifier; and a prompt's id
links to the page with all its rollouts (a prompt_id in a canned query links to
the prompt).

`rsr browse` is for reading: a POST to a canned query (Datasette 0.65 answers
one with a 500 and a traceback in the log) gets a plain 405.
"""

import json
from importlib import resources
from urllib.parse import quote

import yaml

from datasette import hookimpl
from datasette.utils import tilde_encode
from markupsafe import Markup, escape

TEXT_COLUMNS = {"response", "reasoning", "chosen", "rejected", "response_tail"}
BLOCK = '<div class="rsr-text" style="white-space: pre-wrap; max-width: 60em">{}</div>'
TURN = (
    '<div class="rsr-turn rsr-{role}" style="margin-bottom: 0.5em">'
    '<strong class="rsr-role">{role}</strong>'
    '<div style="white-space: pre-wrap; max-width: 60em">{content}</div></div>'
)


def _messages_html(value):
    try:
        messages = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    turns = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        turns.append(
            TURN.format(role=escape(str(message.get("role", "?"))), content=escape(content))
        )
    return Markup("".join(turns))


def _scores_html(value):
    try:
        scores = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(scores, dict):
        return None
    lines = []
    for verifier, score in sorted(scores.items()):
        verdict = {1: "pass", 0: "fail"}.get(score.get("passed"), "undecided")
        lines.append(f"{escape(verifier)}: {verdict} (score {escape(str(score.get('score')))})")
    return Markup("<br>".join(lines))


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    if value is None or not isinstance(value, str):
        return None
    if column in ("messages", "prompt"):
        return _messages_html(value)
    if column == "scores":
        return _scores_html(value)
    if column in TEXT_COLUMNS:
        return Markup(BLOCK.format(escape(value)))
    if table is None and column == "prompt_id":
        url = datasette.urls.row(database, "prompts", tilde_encode(value))
        return Markup(f'<a class="rsr-prompt-link" href="{url}">{escape(value)}</a>')
    if table == "prompts" and column == "id":
        url = datasette.urls.database(database) + "/prompt_rollouts?prompt_id="
        return Markup(
            f'{escape(value)} <a class="rsr-rollouts-link" href="{url}{quote(value)}">rollouts</a>'
        )
    return None


def _canned_query_names():
    metadata = yaml.safe_load(resources.files("rsr").joinpath("metadata.yml").read_text())
    return set(metadata["databases"]["ledger"].get("queries") or {})


CANNED_QUERIES = _canned_query_names()
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def _is_canned_query(path):
    "True for /DB/QUERY and /DB/QUERY.json (or .csv, ...) where QUERY is one of rsr's."
    parts = path.strip("/").split("/")
    return len(parts) == 2 and parts[1].split(".", 1)[0] in CANNED_QUERIES


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def read_only(scope, receive, send):
            if (scope["type"] == "http" and scope["method"] not in READ_METHODS
                    and _is_canned_query(scope["path"])):
                body = b"405 Method Not Allowed: rsr's canned queries are read-only; use GET\n"
                await send({"type": "http.response.start", "status": 405, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"allow", b"GET, HEAD"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)

        return read_only

    return wrap
