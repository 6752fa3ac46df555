"""Inline verifiers scored in a helper process while sampling over HTTP
(rsr.verifiers.offload): same verdicts as in-process, none lost if it dies."""

import asyncio
import os
import signal

import pytest
from helpers import add_prompt
from servers import OpenAIStub

from rsr import open_db
from rsr.samplers.openai import OpenAISampler
from rsr.sampling import SampleSettings, sample, usable_cpus
from rsr.verification import Scorer
from rsr.verifiers import Verdict, Verifier, get_verifier
from rsr.verifiers.offload import available

pytestmark = pytest.mark.skipif(not available(), reason="needs fork")


class WhereScored(Verifier):
    "Passes answers that contain '4'; records which process decided."

    name = "where-scored"
    description = "test"

    def check(self, answer, metadata, *, prompt=None):
        passed = "4" in answer
        return Verdict(passed, float(passed), answer[-1:], {"pid": os.getpid()})


def items(count):
    return [(f"answer {i}", {"answer": "4"}, [{"role": "user", "content": "2+2?"}]) for i in range(count)]


def test_offloaded_scoring_runs_in_another_process_and_agrees():
    scorer = Scorer(WhereScored())
    assert scorer.start_offload()
    try:
        verdicts = asyncio.run(scorer.ascore(items(12)))
    finally:
        scorer.close()
    assert [v.passed for v in verdicts] == [i == 4 for i in range(12)]
    assert [v.extracted for v in verdicts] == [str(i)[-1] for i in range(12)]
    pids = {v.details["pid"] for v in verdicts}
    assert len(pids) == 1 and os.getpid() not in pids


def test_scoring_goes_on_in_this_process_when_the_helper_dies():
    scorer = Scorer(WhereScored())
    scorer.start_offload()
    try:
        first = asyncio.run(scorer.ascore(items(3)))
        helper = scorer._offload.process
        os.kill(helper.pid, signal.SIGKILL)
        helper.join(5)
        after = asyncio.run(scorer.ascore(items(5)))
    finally:
        scorer.close()
    assert first[0].details["pid"] == helper.pid
    # Every item still gets its verdict, now from this process.
    assert [v.passed for v in after] == [False, False, False, False, True]
    assert {v.details["pid"] for v in after} == {os.getpid()}


def test_many_steps_at_once_each_get_their_own_verdicts():
    scorer = Scorer(WhereScored())
    scorer.start_offload()

    async def steps():
        batches = [[(f"{s} {i}", {}, None) for i in range(s % 3 + 1)] for s in range(40)]
        return batches, await asyncio.gather(*(scorer.ascore(b) for b in batches))

    try:
        batches, results = asyncio.run(steps())
    finally:
        scorer.close()
    for batch, verdicts in zip(batches, results):
        assert [v.extracted for v in verdicts] == [text[-1] for text, _, _ in batch]


@pytest.mark.skipif(usable_cpus() < 2, reason="offloading needs two CPUs")
@pytest.mark.parametrize("offload", [True, False])
def test_sampling_over_http_scores_in_a_helper_process(db_path, offload):
    db = open_db(db_path)
    for i in range(6):
        add_prompt(db, f"p{i}", f"question {i}", answer="4")
    replies = iter(["The answer is 4", "I think 5"] * 100)
    with OpenAIStub(lambda body: next(replies)) as stub:
        scorer = Scorer(WhereScored())
        sampler = OpenAISampler(model="stub", base_url=stub.url, api_key="k")
        settings = SampleSettings(max_rollouts=4, step_size=2, seed=1, concurrency=4,
                                  offload_scoring=offload)
        from rsr.early_stop import Target

        settings.target = Target("none")
        try:
            report = sample(db, sampler, scorer, settings)
        finally:
            scorer.close()
    rows = db.execute("select r.response, s.passed, json_extract(s.details, '$.pid') from rollouts r"
                      " join scores s on s.rollout_id = r.id").fetchall()
    assert len(rows) == report.rollouts == 24
    assert all(passed == ("4" in response) for response, passed, _ in rows)
    assert (report.passed, report.failed) == (12, 12)
    pids = {pid for _, _, pid in rows}
    assert (os.getpid() not in pids) if offload else (pids == {os.getpid()})
    # The helper process is gone once sampling returns.
    assert scorer._offload is None


def test_only_inline_verifiers_are_offloaded():
    math = Scorer(get_verifier("math"))  # may hang: runs in its worker pool instead
    try:
        assert not math.start_offload()
        assert math._offload is None
    finally:
        math.close()
