"""The `runs` table: one row per invocation that writes to the ledger.

Each row keeps the command and its full configuration, with secrets redacted, so
a run can be reproduced, and so `rsr run --db` can resume with the same settings.
"""

import json
import os
import re
import socket
from datetime import datetime, timezone

from . import __version__

# Keys whose values are secrets: api_key, hf_token, password... (not max_tokens).
SECRET_KEY_RE = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|token|secret|password|authorization|access[_-]?key)$", re.I
)
REDACTED = "***"

INSERT_RUN_SQL = """
insert into runs (command, config, rsr_version, hostname, pid, status)
values (:command, :config, :version, :hostname, :pid, 'running')
"""

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


def start_run(db, command, config) -> int:
    "Record the start of a command; returns the run id."
    cursor = db.execute(
        INSERT_RUN_SQL,
        {
            "command": command,
            "config": json.dumps(redact(config), default=str, sort_keys=True),
            "version": __version__,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    return cursor.lastrowid


def finish_run(db, run_id, status="finished", summary=None):
    "Record how a command ended: finished, interrupted or failed."
    db.execute(
        FINISH_RUN_SQL,
        {"id": run_id, "status": status, "summary": summary, "finished_at": utcnow()},
    )
