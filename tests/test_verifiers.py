"""The verifier registry and Python API: get_verifier, plugins, user functions,
batch helpers, and the worker pool's hard timeouts."""

import asyncio
import sys
import types

import pytest

from rsr import hookimpl, plugins
from rsr.errors import ConfigError
from rsr.verification import Scorer
from rsr.verifiers.maths import MathVerifier
from rsr.verifiers import (
    Verdict, Verifier, get_verifier, list_verifiers, reward_function, variant_name, verify_batch,
)

HANG_PY = '''
import os

def check(answer, metadata):
    if answer == "c-hang":
        return sum(range(10 ** 14)) > 0      # big-int loop in C: no signal stops it
    if answer == "py-hang":
        while True:
            pass
    if answer == "die":
        os._exit(3)
    return answer == metadata.get("answer")
'''


@pytest.fixture
def hang_spec(tmp_path):
    path = tmp_path / "checks.py"
    path.write_text(HANG_PY)
    return f"{path}:check"


def test_get_verifier_math_returns_verdict_fields():
    verdict = get_verifier("math")(r"Thus $\boxed{\dfrac{1}{2}}$.", {"answer": "0.5"})
    assert (verdict.passed, verdict.score, verdict.extracted) == (True, 1.0, r"\dfrac{1}{2}")
    assert verdict.details["found_by"] == "boxed" and verdict.error is None


def test_builtin_verifiers_are_listed_with_descriptions():
    names = dict(list_verifiers())
    assert {"exact", "mcq", "mcq-multi", "math", "judge", "reward-model"} <= set(names)
    assert all(description and "\n" not in description for description in names.values())


def test_get_verifier_unknown_name_says_how_to_list():
    with pytest.raises(ConfigError, match=r"No verifier named 'mahs'; run 'rsr verifiers'"):
        get_verifier("mahs")


def test_options_make_a_distinct_deterministic_name():
    partial = get_verifier("mcq-multi", partial=True)
    assert partial.name == "mcq-multi:partial" and get_verifier("mcq-multi").name == "mcq-multi"
    assert get_verifier("mcq-multi", partial="true").name == "mcq-multi:partial"
    judge = get_verifier("judge", model="m1", base_url="http://x", api_key="secret")
    assert judge.name == "judge:model=m1"  # endpoint and key do not change verdicts
    assert variant_name("judge", {"model": "m", "template": "x" * 100}).startswith("judge:model=m,template=sha1-")
    with pytest.raises(ConfigError, match="takes no options"):
        get_verifier("mcq", partial=True)


def test_plugin_registers_a_verifier():
    class Shouty(Verifier):
        name = "shouty"
        description = "Passes when the answer is in capitals"

        def check(self, answer, metadata, *, prompt=None):
            return Verdict(answer.isupper(), float(answer.isupper()), answer)

    module = types.ModuleType("rsr_test_shouty")

    @hookimpl
    def register_verifiers(register):
        register(Shouty())

    module.register_verifiers = register_verifiers
    plugins.load_plugins()
    plugins.pm.register(module, name="rsr_test_shouty")
    try:
        assert get_verifier("shouty")("<think>quiet</think>LOUD").passed is True
        assert ("shouty", Shouty.description) in list_verifiers()
    finally:
        plugins.pm.unregister(module)
    with pytest.raises(ConfigError):
        get_verifier("shouty")


def test_duplicate_verifier_name_is_an_error():
    module = types.ModuleType("rsr_test_dupe")

    @hookimpl
    def register_verifiers(register):
        register(MathVerifier())

    module.register_verifiers = register_verifiers
    plugins.pm.register(module, name="rsr_test_dupe")
    try:
        with pytest.raises(ConfigError, match="Two plugins register the name 'math'"):
            get_verifier("mcq")
    finally:
        plugins.pm.unregister(module)


def test_user_function_verifier(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def check(answer, metadata):\n    return {'passed': answer.endswith('!'), 'score': len(answer)}\n")
    verifier = get_verifier(f"{path}:check")
    verdict = verifier("<think>no</think>yes!", {})
    assert (verdict.passed, verdict.score, verdict.extracted) == (True, 4, "yes!")
    with pytest.raises(ConfigError, match="Verifier file not found: .*missing.py"):
        get_verifier(f"{tmp_path / 'missing.py'}:check")


def test_verify_batch_in_worker_processes_keeps_order():
    responses = [rf"\boxed{{{i}}}" for i in range(200)]
    golds = [{"answer": str(i if i % 3 else i + 1)} for i in range(200)]
    verdicts = verify_batch("math", responses, golds, workers=2)
    assert [v.passed for v in verdicts] == [i % 3 != 0 for i in range(200)]
    assert [v.extracted for v in verdicts] == [str(i) for i in range(200)]


def test_reward_function_in_trl_shape():
    reward = reward_function("math")
    completions = [[{"role": "assistant", "content": r"\boxed{4}"}], [{"role": "assistant", "content": "5"}]]
    assert reward(completions, answer=["4", "4"]) == [1.0, 0.0]


def test_c_level_hang_is_killed_and_recorded_as_timeout(hang_spec):
    with Scorer(get_verifier(hang_spec), workers=1, timeout=0.5) as scorer:
        verdicts = scorer.score([("a", {"answer": "a"}, None), ("c-hang", {}, None),
                                 ("b", {"answer": "a"}, None), ("a", {"answer": "a"}, None)])
        restarts = scorer.pool.restarts
    assert [v.passed for v in verdicts] == [True, None, False, True]
    assert verdicts[1].error.startswith("timeout") and verdicts[1].details == {"reason": "timeout"}
    assert restarts == 1


def test_python_hang_is_stopped_in_the_worker_without_a_restart(hang_spec):
    with Scorer(get_verifier(hang_spec), workers=1, timeout=0.3) as scorer:
        verdicts = scorer.score([("py-hang", {}, None), ("a", {"answer": "a"}, None)])
        restarts = scorer.pool.restarts
    assert [v.passed for v in verdicts] == [None, True]
    assert verdicts[0].error.startswith("timeout")
    assert restarts == 0


def test_a_check_that_kills_its_worker_is_recorded(hang_spec):
    items = [("a", {"answer": "a"}, None), ("die", {}, None), ("a", {"answer": "a"}, None)]
    with Scorer(get_verifier(hang_spec), workers=1, timeout=5) as scorer:
        verdicts = scorer.score(items)
    assert [v.passed for v in verdicts] == [True, None, True]
    assert verdicts[1].error == "worker process died"


@pytest.mark.parametrize("response", [
    r"\boxed{10^{10^{10^{10}}}}",
    r"\boxed{(10^{10})^{10^{10}}}",
    r"\boxed{9^{9^{9}}}",
    "x" * 1_000_000 + r" \boxed{10^{10^{10}}}",
])
def test_pathological_math_is_never_a_pass(response):
    verdict = verify_batch("math", [response], {"answer": "1"}, workers=1, timeout=3)[0]
    assert verdict.passed is not True
    assert verdict.error


def test_megabyte_responses_finish_for_every_rule_verifier():
    megabyte = ("A careful reading. " * 60_000)[:1_000_000]
    assert len(megabyte) == 1_000_000
    for name, gold in (("mcq", "B"), ("mcq-multi", "AB"), ("math", "4")):
        verdict = verify_batch(name, [megabyte], {"answer": gold}, workers=1, timeout=5)[0]
        assert verdict.passed is not True


def test_ascore_does_not_block_the_event_loop(hang_spec):
    async def main():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        with Scorer(get_verifier(hang_spec), workers=1, timeout=0.5) as scorer:
            verdicts = await scorer.ascore([("c-hang", {}, None)])
        done.set()
        await task
        return ticks, verdicts

    ticks, verdicts = asyncio.run(main())
    assert verdicts[0].passed is None
    assert ticks > 5  # the loop kept running while a worker was stuck


def test_inline_scorer_for_mcq_uses_no_processes():
    scorer = Scorer(get_verifier("mcq"))
    assert scorer.mode == "inline"
    assert [v.passed for v in scorer.score([("Answer: B", {"answer": "B"}, None)])] == [True]
    assert Scorer(get_verifier("math")).mode == "pool"
    assert Scorer(get_verifier("judge")).mode == "async"
    assert Scorer(get_verifier("reward-model")).mode == "batched"


def test_bench_script_is_importable():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent.parent / "bench"))
    try:
        import verify_bench
    finally:
        sys.path.pop(0)
    assert callable(verify_bench.main)


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from rsr.verifiers import get_verifier\n"
        "from rsr.verifiers.pool import WorkerPool\n"
        "pool = WorkerPool(get_verifier('math'), workers=1, timeout=5)\n"
        "pool.map([('\\\\boxed{1}', {'answer': '1'}, None)])\n"
        "print(pool.workers[0].process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        # A zombie reaped by init counts as gone: look at its state.
        try:
            with open(f"/proc/{worker}/stat") as f:
                if f.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its killed parent")
