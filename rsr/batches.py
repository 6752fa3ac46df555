"""Rounds of sampling run anywhere: batch request files out, batch output files in.

`rsr export RUN.db --format batch-requests` plans the next round exactly as
`rsr sample` would plan it (rsr/sampling/plan.py over rsr/early_stop.py's
pending prompts): for every prompt that still needs sampling, the sample
indexes of its next step and their seeds, one OpenAI batch line per rollout
(rsr/batchfiles.py). Any runner (`vllm run-batch`, a provider's Batch API, a
script) answers them; `rsr import RUN.db OUTPUT.jsonl` stores each result
under the (prompt, sample index, step) its custom_id names, once: a result
already in the ledger is skipped, so importing a file twice adds nothing. The
next export holds only the prompts still pending, so early stop works across
rounds.

The round's settings (target, budget, seed, sampling parameters, model,
verifier) are the options given, else those of the latest sampling run or
batch export in `runs`, else sample's defaults. Each export is recorded in
`runs` with them, so the next round (and `rsr publish`) reads them back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional

from pydantic import Field

from . import batchfiles
from .client import RequestFailed
from .errors import ConfigError, InputError
from .hookspecs import hookimpl
from .options import PluginOptions, validate
from .pipeline import make_settings, with_defaults
from .runs import finish_run, start_run, utcnow
from .sampling.ledger import INSERT_ROLLOUTS, UPSERT_STEPS, PromptStates, insert_rows
from .sampling.plan import plan_step, request_for
from .samplers import Completion
from .samplers.openai import parse_response
from .selection import response_hash

FORMAT = "batch-requests"

# The latest configuration a round can take its settings from.
ROUND_CONFIG_SQL = """
select config from runs
where command in ('sample', 'run')
   or (command = 'export' and json_extract(config, '$.format') = 'batch-requests')
order by id desc limit 1
"""
KNOWN_PROMPT_SQL = "select 1 from prompts where id = :id"
HAVE_ROLLOUT_SQL = ("select 1 from rollouts where prompt_id = :prompt_id and arm = :arm "
                    "and sample_index = :index")

# Options a round takes, by the names of the sampling section (rsr/config.py).
ROUND_SAMPLING = ("target", "arm", "pool", "max_rollouts", "step_size", "max_steps",
                  "early_stop", "limit", "where", "dedupe", "seed", "temperature", "top_p",
                  "max_tokens", "extra_params")


class RoundOptions(PluginOptions):
    """A round's settings (`--format-option KEY=VALUE`); each one not given is
    the latest sampling run's or batch export's, else sample's default."""

    model: Optional[str] = Field(None, description="Model name each request names")
    target: Optional[str] = Field(None, description="sft, dpo, multi-sft:K, best-of-n[:N], none")
    arm: Optional[str] = Field(None, description="The arm the round samples [the model's name]")
    pool: Optional[bool] = Field(None, description="The target counts every arm's passes")
    max_rollouts: Optional[int] = Field(None, ge=1)
    step_size: Optional[int] = Field(None, ge=1)
    max_steps: Optional[int] = Field(None, ge=1)
    early_stop: Optional[bool] = None
    limit: Optional[int] = Field(None, ge=1)
    dedupe: Optional[bool] = None
    # The sampling seed (export's own --seed is for --pick random).
    sampling_seed: Optional[int] = None
    temperature: Optional[float] = Field(None, ge=0)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    max_tokens: Optional[int] = Field(None, ge=1)
    extra_params: Optional[dict] = None
    url: str = Field(batchfiles.CHAT_URL, description="The endpoint each line names")


def stored_round_config(db) -> dict:
    "The sections of the latest sampling run or batch export (empty if none)."
    row = db.execute(ROUND_CONFIG_SQL).fetchone()
    if row is None:
        return {}
    config = json.loads(row[0])
    sampling = config.get("sampling") if isinstance(config.get("sampling"), dict) else {}
    sampler = config.get("sampler") if isinstance(config.get("sampler"), dict) else {}
    verifier = config.get("verifier") if isinstance(config.get("verifier"), dict) else {}
    return {
        "sampler": {"model": sampler.get("model")},
        "sampling": {k: sampling[k] for k in ROUND_SAMPLING if sampling.get(k) is not None},
        "verifier": {k: verifier[k] for k in ("name", "options") if verifier.get(k)},
    }


def round_config(db, options: dict, verifier: str | None = None,
                 where: str | None = None) -> dict:
    """The job configuration of the next round: options (RoundOptions' names)
    over the stored one; verifier and where as export's --verifier and --where."""
    config = stored_round_config(db)
    sampling = dict(config.get("sampling", {}))
    given = {k: v for k, v in options.items() if v is not None}
    if "sampling_seed" in given:
        given["seed"] = given.pop("sampling_seed")
    sampling.update({k: given[k] for k in ROUND_SAMPLING if k in given})
    if where is not None:
        sampling["where"] = where
    sampler = dict(config.get("sampler", {}))
    if given.get("model"):
        sampler["model"] = given["model"]
    verifier_section = dict(config.get("verifier", {}))
    if verifier is not None:
        verifier_section = {"name": verifier}
    return with_defaults({"sampler": {k: v for k, v in sampler.items() if v is not None},
                          "sampling": sampling, "verifier": verifier_section})


@dataclass
class Round:
    "A planned round: its settings and the request lines."

    config: dict
    lines: list = field(default_factory=list)
    prompts: int = 0


def plan_round(db, config: dict, url: str = batchfiles.CHAT_URL) -> Round:
    """Every request of the next round, as `rsr sample` would ask them: for each
    pending prompt, its next step's sample indexes, one line per rollout."""
    settings = make_settings(config)
    verifier = config["verifier"].get("name") or ""
    if settings.target.needs_verifier() and not verifier:
        raise ConfigError(
            f"Target {settings.target.label} counts passes, so the round needs the verifier "
            "that scores it: pass --verifier NAME, or --format-option target=best-of-n")
    model = config["sampler"].get("model")
    if not model:
        raise ConfigError("Batch requests name a model: pass --format-option model=NAME "
                          "(the model the batch runner serves)")
    # The round's arm: the one its config names, else the model's (as rsr sample does).
    settings = dataclasses.replace(settings, arm=str(config["sampling"].get("arm") or model))
    states = PromptStates(db, settings, verifier)
    planned = Round(config)
    after, page = 0, 512
    while True:
        rows = states.pending(after, page)
        for row in rows:
            after = row["rowid"]
            work = plan_step(db, row, settings)
            if work is None:
                continue
            planned.prompts += 1
            for index in work.indexes:
                request = request_for(work, [index], settings)
                key = batchfiles.BatchKey(work.prompt_id, work.step, work.requested, index,
                                          request.seed, settings.arm)
                planned.lines.append(batchfiles.request_line(
                    key.custom_id, model, work.messages, settings.params, key.seed, url))
        if len(rows) < page:
            return planned


def record_round(db, planned: Round, output) -> None:
    "Record an exported round in `runs`, with the settings the next round reads back."
    config = {"format": FORMAT, "output": None if output is None else str(output),
              "requests": len(planned.lines), "prompts": planned.prompts,
              **{k: planned.config[k] for k in ("sampler", "sampling", "verifier")}}
    config["sampler"] = {"model": config["sampler"].get("model")}
    run_id = start_run(db, "export", config)
    finish_run(db, run_id, "finished",
               f"{len(planned.lines):,} batch requests for {planned.prompts:,} prompts")


@dataclass
class OutputImport:
    "Counts of a batch output file's import."

    results: int = 0
    rollouts_added: int = 0
    errors: int = 0
    already_imported: int = 0
    new_ids: list = field(default_factory=list)


class OutputImporter:
    """Stores batch results (rsr/batchfiles.py lines) in the ledger under the
    keys their custom_ids name, skipping those already stored."""

    def __init__(self, db, run_id: int, sampler: str = "batch"):
        self.db, self.run_id, self.sampler = db, run_id, sampler
        self.seen: set = set()
        self.counts = OutputImport()

    def add(self, raw: dict, where: str, params: dict | None = None) -> None:
        "Store one output line (InputError for a malformed one)."
        result = batchfiles.read_output_line(raw, where)
        self.store(result, where, params)

    def store(self, result: batchfiles.BatchResult, where: str, params: dict | None = None) -> bool:
        "Store one result; False when it was stored before."
        key = result.key
        self.counts.results += 1
        if self.db.execute(KNOWN_PROMPT_SQL, {"id": key.prompt_id}).fetchone() is None:
            raise InputError(f"{where}: custom_id names prompt {key.prompt_id!r}, "
                             "which is not in this ledger")
        slot = (key.prompt_id, key.arm, key.sample_index)
        if slot in self.seen or self.db.execute(
                HAVE_ROLLOUT_SQL, {"prompt_id": key.prompt_id, "arm": key.arm,
                                   "index": key.sample_index}
        ).fetchone():
            self.counts.already_imported += 1
            return False
        self.seen.add(slot)
        model = None
        if result.body is not None:
            model = result.body.get("model")
            try:
                completion = parse_response(result.body, None, key.seed)[0]
            except RequestFailed as ex:  # a body with no usable choice
                completion = _error_completion(f"malformed response: {ex}", key.seed)
        else:
            completion = _error_completion(result.error, key.seed)
        if completion.error is not None:
            self.counts.errors += 1
        now = utcnow()
        rollout = (key.prompt_id, key.arm, key.sample_index, key.step, self.run_id, model,
                   self.sampler,
                   json.dumps(params or {}, sort_keys=True), completion.seed, completion.response,
                   completion.reasoning, completion.finish_reason, int(completion.truncated),
                   completion.prompt_tokens, completion.completion_tokens, None,
                   completion.error, now, response_hash(completion.response),
                   # one rollout per request: each pays its own prompt
                   1)
        step = (key.prompt_id, key.step, key.arm, self.run_id, key.requested, 1, now,
                now if key.requested == 1 else None)
        insert_rows(self.db.conn, INSERT_ROLLOUTS, [rollout])
        insert_rows(self.db.conn, UPSERT_STEPS, [step], (now,))
        self.counts.rollouts_added += 1
        return True


def _error_completion(text, seed):
    return Completion(response=None, error=text or "failed", seed=seed)


def round_params(db) -> dict:
    "The sampling parameters of the latest round's settings (what its requests asked)."
    return make_settings(round_config(db, {})).params


def export_round(db, options: dict, output, verifier=None, where=None,
                 write=None) -> Round:
    """Plan the next round, write its lines with write(lines) and record it;
    returns the Round."""
    config = round_config(db, options, verifier, where)
    planned = plan_round(db, config, options.get("url") or batchfiles.CHAT_URL)
    if write is not None:
        write(planned.lines)
    record_round(db, planned, output)
    return planned




class BatchRequests:
    """The `batch-requests` export format: the next round's requests. It plans
    rather than selects (`plans`): rsr export hands it the ledger opened for
    writing (the round is recorded) and the options as given."""

    name = FORMAT
    description = ("The next round's requests, one per rollout, in the OpenAI batch input "
                   "format (vllm run-batch reads it too); rsr import reads the output back")
    plans = True
    Options = RoundOptions

    def plan(self, db, options: dict, output) -> tuple[int, str]:
        "Write the next round to output (a path or None for stdout); returns (lines, summary)."
        from .export import write_rows

        own = validate(RoundOptions, dict(options.get("format_options") or {}),
                       f"The {FORMAT} format")
        with db.atomic():
            planned = export_round(db, own, output, options.get("verifier"),
                                   options.get("where"),
                                   write=lambda lines: write_rows(lines, output))
        summary = (f"Exported {len(planned.lines):,} batch requests for "
                   f"{planned.prompts:,} pending prompts")
        return len(planned.lines), summary

    def rows(self, db, options):
        raise ConfigError(f"--format {FORMAT} plans a round; run it with rsr export")

    def dataset_info(self, file_name):
        return None


@hookimpl
def register_formatters(register):
    register(BatchRequests())
