"What a sampling run did: its counts, the prompts' states and the progress line."

import time
from collections import Counter
from dataclasses import dataclass, field

SUMMARY_SQL = """
select
    count(*) as prompts,
    coalesce(sum(state = 'satisfied'), 0) as satisfied,
    coalesce(sum(state = 'exhausted'), 0) as exhausted,
    coalesce(sum(state = 'pending'), 0) as pending
from ({state})
"""


@dataclass
class SampleReport:
    "What a sampling run did, for progress lines and the summary."

    requests: int = 0
    retries: int = 0
    rollouts: int = 0
    errors: int = 0
    truncated: int = 0
    empty: int = 0
    passed: int = 0
    failed: int = 0
    undecided: int = 0
    completion_tokens: int = 0
    steps: int = 0
    # Failed attempts by kind (http_429, timeout, disconnect, ...), replies with
    # fewer choices than asked ("short") and empty answers ("empty").
    faults: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    prompts: int = 0
    satisfied: int = 0
    exhausted: int = 0
    pending: int = 0

    @property
    def elapsed(self):
        return time.monotonic() - self.started

    def line(self):
        "One line of progress for the terminal."
        rate = self.completion_tokens / self.elapsed if self.elapsed > 0 else 0.0
        judged = self.passed + self.failed
        pass_rate = f"{100 * self.passed / judged:.1f}%" if judged else "-"
        return (
            f"{self.satisfied:,} satisfied, {self.exhausted:,} exhausted, {self.pending:,} pending"
            f" | {self.rollouts:,} rollouts ({self.truncated:,} truncated, {self.errors:,} errors)"
            f" | pass rate {pass_rate} | {rate:,.0f} tokens/s"
        )

    def count(self, completions, verdicts):
        "Count completions queued for writing, with their verdicts (None: not scored)."
        for completion, verdict in zip(completions, verdicts):
            self.rollouts += 1
            self.errors += completion.error is not None
            self.truncated += completion.truncated
            if completion.empty:
                self.faults["empty"] += 1
                self.empty += 1
            self.completion_tokens += completion.completion_tokens or 0
            if verdict is not None:
                if verdict.passed is None:
                    self.undecided += 1
                elif verdict.passed:
                    self.passed += 1
                else:
                    self.failed += 1

    def refresh_summary(self, states):
        "Read how many prompts are satisfied, exhausted and pending (states: PromptStates)."
        sql = SUMMARY_SQL.format(state=states.sql)
        row = next(states.db.query(sql, states.params))
        for key in ("prompts", "satisfied", "exhausted", "pending"):
            setattr(self, key, row[key])
