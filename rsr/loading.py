"""Loading prompts into the ledger: reading files, normalising records, writing.

Accepted files: JSONL (`.jsonl`, `.ndjson`, also gzipped), JSON arrays (`.json`),
and Parquet when pyarrow is installed. Accepted records: the chat shape
`{id?, messages, metadata?}`, the common flat shapes (`prompt`, `question`,
`problem`, `instruction` or `query`, plus `answer`), or anything a user's
`--transform path.py:func` turns into `{id, messages, metadata}`.

A load is one transaction: any bad record (unless skipped with skip_invalid)
leaves the database exactly as it was.
"""

import gzip
import hashlib
import importlib.util
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, InputError
from .runs import start_run, finish_run

PROMPT_FIELDS = ("prompt", "question", "problem", "instruction", "query")
ROLES = ("system", "user", "assistant", "tool", "developer")
RESERVED = ("id", "messages", "metadata")
MAX_ERRORS_KEPT = 20

INSERT_SKIP_SQL = """
insert into prompts (id, messages, metadata, source) values (?, ?, ?, ?)
on conflict (id) do nothing
"""

INSERT_ERROR_SQL = "insert into prompts (id, messages, metadata, source) values (?, ?, ?, ?)"

# Replacing keeps a prompt's rollouts attached, so it may fix metadata (a gold
# answer) but must not change the text the rollouts were sampled from; the
# check happens before this runs.
INSERT_REPLACE_SQL = """
insert into prompts (id, messages, metadata, source) values (?, ?, ?, ?)
on conflict (id) do update set
    messages = excluded.messages, metadata = excluded.metadata, source = excluded.source
where prompts.messages is not excluded.messages or prompts.metadata is not excluded.metadata
"""

EXISTING_SQL = "select id, messages, (select count(*) from rollouts where prompt_id = prompts.id) from prompts where id in ({})"


@dataclass
class LoadResult:
    "What a load did, for the summary line."

    read: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    skipped_by_transform: int = 0
    invalid: int = 0
    errors: list = field(default_factory=list)


def load_transform(spec):
    "Import `path.py:function` and return the function."
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise ConfigError(f"--transform must look like path.py:function, got {spec!r}")
    if not Path(path).is_file():
        raise ConfigError(f"Transform file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as ex:  # the user's module: report any failure, with its type
        raise ConfigError(f"Could not import {path}: {type(ex).__name__}: {ex}") from ex
    func = getattr(module, name, None)
    if not callable(func):
        raise ConfigError(f"{path} has no function named {name!r}")
    return func


def _decode(raw_line, where):
    try:
        return raw_line.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise InputError(
            f"{where}: not valid UTF-8 (byte 0x{raw_line[ex.start]:02x} at column {ex.start + 1})"
        ) from None


def _parse_json(text, where):
    try:
        return json.loads(text)
    except json.JSONDecodeError as ex:
        raise InputError(f"{where}: invalid JSON: {ex.msg} (column {ex.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None


def _open_binary(path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_records(path, on_error=None, on_position=None):
    """Yield (where, raw_record) for every record in a file; where is "file:line".

    Raises InputError naming the file and line for unreadable input; with
    on_error, a JSONL line that cannot be read is passed to it and skipped.
    on_position(bytes) is told, now and then, how far into the file (on disk,
    compressed or not) the reading is.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    if path.name.lower().endswith(".parquet"):
        yield from _read_parquet(path)
        return
    count = 0
    try:
        with _open_binary(path) as f:
            if _peek_first_char(f) == b"[":
                items = _parse_json_array(_decode(f.read(), str(path)), path)
                for index, item in enumerate(items):
                    count += 1
                    yield f"{path}:record {index + 1}", item
            else:
                raw = getattr(f, "fileobj", f)  # a gzip file's position on disk
                for line_no, raw_line in enumerate(f, start=1):
                    if on_position is not None and line_no % 1000 == 0:
                        on_position(raw.tell())
                    where = f"{path}:{line_no}"
                    try:
                        text = _decode(raw_line, where)
                        if not text.strip():
                            continue
                        count += 1
                        record = _parse_json(text, where)
                    except InputError as ex:
                        if on_error is None:
                            raise
                        on_error(ex)
                        continue
                    yield where, record
    except (gzip.BadGzipFile, EOFError) as ex:
        raise InputError(f"{path}: not a valid gzip file ({ex})") from None
    except OSError as ex:
        raise InputError(f"{path}: cannot read: {ex}") from None
    if count == 0:
        raise InputError(f"{path}: the file is empty (no records)")


def _peek_first_char(f):
    start = f.tell() if hasattr(f, "tell") else 0
    while True:
        ch = f.read(1)
        if not ch or not ch.isspace():
            break
    f.seek(start)
    # A UTF-8 byte-order mark is not content.
    head = f.read(3)
    if head != b"\xef\xbb\xbf":
        f.seek(start)
    return ch


def _parse_json_array(text, path):
    try:
        items = json.loads(text)
    except json.JSONDecodeError as ex:
        raise InputError(f"{path}:{ex.lineno}: invalid JSON: {ex.msg} (column {ex.colno})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply") from None
    if not isinstance(items, list):
        raise InputError(f"{path}: expected a JSON array of records")
    return items


def _read_parquet(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        parquet_file = pq.ParquetFile(path)
    except Exception as ex:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({ex})") from None
    row = 0
    for batch in parquet_file.iter_batches(batch_size=2000):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}:row {row}", record
    if row == 0:
        raise InputError(f"{path}: the file is empty (no records)")


def _check_messages(messages, where, field_name="messages"):
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: field '{field_name}' must be a non-empty list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InputError(f"{where}: field '{field_name}[{i}]' must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise InputError(
                f"{where}: field '{field_name}[{i}].role' must be one of {', '.join(ROLES)}, got {role!r}"
            )
        content = message.get("content")
        if not isinstance(content, (str, list)) or (isinstance(content, str) and not content.strip()):
            raise InputError(
                f"{where}: field '{field_name}[{i}].content' must be non-empty text"
            )
    if not any(message["role"] == "user" for message in messages):
        roles = ", ".join(dict.fromkeys(message["role"] for message in messages))
        raise InputError(
            f"{where}: field '{field_name}' holds no user turn (only {roles}): "
            "a prompt needs a user message for the model to answer"
        )
    return messages


def prompt_id_for(messages) -> str:
    "A stable id from a prompt's messages: the same text always gets the same id."
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def normalize(raw, where) -> dict:
    "Turn one raw record into {id, messages, metadata}, or raise InputError."
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    metadata = raw.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InputError(f"{where}: field 'metadata' must be an object")
    metadata = dict(metadata)
    if "messages" in raw:
        messages = _check_messages(raw["messages"], where)
        used = {"messages"}
    else:
        key = next((k for k in PROMPT_FIELDS if k in raw), None)
        if key is None:
            raise InputError(
                f"{where}: no prompt found: expected a 'messages' list or one of "
                f"{', '.join(PROMPT_FIELDS)} (or use --transform path.py:func)"
            )
        value = raw[key]
        used = {key}
        if isinstance(value, list):
            messages = _check_messages(value, where, key)
        elif isinstance(value, str) and value.strip():
            content = value
            if key == "instruction" and isinstance(raw.get("input"), str) and raw["input"].strip():
                content = f"{value}\n\n{raw['input']}"
                used.add("input")
            messages = [{"role": "user", "content": content}]
        else:
            raise InputError(f"{where}: field '{key}' must be non-empty text")
    # Every other top-level field (answer, subject, ...) is metadata.
    for key, value in raw.items():
        if key in RESERVED or key in used:
            continue
        metadata.setdefault(key, value)
    raw_id = raw.get("id")
    if raw_id is None or raw_id == "":
        prompt_id = prompt_id_for(messages)
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        prompt_id = str(raw_id)
    else:
        raise InputError(f"{where}: field 'id' must be text or an integer")
    return {"id": prompt_id, "messages": messages, "metadata": metadata}


def _transformed(transform, raw, where):
    try:
        record = transform(raw)
    except Exception as ex:  # the user's code: report any failure with its location
        raise InputError(f"{where}: the transform raised {type(ex).__name__}: {ex}") from ex
    if record is None:
        return None
    if not isinstance(record, dict) or "messages" not in record:
        raise InputError(
            f"{where}: the transform returned {type(record).__name__}; "
            "expected a dict with 'messages' (and optionally 'id', 'metadata'), or None to skip"
        )
    return record


def iter_prompts(paths, transform=None, skip_invalid=False, result=None, on_progress=None):
    """Yield (where, prompt) for every valid record of the files, in order.

    on_progress(records, bytes_read, bytes_total) is called now and then."""
    result = result if result is not None else LoadResult()
    sizes = [Path(p).stat().st_size if Path(p).is_file() else 0 for p in paths]
    total = sum(sizes)

    def invalid(error):
        if not skip_invalid:
            raise error
        result.invalid += 1
        if len(result.errors) < MAX_ERRORS_KEPT:
            result.errors.append(str(error))

    for number, path in enumerate(paths):
        before = sum(sizes[:number])
        at_position = None
        if on_progress is not None:
            def at_position(position, before=before):
                on_progress(result.read, before + position, total)
        for where, raw in read_records(path, on_error=invalid if skip_invalid else None,
                                       on_position=at_position):
            result.read += 1
            try:
                if transform is not None:
                    raw = _transformed(transform, raw, where)
                    if raw is None:
                        result.skipped_by_transform += 1
                        continue
                prompt = normalize(raw, where)
                # The record must be storable as JSON in UTF-8 text (a lone
                # surrogate such as "\ud800" is valid JSON but not UTF-8).
                json.dumps(prompt, ensure_ascii=False).encode("utf-8")
            except InputError as ex:
                invalid(ex)
                continue
            except (TypeError, ValueError) as ex:
                invalid(InputError(f"{where}: cannot store the record as JSON: {ex}"))
                continue
            yield where, prompt
        if on_progress is not None:
            on_progress(result.read, before + sizes[number], total)


def load_prompts(db, paths, transform=None, on_duplicate="skip", skip_invalid=False, config=None,
                 on_progress=None):
    """Load prompts from files into the ledger, in one transaction.

    on_duplicate: "skip" keeps what is stored, "replace" updates it (metadata
    only, once a prompt has rollouts), "error" refuses the whole load.
    on_progress(records, bytes_read, bytes_total) is called now and then.
    """
    if on_duplicate not in ("skip", "replace", "error"):
        raise ConfigError(f"on_duplicate must be skip, replace or error, not {on_duplicate!r}")
    if isinstance(transform, str):
        transform = load_transform(transform)
    result = LoadResult()
    conn = db.conn
    with db.atomic():
        run_id = start_run(db, "load", config or {"files": [str(p) for p in paths]})
        batch = []
        seen = {}
        for where, prompt in iter_prompts(paths, transform, skip_invalid, result, on_progress):
            prompt_id = prompt["id"]
            if prompt_id in seen:
                if on_duplicate == "error":
                    raise InputError(
                        f"{where}: duplicate prompt id {prompt_id!r} (first seen at {seen[prompt_id]}); "
                        "use --on-duplicate skip or replace"
                    )
                if on_duplicate == "skip":
                    result.unchanged += 1
                    continue
            seen[prompt_id] = where
            batch.append(
                (
                    prompt_id,
                    json.dumps(prompt["messages"], ensure_ascii=False),
                    json.dumps(prompt["metadata"], ensure_ascii=False),
                    where,
                )
            )
            if len(batch) >= 1000:
                _write_batch(conn, batch, on_duplicate, result)
                batch = []
        if batch:
            _write_batch(conn, batch, on_duplicate, result)
        summary = (
            f"{result.added} added, {result.replaced} replaced, {result.unchanged} already present"
        )
        finish_run(db, run_id, "finished", summary)
    return result


def _write_batch(conn, batch, on_duplicate, result):
    ids = [row[0] for row in batch]
    existing = {}
    for chunk_start in range(0, len(ids), 900):
        chunk = ids[chunk_start : chunk_start + 900]
        sql = EXISTING_SQL.format(", ".join("?" * len(chunk)))
        for prompt_id, messages, rollouts in conn.execute(sql, chunk):
            existing[prompt_id] = (messages, rollouts)
    if on_duplicate == "error" and existing:
        first = next(row for row in batch if row[0] in existing)
        raise InputError(
            f"{first[3]}: prompt id {first[0]!r} is already in the ledger; "
            "use --on-duplicate skip or replace"
        )
    if on_duplicate == "replace":
        for prompt_id, messages, _, where in batch:
            old = existing.get(prompt_id)
            if old and old[1] and json.loads(old[0]) != json.loads(messages):
                raise InputError(
                    f"{where}: prompt {prompt_id!r} already has {old[1]} rollouts sampled "
                    "from different messages; replacing them would mix data "
                    "(only metadata can be replaced once a prompt has rollouts)"
                )
    sql = {"skip": INSERT_SKIP_SQL, "error": INSERT_ERROR_SQL, "replace": INSERT_REPLACE_SQL}[
        on_duplicate
    ]
    before = conn.total_changes
    try:
        conn.executemany(sql, batch)
    except sqlite3.IntegrityError as ex:
        raise InputError(f"Could not store prompts: {ex}") from None
    changed = conn.total_changes - before
    new = sum(1 for row in batch if row[0] not in existing)
    result.added += new
    if on_duplicate == "replace":
        result.replaced += changed - new
        result.unchanged += len(batch) - changed
    else:
        result.unchanged += len(batch) - new
