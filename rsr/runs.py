"""The `runs` table: one row per invocation that writes to the ledger.

Each row keeps the command and its full configuration, with secrets redacted, so
a run can be reproduced, and so `rsr run --db` can resume with the same settings.
"""

import contextvars
import json
import os
import re
import socket
from datetime import datetime, timezone

from .version import __version__

# Keys whose values are secrets: api_key, hf_token, password... (not max_tokens).
SECRET_KEY_RE = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|token|secret|password|authorization|access[_-]?key)$", re.I
)
REDACTED = "***"

INSERT_RUN_SQL = """
insert into runs (command, config, rsr_version, hostname, pid, status, argv)
values (:command, :config, :version, :hostname, :pid, 'running', :argv)
"""

# The command line of this invocation, when it came from the rsr CLI (which
# sets it): each run it starts records it, redacted.
COMMAND_LINE: contextvars.ContextVar = contextvars.ContextVar("rsr_command_line", default=None)

FINISH_RUN_SQL = """
update runs set status = :status, summary = :summary, finished_at = :finished_at
where id = :id
"""


def utcnow() -> str:
    "The current time as ISO-8601 UTC text, as stored in every created_at column."
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def redact(value):
    "A copy of a config value with every secret-looking key's value replaced."
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if SECRET_KEY_RE.search(str(key)) and item not in (None, "")
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def redact_argv(argv):
    """A command line with the values of secret options replaced: `--api-key X`,
    `--api-key=X` and `KEY=X` (a --*-option value) for secret-looking keys."""
    out, hide_next = [], False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, sep, value = arg.partition("=")
        if arg.startswith("--") and SECRET_KEY_RE.search(name.lstrip("-")):
            if sep:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
        elif sep and not arg.startswith("-") and SECRET_KEY_RE.search(name.strip().rsplit(".", 1)[-1]):
            out.append(f"{name}={REDACTED}")
        else:
            out.append(arg)
    return out


# Runs still marked running, with what they wrote.
RUNNING_SQL = """
select runs.id, runs.command, runs.hostname, runs.pid,
       (select count(*) from rollouts where rollouts.run_id = runs.id) as rollouts
from runs where status = 'running'
"""

# Commands that write only under the ledger's writer lock (one at a time).
LOCKED_COMMANDS = ("sample", "run")


def mark_interrupted(db, holds_writer_lock=False):
    """Mark runs left `running` by a process that is gone (a SIGKILL, a power
    cut) as interrupted, with what they wrote; returns how many.

    A run is gone when its process no longer exists on this host, or, for the
    caller that holds the writer lock, when it is a sample/run (only one holds
    the lock, so any other still marked running died holding it)."""
    host, marked = socket.gethostname(), 0
    for run_id, command, hostname, pid, rollouts in db.execute(RUNNING_SQL).fetchall():
        locked = holds_writer_lock and command in LOCKED_COMMANDS
        if not locked and not (hostname == host and pid and not _alive(pid)):
            continue
        db.execute(FINISH_RUN_SQL, {
            "id": run_id, "status": "interrupted", "finished_at": None,
            "summary": f"found still marked running by a later run (process {pid} on {hostname} "
                       f"was gone); {rollouts:,} rollouts written",
        })
        marked += 1
    return marked


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def start_run(db, command, config, holds_writer_lock=False) -> int:
    """Record the start of a command; returns the run id. Runs found left
    running by a killed process are marked interrupted first."""
    mark_interrupted(db, holds_writer_lock)
    cursor = db.execute(
        INSERT_RUN_SQL,
        {
            "command": command,
            "config": json.dumps(redact(config), default=str, sort_keys=True),
            "version": __version__,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "argv": None if COMMAND_LINE.get() is None
            else json.dumps(redact_argv(COMMAND_LINE.get())),
        },
    )
    return cursor.lastrowid


def finish_run(db, run_id, status="finished", summary=None):
    "Record how a command ended: finished, interrupted or failed."
    db.execute(
        FINISH_RUN_SQL,
        {"id": run_id, "status": status, "summary": summary, "finished_at": utcnow()},
    )


ENGINE_STATS_SQL = "update runs set engine_stats = :stats where id = :id"


def record_engine_stats(db, run_id, stats) -> None:
    "Keep what the run's engine reported about itself (occupancy), if anything."
    if stats:
        db.execute(ENGINE_STATS_SQL, {"id": run_id, "stats": json.dumps(stats, sort_keys=True)})
