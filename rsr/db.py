"""Opening the ledger: the one way in to an rsr database.

`open_db()` creates a database from schema.sql, or brings an older one up to the
same shape in three moves: columns added to existing tables since it was made
(NEW_COLUMNS, so that schema.sql's indexes and triggers that use them can be
created), then schema.sql itself (idempotent: every statement is
`if not exists`), then the migrations below, which replace changed triggers and
views and backfill data. It also sets the connection up for safe concurrent
use: WAL journal, foreign keys, a busy timeout.
"""

import json
import os
import re
import sqlite3
import sys
from importlib import resources
from pathlib import Path


def _import_sqlite_utils():
    """Import sqlite-utils without pandas and numpy.

    sqlite-utils imports both when they are installed, only to map their value
    types to column types; rsr's tables come from schema.sql and never need
    that, and the two imports are about half a second of every command's
    start-up. They are hidden while sqlite-utils loads (unless something has
    imported them already) and importable as usual afterwards."""
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import sqlite_utils.db  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


_import_sqlite_utils()

from sqlite_utils import Database  # noqa: E402
from sqlite_utils.migrations import Migrations  # noqa: E402

from .errors import LedgerError  # noqa: E402

SCHEMA_SQL = resources.files("rsr").joinpath("schema.sql").read_text()

migrations = Migrations("rsr")

# How long a writer waits for another writer's transaction before giving up.
BUSY_TIMEOUT_MS = 60_000


# Columns that schema.sql declares and older ledgers lack: (table, column, type).
NEW_COLUMNS = (
    ("rollouts", "response_hash", "text"),
    ("verdicts", "distinct_passed", "integer not null default 0"),
    ("progress", "empty", "integer not null default 0"),
    # m007: rollouts and steps say which arm drew them. Added here so that the
    # triggers older migrations fire compile; m007 then rebuilds rollouts with
    # (prompt_id, arm, sample_index) as its key and the arms filled in.
    ("rollouts", "arm", "text not null default 'default'"),
    ("steps", "arm", "text not null default 'default'"),
    # m008: the command line a run was started with.
    ("runs", "argv", "text check (argv is null or json_valid(argv))"),
    # m010: which rollouts share a request (cost charges its prompt once).
    ("rollouts", "first_of_request",
     "integer not null default 1 check (first_of_request in (0, 1))"),
    # m004: the one definition of a valid rollout, as schema.sql writes it.
    ("rollouts", "valid", " ".join(re.search(  # type: ignore[union-attr]
        r"^\s*valid (integer generated always as \(.*?\) virtual)", SCHEMA_SQL,
        re.M | re.S).group(1).split())),
)

# The objects m002 replaces because their definitions changed.
M002_REPLACED = (
    ("trigger", "scores_count_insert"),
    ("trigger", "scores_count_delete"),
    ("trigger", "scores_count_update"),
    ("view", "verifier_progress_slow"),
)


@migrations()
def m001_backfill_progress_counters(db):
    # Ledgers from before the counter tables had rollouts and scores but no
    # progress/verdicts rows: schema.sql has just created the (empty) counters
    # and their triggers, so fill them once from the from-scratch views.
    if db.execute("select count(*) from progress").fetchone()[0]:
        return
    db.execute(
        """
        insert into progress (prompt_id, rollouts, valid, truncated, errored,
                              completion_tokens, steps, requested)
        select prompt_id, rollouts, valid, truncated, errored, completion_tokens, steps,
               requested
        from prompt_progress_slow where rollouts > 0 or steps > 0
        """
    )
    db.execute(
        """
        insert into verdicts (prompt_id, verifier, passed, failed, unparsed)
        select prompt_id, verifier, passed, failed, unparsed
        from verifier_progress_slow
        """
    )


@migrations()
def m002_distinct_passes(db):
    # Identical completions count once toward a --dedupe target: rollouts got
    # a response_hash and verdicts a distinct_passed counter. Older ledgers get
    # the new triggers and view, their hashes, and the counter filled once.
    from .selection import response_hash

    for kind, name in M002_REPLACED:
        db.execute(f"drop {kind} if exists {name}")
    _run_script(db, SCHEMA_SQL)
    rows = db.execute(
        "select id, response from rollouts where response is not null and response_hash is null"
    ).fetchall()
    db.conn.executemany(
        "update rollouts set response_hash = ? where id = ?",
        [(response_hash(text), rollout_id) for rollout_id, text in rows],
    )
    db.execute(
        """update verdicts set distinct_passed = coalesce((
               select distinct_passed from verifier_progress_slow s
               where s.prompt_id = verdicts.prompt_id and s.verifier = verdicts.verifier), 0)"""
    )


# The objects m003 replaces: their definitions of a valid rollout now leave
# out empty answers. Their new text says so with this.
M003_REPLACED = (
    ("trigger", "rollouts_count_insert"),
    ("trigger", "rollouts_count_delete"),
    ("trigger", "scores_count_insert"),
    ("trigger", "scores_count_delete"),
    ("trigger", "scores_count_update"),
    ("view", "prompt_progress"),
    ("view", "prompt_progress_slow"),
    ("view", "verifier_progress_slow"),
)
M003_MARKER = "trim("
# What m004's definitions read instead of spelling the rule out (current for m003 too).
M004_MARKERS = ("new.valid", "old.valid", "r.valid", "rollouts.valid")

# Rollouts whose answer is empty or whitespace only (not truncated, no error).
EMPTY_ROLLOUTS_SQL = """
select id from rollouts where error is null and truncated = 0 and not valid
"""


@migrations()
def m003_empty_answers_are_invalid(db):
    # An empty answer (whitespace only, reasoning aside) used to be a valid
    # rollout, scored like any other: a "fail" that satisfied dpo targets and
    # filled DPO pairs. Now it is invalid, like a truncated one. Older ledgers
    # get the new triggers and views; their empty rollouts lose their scores
    # and the counters of their prompts are computed again.
    stale = [
        (kind, name) for kind, name in M003_REPLACED
        if not _marked(db, kind, name, (M003_MARKER, *M004_MARKERS))
    ]
    for kind, name in stale:
        db.execute(f"drop {kind} if exists {name}")
    if stale:
        _run_script(db, SCHEMA_SQL)
    empty = [row[0] for row in db.execute(EMPTY_ROLLOUTS_SQL).fetchall()]
    if not empty:
        return
    ids = json.dumps(empty)
    prompts = "select distinct prompt_id from rollouts where id in (select value from json_each(:ids))"
    db.execute("delete from scores where rollout_id in (select value from json_each(:ids))",
               {"ids": ids})
    db.execute(
        f"""update progress set
               valid = (select valid from prompt_progress_slow s where s.prompt_id = progress.prompt_id),
               empty = (select empty from prompt_progress_slow s where s.prompt_id = progress.prompt_id)
           where prompt_id in ({prompts})""", {"ids": ids})
    slow = """coalesce((select {0} from verifier_progress_slow s where s.prompt_id = verdicts.prompt_id
                        and s.verifier = verdicts.verifier), 0)"""
    db.execute(
        f"""update verdicts set passed = {slow.format('passed')}, failed = {slow.format('failed')},
               unparsed = {slow.format('unparsed')}, distinct_passed = {slow.format('distinct_passed')}
           where prompt_id in ({prompts})""", {"ids": ids})


def _check_not_newer(db, path):
    "LedgerError if a newer rsr has applied migrations this one does not know."
    from .version import __version__

    if "_sqlite_migrations" not in db.table_names():
        return
    known = [m.name for m in migrations._migrations]
    unknown = sorted({m.name for m in migrations.applied(db)} - set(known))
    if unknown:
        raise LedgerError(
            f"{path} was written by a newer rsr: it has schema migration {unknown[-1]}, and "
            f"rsr {__version__} knows up to {known[-1]}. Upgrade rsr (pip install -U rsr) to "
            "write to it; rsr stats, export, info and browse can still read it"
        )


def _add_new_columns(db):
    for table, column, kind in NEW_COLUMNS:
        # table_xinfo, unlike columns_dict, lists generated columns too.
        if table in db.table_names() and column not in {
                row[1] for row in db.execute(f"pragma table_xinfo({table})")}:
            db.execute(f"alter table {table} add column {column} {kind}")


def _connect(path, readonly):
    if readonly:
        uri = Path(path).absolute().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        if not _folder_writable(path) and not _can_read(conn):
            # A WAL ledger on read-only media with no -shm file beside it: SQLite
            # can read it only as immutable (and nothing can write it there).
            conn.close()
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _folder_writable(path):
    return os.access(Path(path).absolute().parent, os.W_OK)


def _can_read(conn):
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return True
    except sqlite3.OperationalError:
        return False


def open_db(path: str | os.PathLike, readonly: bool = False, create: bool = True) -> Database:
    """Open an rsr ledger, creating it from schema.sql or upgrading it.

    With readonly=True the file must exist and is never written (for stats,
    export and browsing while a sampler writes). With create=False it must
    exist too: commands that only add to a ledger (sample, verify) never make
    one out of a mistyped path.

    A ledger that a newer rsr has migrated further than this one knows is
    refused for writing (LedgerError naming the migration); reading it works.
    """
    path = Path(path)
    if path.is_dir():
        raise LedgerError(f"{path} is a directory, not a database file")
    if (readonly or not create) and (not path.exists() or path.stat().st_size == 0):
        state = "is empty" if path.exists() else "does not exist"
        raise LedgerError(
            f"No ledger at {path} (the file {state}): create it with rsr load {path} PROMPTS.jsonl"
        )
    try:
        conn = _connect(path, readonly)
        db = Database(conn)
        conn.execute("pragma foreign_keys = on")
        if readonly:
            if "prompts" not in db.table_names():
                raise LedgerError(f"{path} is not an rsr database (no prompts table)")
            return db
        # Checked before anything is written: someone else's database is left as it was.
        tables = set(db.table_names())
        if tables and "prompts" not in tables:
            raise LedgerError(
                f"{path} is a SQLite database but not an rsr ledger (no prompts table)"
            )
        if tables:
            _check_not_newer(db, path)
        if conn.execute("pragma journal_mode").fetchone()[0] != "wal":
            conn.execute("pragma journal_mode = wal")
        # FULL: a committed rollout survives power loss, not only a killed process.
        conn.execute("pragma synchronous = full")
        with db.atomic():
            _add_new_columns(db)
            _run_script(db, SCHEMA_SQL)
        migrations.apply(db)
    except sqlite3.DatabaseError as ex:
        message = str(ex)
        if "file is not a database" in message:
            raise LedgerError(f"{path} is not a SQLite database") from ex
        if "readonly" in message or "read-only" in message:
            raise LedgerError(
                f"{path} is read-only; rsr needs to write to it for this command"
            ) from ex
        if "unable to open" in message:
            if not readonly and not _folder_writable(path):
                raise LedgerError(
                    f"{path} is in a read-only folder: SQLite must create {path.name}-wal "
                    "beside it to write; make the folder writable or work on a copy"
                ) from ex
            raise LedgerError(f"Cannot open {path}: {message}") from ex
        if "disk is full" in message or "disk I/O" in message:
            raise LedgerError(f"Cannot write to {path}: {message}") from ex
        raise
    return db


# SQLite errors caused by the disk or the file, not by rsr, and what to say.
SQLITE_PROBLEMS = (
    ("disk is full", "the disk is full ({error}): free some space and run the command "
                     "again; everything written before this is kept"),
    ("malformed", "the ledger is damaged ({error}): restore it from a backup, or rescue "
                  "what is readable with: sqlite3 RUN.db .recover"),
    ("not a database", "not a SQLite database ({error})"),
    ("readonly", "the ledger is read-only ({error}): this command writes to it; make the "
                 "file and its folder writable, or work on a copy"),
    ("unable to open", "cannot open the ledger ({error}): check that its folder exists and "
                       "is writable (SQLite creates RUN.db-wal and RUN.db-shm beside it)"),
    ("disk I/O error", "the disk failed a read or write ({error}): check the disk and its "
                       "free space, then run the command again"),
)


def describe_sqlite_error(error, path=None):
    "A one-line message for a SQLite error the user can act on, or None (a bug)."
    text = str(error)
    for needle, message in SQLITE_PROBLEMS:
        if needle in text:
            message = message.format(error=text)
            return f"{path}: {message}" if path else message[0].upper() + message[1:]
    return None


def _run_script(db, script):
    # executescript() would COMMIT the surrounding transaction; run the
    # statements one by one inside it instead.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                db.execute(statement)
            statement = ""


def schema_version(db) -> str:
    "The name of the newest migration applied to this ledger."
    if "_sqlite_migrations" not in db.table_names():
        return "none"
    row = db.execute(
        "select name from _sqlite_migrations order by applied_at desc, name desc limit 1"
    ).fetchone()
    return row[0] if row else "none"



@migrations()
def m004_valid_column(db):
    # "A valid rollout" (a non-empty answer, not truncated, no error) was written
    # out in every trigger, view and query that needed it; rollouts now have a
    # generated `valid` column (added by NEW_COLUMNS) and the definitions read
    # it. Older ledgers get the new triggers and views; no row changes.
    stale = [(kind, name) for kind, name in M003_REPLACED if _marked(db, kind, name, (M003_MARKER,))]
    for kind, name in stale:
        db.execute(f"drop {kind} if exists {name}")
    if stale:
        _run_script(db, SCHEMA_SQL)


def _marked(db, kind, name, markers):
    "True when the stored definition of this trigger or view holds one of markers."
    row = db.execute("select coalesce(sql, '') from sqlite_master where type = ? and name = ?",
                     [kind, name]).fetchone()
    return row is not None and any(marker in row[0] for marker in markers)


BROWSE_VIEWS = ("rollout_verdicts", "prompt_overview")


@migrations()
def m005_browse_views(db):
    # rsr browse lists rollouts with their verdicts and prompts with their pass
    # rates through two new views. schema.sql (run just before the migrations)
    # creates them on an older ledger; this checks that they are there.
    if set(BROWSE_VIEWS) - set(db.view_names()):
        _run_script(db, SCHEMA_SQL)




@migrations()
def m006_majority_labels(db):
    # rsr label --majority keeps labels for prompts without gold in a table of
    # their own. open_db's pass over schema.sql already creates it in older
    # ledgers; this records the schema change, and makes the table should that
    # pass not have run.
    if "labels" not in db.table_names():
        db.execute(table_sql("labels"))


def table_sql(table):
    "The whole `create table` statement of schema.sql for a table."
    return re.search(rf"create table if not exists {table} \(.*?\n\)[^;]*;", SCHEMA_SQL,
                     re.S).group(0)  # type: ignore[union-attr]


def rebuild_table(db, table, migration, computed=None, then=None):
    """Replace a table by schema.sql's definition of it, every row and id kept:
    the way to change a constraint SQLite cannot alter in place. computed gives
    SQL for new columns, from the old row's; then runs after the copy.

    Outside any transaction of sqlite-utils': foreign keys must be off while a
    table others point at is replaced (SQLite ignores the pragma inside a
    transaction). The rebuild is one transaction of its own, checked with
    foreign_key_check before it commits; triggers and views are dropped and made
    again from schema.sql (SQLite would refuse the rename with them in place)."""
    computed = computed or {}
    kept = [row[1] for row in db.execute(f"pragma table_xinfo({table})")
            if row[6] == 0 and row[1] not in computed]
    columns = ", ".join(kept + list(computed))
    values = ", ".join(kept + list(computed.values()))
    temporary = f"{table}_{migration.split('_')[0]}"
    db.execute("pragma foreign_keys = off")
    try:
        with db.atomic():
            for kind, name in db.execute("select type, name from sqlite_master "
                                         "where type in ('view', 'trigger')").fetchall():
                db.execute(f"drop {kind} if exists {name}")
            db.execute(table_sql(table).replace(f"exists {table} (", f"exists {temporary} (", 1))
            db.execute(f"insert into {temporary} ({columns}) select {values} from {table} order by id")
            db.execute(f"drop table {table}")
            db.execute(f"alter table {temporary} rename to {table}")
            _run_script(db, SCHEMA_SQL)
            if then:
                db.execute(then)
            broken = db.execute("pragma foreign_key_check").fetchall()
            if broken:
                raise LedgerError(f"{migration} would break {len(broken)} references; "
                                  "the ledger is left as it was")
    finally:
        db.execute("pragma foreign_keys = on")

# Which arm an older step belongs to: the arm most of its rollouts have, else
# the prompt's latest rollout's, else 'default'.
STEP_ARMS_SQL = """
update steps set arm = coalesce(
    (select r.arm from rollouts r where r.prompt_id = steps.prompt_id and r.step = steps.step
     group by r.arm order by count(*) desc, r.arm limit 1),
    (select r.arm from rollouts r where r.prompt_id = steps.prompt_id order by r.id desc limit 1),
    'default')
"""


@migrations(transactional=False)
def m007_arms(db):
    # A ledger can hold several arms (sampling configurations), each with its
    # own budget per prompt: rollouts are unique by (prompt_id, arm,
    # sample_index). An older ledger's rollouts become the arm of their model
    # ('default' where none was recorded), every row and id kept: the table is
    # rebuilt (SQLite cannot change a unique constraint in place), its
    # triggers and the views over it made again from schema.sql, and the
    # per-arm counters filled once. A prompt an older ledger sampled with two
    # models keeps its step numbers; each model's steps count for its own arm.
    # (rebuild_table says how). Run again after a crash, it finds the new key
    # and only fills counters that are still empty.
    if not _arm_in_key(db):
        rebuild_table(db, "rollouts", "m007_arms", {"arm": "coalesce(model, 'default')"},
                      then=STEP_ARMS_SQL)
    with db.atomic():
        backfill_arm_counters(db)


def backfill_arm_counters(db):
    "Fill the per-arm counters from their from-scratch views, where they are empty."
    if not db.execute("select count(*) from arm_progress").fetchone()[0]:
        db.execute("insert into arm_progress (prompt_id, arm, rollouts, valid, steps, "
                   "requested, last_step) select prompt_id, arm, rollouts, valid, steps, "
                   "requested, last_step from arm_progress_slow")
    if not db.execute("select count(*) from arm_verdicts").fetchone()[0]:
        db.execute("insert into arm_verdicts select prompt_id, arm, verifier, passed, failed, "
                   "unparsed, distinct_passed from arm_verdicts_slow")


def _arm_in_key(db):
    "True when rollouts' unique key is (prompt_id, arm, sample_index)."
    for index in db.execute("pragma index_list(rollouts)").fetchall():
        if index[2]:  # unique
            names = [row[2] for row in db.execute(f"pragma index_info({index[1]!r})")]
            if names == ["prompt_id", "arm", "sample_index"]:
                return True
    return False


@migrations()
def m008_runs_command_line(db):
    # Runs record the command line they were started with (rsr publish shows
    # it on the dataset card). NEW_COLUMNS adds the column before schema.sql
    # runs; this checks that it is there. Older runs keep NULL: their command
    # lines were never recorded.
    if "argv" not in db.table("runs").columns_dict:
        db.execute("alter table runs add column argv text check (argv is null or json_valid(argv))")


@migrations()
def m009_batches_table(db):
    # Batches submitted to a provider's Batch API are kept in a table of their
    # own (see schema.sql), which schema.sql creates on an older ledger just
    # before the migrations run; this checks that it is there.
    if "batches" not in db.table_names():
        _run_script(db, SCHEMA_SQL)


@migrations(transactional=False)
def m010_costs_and_caps(db):
    # Costs: prices per arm (the prices table), the views that turn token
    # counts into cost, and rollouts.first_of_request (added by NEW_COLUMNS;
    # older rollouts count as requests of their own); allowances for
    # --budget proportional. open_db's pass over schema.sql creates the new
    # tables and views. A run stopped by a cost cap is marked 'capped', which
    # the status check of older ledgers refuses: the runs table is rebuilt
    # with schema.sql's definition, every row and id kept (foreign keys off
    # meanwhile, as in m007; checked before it commits).
    row = db.execute("select sql from sqlite_master where type = 'table' and name = 'runs'").fetchone()
    if row is None or "'capped'" in row[0]:
        return
    rebuild_table(db, "runs", "m010_costs_and_caps")


# m011: the column an in-process engine's report of a run goes in, as schema.sql declares it.
RUN_ENGINE_STATS = "engine_stats text check (engine_stats is null or json_valid(engine_stats))"


@migrations()
def m011_run_engine_stats(db):
    # Runs of the vllm-async sampler record the engine's occupancy (mean running
    # sequences) in runs.engine_stats, which `rsr stats` shows. Older ledgers
    # get the (empty) column; no row changes.
    if "engine_stats" not in {row[1] for row in db.execute("pragma table_xinfo(runs)")}:
        db.execute(f"alter table runs add column {RUN_ENGINE_STATS}")
