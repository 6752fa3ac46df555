"""Progress a person can read, for sample, verify, load and run.

On a terminal a live tqdm bar on stderr: done / budget, items per second,
elapsed and the time left at that rate, with tokens per second and the pass
rate beside it. Elsewhere (a log file, CI) a plain status line every few
seconds. The budget of a sampling run is what it has drawn plus what its
pending prompts may still draw (early_stop's rules), so the bar shrinks its
total as prompts stop early and its ETA is an upper bound.
"""

import os
import sys
import time
from dataclasses import dataclass

from . import early_stop


@dataclass
class SampleProgress:
    "A sampling run's report with its budget: what the progress display shows."

    report: object
    # The most rollouts this run can draw: those drawn when the ledger was last
    # asked, plus what the pending prompts then had left.
    budget: int

    @property
    def left(self):
        return max(self.budget - self.report.rollouts, 0)

    def line(self):
        "One plain status line."
        report = self.report
        rate = report.rollouts / report.elapsed if report.elapsed > 0 else 0.0
        eta = format_seconds(self.left / rate) if rate > 0 else "-"
        return (
            f"{report.rollouts:,}/{self.budget:,} rollouts ({rate:.2f}/s, ETA {eta}) | "
            + report.line()
        )


class BudgetLeft:
    """The most rollouts a run can draw: what it has drawn plus what its pending
    prompts may still draw, asked of the ledger at most every `every` seconds."""

    def __init__(self, db, settings, verifier, every=5.0):
        self.db = db
        self.sql = early_stop.budget_left_sql(
            settings.target, settings.where, settings.limit, settings.dedupe, settings.pool)
        self.params = dict(
            early_stop.state_params(settings.target, verifier, settings.max_rollouts,
                                    settings.max_steps, settings.limit, settings.arm),
            step_size=settings.step_size)
        self.every = every
        self.value = None
        self.asked = 0.0

    def __call__(self, drawn, force=False):
        if force or self.value is None or time.monotonic() - self.asked >= self.every:
            self.value = drawn + self.db.execute(self.sql, self.params).fetchone()[0]
            self.asked = time.monotonic()
        return max(self.value, drawn)


def format_seconds(seconds):
    "12s, 3m05s, 2h04m."
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def terminal_size(file, default=(100, 24)):
    """The terminal's (columns, lines), each from $COLUMNS/$LINES or default
    where the terminal reports none (a new pty says 0 x 0, and tqdm would then
    draw nothing)."""
    try:
        columns, lines = os.get_terminal_size(file.fileno())
    except (OSError, ValueError, AttributeError):
        columns, lines = 0, 0
    columns = columns or int(os.environ.get("COLUMNS", "0") or 0) or default[0]
    lines = lines or int(os.environ.get("LINES", "0") or 0) or default[1]
    return columns, lines


class Display:
    """A progress display on a stream (stderr by default): a tqdm bar on a
    terminal, a plain line every `every` seconds otherwise.

    update(done, total, postfix, line) moves it: done and total are counts of
    `unit`, postfix is shown beside the bar, line is the plain form."""

    def __init__(self, label, unit, total=None, file=None, every=10.0, tty=None, scale=False):
        self.file = file if file is not None else sys.stderr
        self.tty = self.file.isatty() if tty is None else tty
        self.every = every
        self.label = label
        self.last_line = None
        # The first plain line comes after `every` seconds: a short command stays quiet.
        self.printed = time.monotonic()
        self.unit = unit
        self.total = total
        self.scale = scale
        self.bar = None
        self.closed = False

    def _open_bar(self):
        from tqdm import tqdm

        columns, lines = terminal_size(self.file)
        self.bar = tqdm(
            total=self.total, desc=self.label, unit=self.unit if self.scale else f" {self.unit}",
            unit_scale=self.scale, file=self.file, ncols=columns, nrows=lines,
            mininterval=0.25, smoothing=0.1,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}"
            " [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )

    def update(self, done, total=None, postfix="", line=None):
        if self.closed:
            return
        if self.tty and self.bar is None:
            self.total = total if total is not None else self.total
            self._open_bar()
        if self.bar is not None:
            if total is not None and total != self.bar.total:
                self.bar.total = total
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)
            else:
                self.bar.refresh()
            return
        self.last_line = line or f"{self.label}: {done:,}" + (f"/{total:,}" if total else "")
        if time.monotonic() - self.printed >= self.every:
            self.printed = time.monotonic()
            self.file.write(self.last_line + "\n")
            self.file.flush()

    def close(self):
        "Stop the bar, leaving its last state on screen."
        self.closed = True
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def sample_postfix(report):
    "What a sampling bar shows beside its counts."
    rate = report.completion_tokens / report.elapsed if report.elapsed > 0 else 0.0
    judged = report.passed + report.failed
    pass_rate = f"{100 * report.passed / judged:.0f}%" if judged else "-"
    return (f"{rate:,.0f} tok/s, pass {pass_rate}, {report.satisfied:,} satisfied, "
            f"{report.pending:,} pending, {report.truncated:,} truncated")


class SampleDisplay:
    "The on_progress callback of rsr sample and rsr run: takes SampleProgress snapshots."

    def __init__(self, file=None, every=10.0, tty=None):
        self.display = Display("Sampling", "rollouts", file=file, every=every, tty=tty)
        self.tty = self.display.tty

    def __call__(self, progress):
        # Before the loop's first summary (prompts still 0) there is nothing to show beside the budget.
        postfix = sample_postfix(progress.report) if progress.report.prompts else ""
        self.display.update(progress.report.rollouts, progress.budget, postfix, progress.line())

    def close(self):
        self.display.close()


def verify_postfix(counts):
    "What a verifying bar shows beside its counts."
    judged = counts.passed + counts.failed
    pass_rate = f"{100 * counts.passed / judged:.0f}%" if judged else "-"
    return f"pass {pass_rate}, {counts.undecided:,} undecided, {counts.errors:,} errors"
