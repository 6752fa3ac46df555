"""From a configuration to a finished run: the shared path of `rsr sample` and
`rsr run`.

A configuration is a plain dict of sections (what the `runs` table stores);
rsr/config.py declares them and their defaults, rsr/factory.py builds the
sampler and the scorer, rsr/executors the executor. This module runs a job:
it takes the ledger's writer lock, records the run and drives the sampling
loop (rsr/sampling/).
"""

import dataclasses
import fcntl
import logging
import os
import sqlite3

from . import config as settings_config
from . import costs, early_stop
from .client import RetryPolicy
from .errors import ConfigError, RsrError
from .executors import EXECUTORS
from .factory import make_scorer, sampler_concurrency
from .options import check_owner, validate
from .progress import BudgetLeft, SampleProgress
from .runs import finish_run, record_engine_stats, redact, start_run
from .sampling import Capped, Interrupted, SampleReport, SampleSettings, sample

__all__ = ["make_executor", "make_scorer", "make_settings", "run_sampling", "with_defaults"]

log = logging.getLogger(__name__)


def with_defaults(config):
    """A copy of config with every missing setting filled from its default, and
    the executor's options checked against what the executor declares."""
    merged = settings_config.resolve(config)
    executor = dict(merged["executor"])
    name = executor.pop("name")
    if name not in EXECUTORS:
        raise ConfigError(f"Unknown executor {name!r}: use {' or '.join(EXECUTORS)}")
    cls = EXECUTORS[name]
    check_owner(executor, cls, EXECUTORS.values(), "executor")
    options = validate(cls.Options, executor, f"The {name} executor")
    merged["executor"] = {"name": name, **cls.Options(**options).model_dump()}
    return merged


def make_executor(config):
    "The configured sampler, or an executor (Ray) whose workers each build it."
    return EXECUTORS[config["executor"]["name"]].build(config)


def arm_name(config, sampler):
    "The arm a run samples: the one its config names, else its model's name."
    arm = config["sampling"].get("arm")
    if arm is not None and not str(arm).strip():
        raise ConfigError("--arm must be a name, not empty")
    return str(arm).strip() if arm is not None else str(
        sampler.describe().get("model") or early_stop.DEFAULT_ARM)


def make_settings(config):
    "SampleSettings from the sampling and sampler sections."
    sampling, sampler, executor = config["sampling"], config["sampler"], config["executor"]
    target = early_stop.parse_target(sampling["target"], sampling["max_rollouts"])
    if not sampling["early_stop"]:
        target = early_stop.Target("none")
    early_stop.check_reachable(target, sampling["max_rollouts"], sampling["max_steps"],
                               sampling["step_size"])
    params = {"temperature": sampling["temperature"], "top_p": sampling["top_p"],
              "max_tokens": sampling["max_tokens"]}
    extra = sampling.get("extra_params") or {}
    if not isinstance(extra, dict):
        raise ConfigError("extra_params must be a JSON object, e.g. '{\"top_k\": 20}'")
    params.update(extra)
    params = {k: v for k, v in params.items() if v is not None}
    workers = EXECUTORS[executor["name"]].workers(executor)
    if sampling["budget"] not in early_stop.BUDGETS:
        raise ConfigError(f"Unknown budget {sampling['budget']!r}: use {' or '.join(early_stop.BUDGETS)}")
    for key in ("max_cost", "max_cost_per_prompt", "hopeless"):
        if sampling[key] is not None and sampling[key] <= 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be more than 0 (got {sampling[key]})")
    return SampleSettings(
        target=target,
        max_rollouts=sampling["max_rollouts"],
        step_size=sampling["step_size"],
        max_steps=sampling["max_steps"],
        params=params,
        seed=sampling["seed"],
        # Each worker (a Ray actor) keeps `concurrency` requests in flight.
        concurrency=sampler_concurrency(sampler, sampling["step_size"]) * workers,
        batch_prompts=sampler["batch_prompts"],
        limit=sampling["limit"],
        where=sampling["where"],
        dedupe=sampling["dedupe"],
        pool=sampling["pool"],
        budget=sampling["budget"],
        hopeless=sampling["hopeless"],
        max_cost=sampling["max_cost"],
        max_cost_per_prompt=sampling["max_cost_per_prompt"],
        retry=RetryPolicy(max_attempts=sampler["max_retries"] + 1,
                          base_delay=sampler["retry_base_delay"]),
    )


def check_where(db, where):
    "Run the user's --where once on its own so a mistake reads as one."
    if not where:
        return
    try:
        db.execute(f"select count(*) from prompts where {where}").fetchone()
    except sqlite3.Error as ex:
        raise ConfigError(f"--where {where!r} is not valid SQL on prompts: {ex}") from None


# Lock descriptors this process holds. A forked child (a verifier worker)
# closes its copies at once: a flock belongs to the open file, so a child that
# outlived a killed sampler would otherwise keep the ledger locked.
_HELD_LOCKS = set()


def _close_inherited_locks():
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class WriterLock:
    "One sampler per ledger: an exclusive advisory lock on the database file."

    def __init__(self, db_path):
        self.db_path = str(db_path)
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.db_path, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RsrError(
                f"Another rsr sample is already writing to {self.db_path}; "
                "wait for it to finish or stop it (a killed one releases the ledger at once)"
            ) from None
        _HELD_LOCKS.add(self.fd)
        return self

    def __exit__(self, *exc):
        _HELD_LOCKS.discard(self.fd)
        os.close(self.fd)


def run_sampling(db, db_path, config, command="sample", on_progress=None, record=None):
    """Sample a ledger as config says, recording the run; returns (run_id, report).

    record is what the runs row keeps (default: config itself), always redacted.
    Raises Interrupted on SIGINT/SIGTERM after saving what arrived.
    """
    config = with_defaults(config)
    settings = make_settings(config)
    check_where(db, settings.where)
    scorer = make_scorer(config["verifier"])
    if settings.target.needs_verifier() and scorer is None:
        raise ConfigError(
            f"Target {settings.target.label} counts passes, so it needs a verifier: "
            "pass --verifier NAME ('rsr verifiers' lists them) or use --target best-of-n"
        )
    sampler = make_executor(config)
    settings = dataclasses.replace(settings, arm=arm_name(config, sampler))
    prices = costs.configured_prices(config["sampling"], settings.arm, config["sampler"].get("model"))
    if record is None:
        # The run's config records its arm.
        record = {**config, "sampling": {**config["sampling"], "arm": settings.arm}}
    with WriterLock(db_path):
        run_id = start_run(db, command, redact(record), holds_writer_lock=True)
        # A sampler that keeps state of its own in the ledger (a Batch API's
        # batch ids) is told where the ledger is.
        attach = getattr(sampler, "attach_ledger", None)
        if attach is not None:
            attach(str(db_path), run_id)
        if prices is not None:
            costs.record_prices(db, settings.arm, prices, run_id)
        tick = _with_budget(db, settings, scorer, on_progress)
        try:
            report = sample(db, sampler, scorer, settings, run_id=run_id, on_progress=tick)
            if tick is not None:
                tick(report, final=True)
        except Interrupted as ex:
            _record_end(db, run_id, "interrupted", str(ex))
            raise
        except Capped as ex:
            if tick is not None and ex.report is not None:
                tick(ex.report, final=True)
            _record_end(db, run_id, "capped", str(ex))
            raise
        except BaseException as ex:
            _record_end(db, run_id, "failed", f"{type(ex).__name__}: {ex}")
            raise
        finally:
            if scorer is not None:
                scorer.close()
            _record_engine_stats(db, run_id, sampler)
        finish_run(db, run_id, "finished", summary_line(report))
    return run_id, report


def _with_budget(db, settings, scorer, on_progress):
    """The sampling loop's progress callback: on_progress gets SampleProgress
    snapshots, the report with the budget the pending prompts have left."""
    if on_progress is None:
        return None
    left = BudgetLeft(db, settings, scorer.name if scorer is not None else "")

    def tick(report, final=False):
        on_progress(SampleProgress(report, left(report.rollouts, force=final)))

    tick(SampleReport(), final=True)  # the whole budget, before the first request
    return tick


def _record_end(db, run_id, status, summary):
    "Mark how a run ended, if the ledger can still be written (a full disk may refuse)."
    try:
        finish_run(db, run_id, status, summary)
    except sqlite3.Error as ex:
        log.warning("could not record run %s as %s: %s", run_id, status, ex)


def _record_engine_stats(db, run_id, sampler):
    "What an engine that measures itself (vllm-async) says about the run, kept with it."
    stats = getattr(sampler, "engine_stats", None)
    if stats is None:
        return
    try:
        record_engine_stats(db, run_id, stats())
    except sqlite3.Error as ex:
        log.warning("could not record the engine's stats for run %s: %s", run_id, ex)


def summary_line(report):
    "The one line a finished sampling run ends with."
    return (
        f"{report.rollouts:,} rollouts in {report.elapsed:.1f}s: "
        f"{report.satisfied:,} prompts satisfied, {report.exhausted:,} exhausted, "
        f"{report.pending:,} pending; {report.passed:,} passed, {report.failed:,} failed, "
        f"{report.truncated:,} truncated, {report.errors:,} errors"
        + (f"; retries {report.retries:,}" if report.retries else "")
        + (f"; faults {fault_counts(report.faults)}" if report.faults else "")
    )


def report_dict(report):
    "A sampling report as JSON-ready counts (what `--json` prints)."
    return {
        "rollouts": report.rollouts, "passed": report.passed, "failed": report.failed,
        "undecided": report.undecided, "truncated": report.truncated, "errors": report.errors,
        "completion_tokens": report.completion_tokens, "requests": report.requests,
        "retries": report.retries, "steps": report.steps,
        "seconds": round(report.elapsed, 3),
        "prompts": {"total": report.prompts, "satisfied": report.satisfied,
                    "exhausted": report.exhausted, "pending": report.pending},
        "faults": dict(report.faults),
    }


def fault_counts(faults):
    "Failed attempts by kind, most frequent first: 'http_429 12, timeout 3'."
    return ", ".join(f"{kind} {count:,}" for kind, count in sorted(faults.items(), key=lambda kv: (-kv[1], kv[0])))
