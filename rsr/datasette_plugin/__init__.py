"""rsr's Datasette plugin for `rsr browse`: a ledger that explains its run.

- the database page opens with the run summary (rsr/stats.py's numbers, the
  per-prompt pass-rate histogram and the pass@k curve, the runs); `/` goes there
- a prompt's row page shows its messages, gold answer and state, every rollout
  side by side with each verifier's verdict, and which rollouts sft, best-of-n
  and dpo export would take with the options in the URL (pages.py)
- `/DB/-/dpo-preview` lists the first pairs `rsr export --format dpo` writes
- in tables, long texts are cut to a few lines with the full text one click
  away (the rollout's own page, which shows all of it); chat `messages` become
  one block per turn; prompt ids link to their prompt and rollout ids to their
  rollout

Everything shown is escaped (responses are model output). `rsr browse` is for
reading: a POST to a canned query (Datasette 0.65 answers one with a 500 and a
traceback in the log) gets a plain 405, and every page of rsr's own is GET.
"""

import contextvars
import json
from importlib import resources

import yaml
from datasette import hookimpl
from datasette.utils import tilde_encode, urlsafe_components
from datasette.utils.asgi import Response
from markupsafe import Markup, escape

from ..db import Database
from ..errors import RsrError
from ..stats import prompt_states
from . import facets, pages

TEXT_COLUMNS = {"response", "reasoning", "chosen", "rejected", "response_tail"}
# Columns whose long values are cut in tables: texts, JSON and the chat turns.
CLIPPED_COLUMNS = TEXT_COLUMNS | {"params", "config", "details", "metadata", "error", "summary",
                                  "question", "answer"}
CLIP_CHARS = 240
BLOCK = '<div class="rsr-text">{}</div>'
TURN = (
    '<div class="rsr-turn rsr-{role}"><strong class="rsr-role">{role}</strong>'
    '<div class="rsr-text">{content}</div></div>'
)
# The tables and views whose rows are rollouts, and the column holding the id.
ROLLOUT_ID_COLUMN = {"rollouts": "id", "rollout_verdicts": "rollout_id",
                     "rollouts_scored": "rollout_id"}

# The path of the request being answered, for render_cell (which is not given
# the request): a row's own page shows texts in full, a table cuts them.
_request_path = contextvars.ContextVar("rsr_request_path", default="")


def _on_row_page():
    parts = _request_path.get().strip("/").split("/")
    return len(parts) == 3 and parts[1] != "-"


def _messages_html(value, clip=False):
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
        if clip and len(content) > CLIP_CHARS:
            content = content[:CLIP_CHARS] + "\u2026"
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


def _clipped(value, full_url):
    """The start of a long text (whitespace runs collapsed, two lines at most
    on screen) and a link to all of it."""
    if len(value) <= CLIP_CHARS and "\n" not in value.strip():
        return Markup(BLOCK.format(escape(value)))
    link = (f'<a class="rsr-full-link" href="{escape(full_url)}">full text '
            f"({len(value):,} chars)</a>" if full_url else "")
    start = " ".join(value[: CLIP_CHARS * 2].split())[:CLIP_CHARS]
    return Markup(f'<div class="rsr-clipped">{escape(start)}\u2026</div>{link}')


def _row_url(datasette, database, table, row):
    "The page of the row a cut text belongs to (its rollout for rollout views)."
    names = row.keys()  # `in` on a sqlite3.Row looks at its values, not its names
    if table in ROLLOUT_ID_COLUMN:
        key = ROLLOUT_ID_COLUMN[table]
        if key in names and row[key] is not None:
            return datasette.urls.row(database, "rollouts", tilde_encode(str(row[key])))
    if table in ("runs", "prompts") and "id" in names:
        return datasette.urls.row(database, table, tilde_encode(str(row["id"])))
    if table == "prompt_overview" and "prompt_id" in names:
        return datasette.urls.row(database, "prompts", tilde_encode(str(row["prompt_id"])))
    return None


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    if value is None or not isinstance(value, (str, int)):
        return None
    full = _on_row_page()
    if column == "rollout_id" and table is not None:
        url = datasette.urls.row(database, "rollouts", tilde_encode(str(value)))
        return Markup(f'<a class="rsr-rollout-link" href="{url}">{escape(value)}</a>')
    if not isinstance(value, str):
        return None
    if column in ("messages", "prompt"):
        return _messages_html(value, clip=not full and table is not None)
    if column == "scores":
        return _scores_html(value)
    if column in CLIPPED_COLUMNS and table is not None and not full:
        return _clipped(value, _row_url(datasette, database, table, row))
    if column in TEXT_COLUMNS:
        return Markup(BLOCK.format(escape(value)))
    if column == "prompt_id" and table == "prompt_overview":
        return _prompt_with_state(value, database, datasette)
    if column == "prompt_id" and table != "rollouts":
        # rollouts.prompt_id is a foreign key: Datasette links it already.
        url = datasette.urls.row(database, "prompts", tilde_encode(value))
        return Markup(f'<a class="rsr-prompt-link" href="{url}">{escape(value)}</a>')
    return None


async def _prompt_with_state(prompt_id, database, datasette):
    "A prompt's link and its state (satisfied, exhausted, pending) as rsr stats counts it."
    db = datasette.get_database(database)
    try:
        state = (await db.execute_fn(_sqlite_utils(
            lambda ledger: prompt_states(ledger, [prompt_id])))).get(prompt_id)
    except RsrError:  # several verifiers and no sampling run to choose one
        state = None
    url = datasette.urls.row(database, "prompts", tilde_encode(prompt_id))
    badge = f' <span class="rsr-state rsr-{state}">{state}</span>' if state else ""
    return Markup(f'<a class="rsr-prompt-link" href="{url}">{escape(prompt_id)}</a>{badge}')


@hookimpl
def extra_css_urls(datasette):
    return [datasette.urls.static_plugins("rsr.datasette_plugin", "rsr.css")]


def _sqlite_utils(fn):
    "fn(db) for Datasette's execute_fn, with db a sqlite-utils Database on its connection."
    return lambda conn: fn(Database(conn))


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _helpers(datasette):
    "What rsr's templates call: a percentage, and a row's URL from its key."
    def row_url(database, table, key):
        return datasette.urls.row(database, table, tilde_encode(str(key)))

    return {"rsr_pct": _pct, "rsr_row_url": row_url}


@hookimpl
def extra_template_vars(view_name, database, table, request, datasette):
    helpers = _helpers(datasette)
    if view_name == "database" and database:
        async def summary():
            verifier = request.args.get("verifier") or None
            db = datasette.get_database(database)
            return {**helpers, "rsr_summary": await db.execute_fn(
                _sqlite_utils(lambda ledger: pages.summary(ledger, verifier)))}

        return summary
    if view_name == "row" and table == "prompts":
        async def prompt():
            prompt_id = urlsafe_components(request.url_vars["pks"])[0]
            query = {key: request.args.get(key) for key in request.args}
            db = datasette.get_database(database)
            return {**helpers, "rsr_prompt": await db.execute_fn(
                _sqlite_utils(lambda ledger: pages.prompt_page(ledger, prompt_id, query)))}

        return prompt
    return helpers


# The tables and views with a prompt's metadata JSON column.
METADATA_TABLES = ("prompts", "prompt_overview")


@hookimpl
def register_facet_classes():
    return [facets.MetadataFacet]


@hookimpl
def filters_from_request(request, table):
    if table in METADATA_TABLES:
        return facets.metadata_filters(request)
    return None


async def dpo_preview(request, datasette):
    database = request.url_vars["database"]
    try:
        db = datasette.get_database(database)
    except KeyError:
        return Response.html("No such database", status=404)
    query = {key: request.args.get(key) for key in request.args}
    page = await db.execute_fn(_sqlite_utils(lambda ledger: pages.dpo_preview(ledger, query)))
    return Response.html(await datasette.render_template(
        "rsr_dpo_preview.html", {"database": database, "page": page}, request=request))


def home(datasette):
    "The one ledger's page: / shows the run, not a list of one database."
    names = [name for name in datasette.databases if name != "_internal"]
    return Response.redirect(datasette.urls.database(names[0]) if len(names) == 1 else "/-/")


@hookimpl
def register_routes():
    return [
        (r"^/$", home),
        (r"^/(?P<database>[^/]+)/-/dpo-preview$", dpo_preview),
    ]


def _canned_query_names():
    metadata = yaml.safe_load(resources.files("rsr").joinpath("metadata.yml").read_text())
    return set(metadata["databases"]["ledger"].get("queries") or {})


CANNED_QUERIES = _canned_query_names()
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def _is_canned_query(path):
    "True for /DB/QUERY and /DB/QUERY.json (or .csv, ...) where QUERY is one of rsr's."
    parts = path.strip("/").split("/")
    return len(parts) == 2 and parts[1].split(".", 1)[0] in CANNED_QUERIES


def _is_rsr_page(path):
    parts = path.strip("/").split("/")
    return len(parts) == 3 and parts[1] == "-" and parts[2] == "dpo-preview"


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def read_only(scope, receive, send):
            if (scope["type"] == "http" and scope["method"] not in READ_METHODS
                    and (_is_canned_query(scope["path"]) or _is_rsr_page(scope["path"]))):
                body = b"405 Method Not Allowed: rsr browse is read-only; use GET\n"
                await send({"type": "http.response.start", "status": 405, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"allow", b"GET, HEAD"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            token = _request_path.set(scope.get("path", "") if scope["type"] == "http" else "")
            try:
                await app(scope, receive, send)
            finally:
                _request_path.reset(token)

        return read_only

    return wrap
