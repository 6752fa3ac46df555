"""Importing rollouts generated elsewhere, so they can be verified and exported.

Accepted records (JSONL, JSON arrays, gzip, Parquet: the same readers as
`rsr load`), recognised one record at a time:

- rsr rollout rows: `{id?, messages, metadata?, rollouts: [{response, score?,
  passed?, finish_reason?, reasoning?, ...}]}`
- open-instruct generation output: `{messages: [...prompt, assistant],
  model_completion, reference_completion?, model?}`, one line per completion
- flat rows: `{prompt_id or messages (or question, prompt, ...), response,
  finish_reason?, score?, passed?}`
- OpenAI / vLLM batch output lines (`{custom_id, response: {status_code,
  body}, error}`) for requests `rsr export --format batch-requests` wrote:
  each is stored under the prompt, step and sample index its custom_id names,
  a failed request as an error row, and a result already stored is skipped
  (rsr/batches.py)

Prompts not yet in the ledger are added (ids as `rsr load` makes them, so a
file's prompts match a loaded dataset's). A score in the file is stored in
`scores` under the chosen verifier name; a boolean score, or `passed`, is a
verdict. An empty answer's score is not stored (it is an invalid rollout).
`finish_reason: "length"` marks a rollout truncated, and reasoning in
`<think>` tags is split from the final answer as the samplers do.

An import is one transaction: a bad record (unless skipped) leaves the ledger
exactly as it was. Importing the same file again adds nothing: each imported
rollout remembers the file name, line and position it came from.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .early_stop import DEFAULT_ARM
from . import batchfiles
from .batches import OutputImporter, round_params
from .errors import InputError
from .loading import MAX_ERRORS_KEPT, normalize, read_records
from .reasoning import split_reasoning
from .runs import finish_run, start_run
from .selection import response_hash
from .samplers import WHITESPACE
from .verification import save_scores

ROLLOUT_FIELDS = (
    "response",
    "reasoning",
    "finish_reason",
    "score",
    "passed",
    "completion_tokens",
    "prompt_tokens",
    "model",
    "error",
    "seed",
    "latency_ms",
)
INT_FIELDS = ("completion_tokens", "prompt_tokens", "seed", "latency_ms")
TEXT_FIELDS = ("reasoning", "finish_reason", "model", "error")

PROMPT_SQL = "select messages from prompts where id = :id"
INSERT_PROMPT_SQL = """
insert into prompts (id, messages, metadata, source) values (:id, :messages, :metadata, :source)
"""
NEXT_INDEX_SQL = (
    "select coalesce(max(sample_index), -1) + 1 from rollouts where prompt_id = :id and arm = :arm")
IMPORTED_SQL = """
select prompt_id, json_extract(params, '$.imported_from') from rollouts
where sampler = 'import' and params is not null
"""
INSERT_ROLLOUT_SQL = """
insert into rollouts (prompt_id, arm, sample_index, step, run_id, model, sampler, params, seed,
    response, reasoning, finish_reason, truncated, prompt_tokens, completion_tokens,
    latency_ms, error, response_hash)
values (:prompt_id, :arm, :sample_index, 1, :run_id, :model, 'import', :params, :seed,
    :response, :reasoning, :finish_reason, :truncated, :prompt_tokens, :completion_tokens,
    :latency_ms, :error, :response_hash)
"""


@dataclass
class ImportResult:
    "What an import did, for the summary line."

    read: int = 0
    prompts_added: int = 0
    rollouts_added: int = 0
    scores_added: int = 0
    already_imported: int = 0
    # batch output lines that were failed requests (stored as error rows)
    error_rows: int = 0
    invalid: int = 0
    errors: list = field(default_factory=list)


def _rollout(item, where, label):
    "Check one rollout object and return the columns it sets."
    if isinstance(item, str):
        item = {"response": item}
    if not isinstance(item, dict):
        raise InputError(f"{where}: {label} must be an object with a 'response'")
    response = item.get("response")
    if response is None and not item.get("error"):
        raise InputError(f"{where}: {label} has no 'response' (text)")
    if response is not None and not isinstance(response, str):
        raise InputError(f"{where}: field '{label}.response' must be text")
    out = {"response": response}
    for name in TEXT_FIELDS:
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: field '{label}.{name}' must be text")
        out[name] = value
    for name in INT_FIELDS:
        value = item.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(f"{where}: field '{label}.{name}' must be an integer")
        out[name] = value
    score, passed = item.get("score"), item.get("passed")
    if isinstance(score, bool):
        score, passed = float(score), score if passed is None else passed
    elif score is not None and not isinstance(score, (int, float)):
        raise InputError(f"{where}: field '{label}.score' must be a number or true/false")
    if passed not in (None, True, False, 0, 1):
        raise InputError(f"{where}: field '{label}.passed' must be true, false or null")
    out["score"] = None if score is None else float(score)
    out["passed"] = None if passed is None else int(bool(passed))
    if out["reasoning"] is None and response is not None:
        reasoning, final = split_reasoning(response)
        if reasoning is not None:
            out["reasoning"], out["response"] = reasoning, final
    out["truncated"] = int(out["finish_reason"] == "length")
    return out


def parse_record(raw, where):
    """One record as (prompt, rollouts): prompt is {id, messages, metadata} or
    {id} alone (a prompt the ledger must already hold)."""
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if "rollouts" in raw:
        items = raw["rollouts"]
        if not isinstance(items, list):
            raise InputError(f"{where}: field 'rollouts' must be a list")
        rest = {k: v for k, v in raw.items() if k != "rollouts"}
        rollouts = [_rollout(item, where, f"rollouts[{i}]") for i, item in enumerate(items)]
        return normalize(rest, where), rollouts
    if "model_completion" in raw:  # open-instruct generation output
        messages = raw.get("messages")
        if (
            not isinstance(messages, list)
            or len(messages) < 2
            or not isinstance(messages[-1], dict)
            or messages[-1].get("role") != "assistant"
        ):
            raise InputError(
                f"{where}: open-instruct rows need 'messages' ending in the assistant completion"
            )
        metadata = {}
        if raw.get("reference_completion") is not None:
            metadata["reference_completion"] = raw["reference_completion"]
        prompt = normalize({"messages": messages[:-1], "metadata": metadata}, where)
        item = {"response": raw["model_completion"], "model": raw.get("model")}
        item.update({k: raw[k] for k in ("score", "passed", "finish_reason") if k in raw})
        return prompt, [_rollout(item, where, "model_completion")]
    if "response" in raw or "error" in raw:
        item = {k: raw[k] for k in ROLLOUT_FIELDS if k in raw}
        rollout = _rollout(item, where, "record")
        if "prompt_id" in raw:
            prompt_id = raw["prompt_id"]
            if isinstance(prompt_id, bool) or not isinstance(prompt_id, (str, int)):
                raise InputError(f"{where}: field 'prompt_id' must be text or an integer")
            return {"id": str(prompt_id)}, [rollout]
        rest = {k: v for k, v in raw.items() if k not in ROLLOUT_FIELDS}
        return normalize(rest, where), [rollout]
    raise InputError(
        f"{where}: not a rollout record: expected 'rollouts' (rsr), 'model_completion' "
        "(open-instruct) or 'response' with 'prompt_id' or 'messages'"
    )


class _Importer:
    "The state of one import: known prompts, next sample indexes, sources seen."

    def __init__(self, db, run_id, verifier_name, result):
        self.db, self.run_id, self.verifier_name, self.result = db, run_id, verifier_name, result
        self.prompts = {}
        self.next_index = {}
        self.imported = {tuple(row) for row in db.execute(IMPORTED_SQL)}

    def check_prompt(self, prompt, where):
        "Add the prompt if new; refuse one whose stored messages differ."
        prompt_id = prompt["id"]
        if prompt_id not in self.prompts:
            row = self.db.execute(PROMPT_SQL, {"id": prompt_id}).fetchone()
            self.prompts[prompt_id] = None if row is None else json.loads(row[0])
        stored = self.prompts[prompt_id]
        if "messages" not in prompt:
            if stored is None:
                raise InputError(
                    f"{where}: prompt_id {prompt_id!r} is not in the ledger; "
                    "load the prompts first or give 'messages'"
                )
            return
        if stored is None:
            self.db.execute(
                INSERT_PROMPT_SQL,
                {
                    "id": prompt_id,
                    "messages": json.dumps(prompt["messages"], ensure_ascii=False),
                    "metadata": json.dumps(prompt["metadata"], ensure_ascii=False),
                    "source": where,
                },
            )
            self.prompts[prompt_id] = prompt["messages"]
            self.result.prompts_added += 1
        elif stored != prompt["messages"]:
            raise InputError(
                f"{where}: prompt {prompt_id!r} is in the ledger with different messages; "
                "give the rows their own ids"
            )

    def add(self, prompt_id, rollout, source):
        if (prompt_id, source) in self.imported:
            self.result.already_imported += 1
            return
        # An imported rollout's arm is its model (the rows of one model share a budget).
        arm = rollout.get("model") or DEFAULT_ARM
        key = (prompt_id, arm)
        if key not in self.next_index:
            self.next_index[key] = self.db.execute(
                NEXT_INDEX_SQL, {"id": prompt_id, "arm": arm}
            ).fetchone()[0]
        columns = {k: v for k, v in rollout.items() if k not in ("score", "passed")}
        columns.update(
            prompt_id=prompt_id,
            arm=arm,
            sample_index=self.next_index[key],
            run_id=self.run_id,
            params=json.dumps({"imported_from": source}),
            response_hash=response_hash(rollout.get("response")),
        )
        self.next_index[key] += 1
        rollout_id = self.db.execute(INSERT_ROLLOUT_SQL, columns).lastrowid
        self.imported.add((prompt_id, source))
        self.result.rollouts_added += 1
        scored = rollout["score"] is not None or rollout["passed"] is not None
        # An empty answer is an invalid rollout: kept, never scored (schema.sql).
        if scored and (rollout.get("response") or "").strip(WHITESPACE):
            score = rollout["score"] if rollout["score"] is not None else float(rollout["passed"])
            save_scores(
                self.db,
                [(rollout_id, self.verifier_name, score, rollout["passed"], None, None, None)],
            )
            self.result.scores_added += 1


def _add_batch_line(batch, raw, where, result):
    "Store one batch output line, counting what it did."
    importer, params = batch
    before = (importer.counts.rollouts_added, importer.counts.errors)
    importer.add(raw, where, params)
    added = importer.counts.rollouts_added - before[0]
    result.rollouts_added += added
    result.error_rows += importer.counts.errors - before[1]
    result.already_imported += 1 - added


def import_rollouts(db, path, verifier_name="imported", skip_invalid=False, config=None):
    "Import the rollouts in a file into the ledger, in one transaction."
    result = ImportResult()

    def invalid(error):
        if not skip_invalid:
            raise error
        result.invalid += 1
        if len(result.errors) < MAX_ERRORS_KEPT:
            result.errors.append(str(error))

    name = Path(path).name
    with db.atomic():
        run_id = start_run(
            db, "import", config or {"file": str(path), "verifier_name": verifier_name}
        )
        importer = _Importer(db, run_id, verifier_name, result)
        batch = None
        for where, raw in read_records(path, on_error=invalid if skip_invalid else None):
            result.read += 1
            if batchfiles.is_output_line(raw):
                if batch is None:
                    batch = OutputImporter(db, run_id), round_params(db)
                try:
                    _add_batch_line(batch, raw, where, result)
                except InputError as ex:
                    invalid(ex)
                continue
            try:
                prompt, rollouts = parse_record(raw, where)
                importer.check_prompt(prompt, where)
            except InputError as ex:
                invalid(ex)
                continue
            line = where.rsplit(":", 1)[1]
            for i, rollout in enumerate(rollouts):
                importer.add(prompt["id"], rollout, f"{name}:{line}#{i}")
        summary = (
            f"{result.rollouts_added} rollouts, {result.scores_added} scores, "
            f"{result.prompts_added} new prompts, {result.already_imported} already imported"
        )
        finish_run(db, run_id, "finished", summary)
    return result


def score_imported(db, verifier: dict):
    """Score the rollouts that lack a score from this verifier ({name, options}),
    as `rsr verify` would; returns its VerifyCounts."""
    from .factory import make_scorer
    from .verification import verify_rollouts

    scorer = make_scorer(verifier)
    try:
        return verify_rollouts(db, scorer, config={"verifier": scorer.name, "after": "import"})
    finally:
        scorer.close()
