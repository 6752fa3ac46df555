"""The built-in export formats, registered through the `register_formatters` hook.

A formatter has a `name`, a one-line `description`, `rows(db, options)` that
yields one JSON-ready dict per training example, and `dataset_info(file_name)`
that returns LLaMA-Factory's dataset_info.json entry for a file of its rows.
Selection lives in rsr/selection.py (SQL); a formatter only chooses the rule
and shapes the rows:

- sft, multi-sft, best-of-n, top-k: `{"messages": [...prompt, assistant]}`,
  TRL's conversational language-modelling format and LLaMA-Factory's
  sharegpt format with OpenAI-style role/content tags.
- dpo: `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`,
  TRL's conversational preference format.
- dpo-sharegpt: the same pairs as LLaMA-Factory's sharegpt preference rows,
  `{"messages": [...], "chosen": {assistant}, "rejected": {assistant}}`.
"""

import json
from dataclasses import dataclass, field

from . import selection as sel
from .errors import ConfigError
from .hookspecs import hookimpl

SHAREGPT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}
REASONING_MODES = ("think-tags", "keep", "drop")


@dataclass
class ExportOptions:
    "Everything a formatter may read, with the command line's defaults."

    selection: sel.Selection
    per_prompt: int = None
    pairs: str = "pass-fail"
    max_pairs_per_prompt: int = 1
    min_margin: float = None
    k: int = None
    reasoning: str = "think-tags"
    include_metadata: bool = False
    extra: dict = field(default_factory=dict)


def assistant_message(response, reasoning, mode):
    """The assistant turn for a rollout.

    think-tags puts the reasoning back in front of the answer inside <think>
    tags (what the model emitted, and what every trainer reads); keep stores it
    as `reasoning_content` (the field OpenAI-style APIs and Qwen3's chat
    template use); drop leaves the final answer only.
    """
    if reasoning and mode == "think-tags":
        return {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{response}"}
    if reasoning and mode == "keep":
        return {"role": "assistant", "content": response, "reasoning_content": reasoning}
    return {"role": "assistant", "content": response}


def _metadata(row, options, **ids):
    return {
        "prompt_id": row["prompt_id"],
        **ids,
        "verifier": options.selection.verifier,
        "prompt": json.loads(row["metadata"]),
    }


class MessagesFormatter:
    "Base for the formats whose rows are one conversation ending in the rollout."

    name = None
    description = None

    def select(self, db, options):
        raise NotImplementedError

    def rows(self, db, options):
        for row in self.select(db, options):
            message = assistant_message(row["response"], row["reasoning"], options.reasoning)
            out = {"messages": json.loads(row["messages"]) + [message]}
            if options.include_metadata:
                out["metadata"] = _metadata(
                    row, options, rollout_id=row["rollout_id"], score=row["score"],
                    passed=row["passed"],
                )
            yield out

    def dataset_info(self, file_name):
        return {"file_name": file_name, "formatting": "sharegpt",
                "columns": {"messages": "messages"}, "tags": SHAREGPT_TAGS}


class Sft(MessagesFormatter):
    name = "sft"
    description = "passing rollouts, --per-prompt of each prompt (default 1)"

    def select(self, db, options):
        return sel.select_per_prompt(db, options.selection, options.per_prompt or 1)


class MultiSft(MessagesFormatter):
    name = "multi-sft"
    description = "up to --per-prompt distinct passing rollouts of each prompt (default 4)"

    def select(self, db, options):
        distinct = sel.Selection(**{**options.selection.__dict__, "dedupe": True})
        return sel.select_per_prompt(db, distinct, options.per_prompt or 4)


class BestOfN(MessagesFormatter):
    name = "best-of-n"
    description = "the highest-scoring rollout of each prompt, pass or fail"

    def select(self, db, options):
        return sel.select_per_prompt(
            db, options.selection, options.per_prompt or 1, passing_only=False
        )


class TopK(MessagesFormatter):
    name = "top-k"
    description = "the --k highest-scoring (prompt, rollout) pairs overall"

    def select(self, db, options):
        if not options.k:
            raise ConfigError("--format top-k needs --k N (how many rollouts to keep)")
        return sel.select_top_k(db, options.selection, options.k)


class Dpo:
    name = "dpo"
    description = "chosen/rejected pairs (TRL conversational preference rows)"

    def pair_rows(self, db, options):
        return sel.select_pairs(
            db, options.selection, options.pairs, options.max_pairs_per_prompt,
            options.min_margin,
        )

    def shape(self, prompt, chosen, rejected):
        return {"prompt": prompt, "chosen": [chosen], "rejected": [rejected]}

    def rows(self, db, options):
        for row in self.pair_rows(db, options):
            out = self.shape(
                json.loads(row["messages"]),
                assistant_message(row["chosen_response"], row["chosen_reasoning"], options.reasoning),
                assistant_message(
                    row["rejected_response"], row["rejected_reasoning"], options.reasoning
                ),
            )
            if options.include_metadata:
                out["metadata"] = _metadata(
                    row, options, chosen_rollout_id=row["chosen_id"],
                    rejected_rollout_id=row["rejected_id"], chosen_score=row["chosen_score"],
                    rejected_score=row["rejected_score"],
                )
            yield out

    def dataset_info(self, file_name):
        # LLaMA-Factory reads preference pairs only as sharegpt rows whose
        # chosen/rejected are single messages: that is the dpo-sharegpt format.
        return None


class DpoSharegpt(Dpo):
    name = "dpo-sharegpt"
    description = "the dpo pairs as LLaMA-Factory sharegpt preference rows"

    def shape(self, prompt, chosen, rejected):
        return {"messages": prompt, "chosen": chosen, "rejected": rejected}

    def dataset_info(self, file_name):
        return {"file_name": file_name, "formatting": "sharegpt", "ranking": True,
                "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"},
                "tags": SHAREGPT_TAGS}


@hookimpl
def register_formatters(register):
    for formatter in (Sft(), Dpo(), MultiSft(), BestOfN(), TopK(), DpoSharegpt()):
        register(formatter)
