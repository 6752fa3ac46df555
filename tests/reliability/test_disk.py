"""A read-only ledger and a full disk: clear one-line errors, nothing lost.

Tests run as root here, and chmod does not stop root: as root the folder is
bind-mounted read-only onto itself (or its files made immutable with chattr),
and a full disk is a small tmpfs. As another user chmod is enough for the
read-only cases; the full-disk cases need root and say so when skipped.
"""

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from faultserver import FaultServer
from proc import assert_clean_error, cli, dump, integrity, query, rsr, write_prompts

BAD = Path(__file__).parent / "bad_inputs"
ROOT = os.geteuid() == 0


def run_ok(*args):
    result = subprocess.run(list(args), capture_output=True, text=True)
    return result.returncode == 0


@contextlib.contextmanager
def read_only_folder(folder):
    "The folder and everything in it read-only, for root too."
    folder = str(folder)
    if not ROOT:
        modes = {p: p.stat().st_mode for p in Path(folder).iterdir()}
        for path in modes:
            path.chmod(0o444)
        os.chmod(folder, 0o555)
        try:
            yield "chmod"
        finally:
            os.chmod(folder, 0o755)
            for path, mode in modes.items():
                path.chmod(mode)
        return
    if run_ok("mount", "--bind", folder, folder):
        if run_ok("mount", "-o", "remount,bind,ro", folder):
            try:
                yield "read-only bind mount"
            finally:
                subprocess.run(["umount", "-l", folder], check=True)
            return
        subprocess.run(["umount", "-l", folder], check=True)
    with immutable([*Path(folder).iterdir(), Path(folder)]) as how:
        yield how


@contextlib.contextmanager
def immutable(paths):
    "Files that nobody, root included, can change (chmod 444 for others)."
    if not ROOT:
        for path in paths:
            path.chmod(0o444 if path.is_file() else 0o555)
        try:
            yield "chmod"
        finally:
            for path in paths:
                path.chmod(0o644 if path.is_file() else 0o755)
        return
    if not run_ok("chattr", "+i", *map(str, paths)):
        pytest.skip("running as root without mount or chattr: cannot make a file read-only")
    try:
        yield "chattr +i"
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


@contextlib.contextmanager
def small_disk(folder, size):
    "A tmpfs of `size` mounted on folder."
    folder.mkdir()
    if not (ROOT and run_ok("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))):
        pytest.skip("a full disk needs root to mount a small tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def ledger(tmp_path):
    folder = tmp_path / "ledger"
    folder.mkdir()
    db_path = folder / "run.db"
    assert rsr("load", db_path, BAD / "good.jsonl").returncode == 0
    # Settle the WAL into the file, so the file alone holds the ledger.
    conn = sqlite3.connect(db_path)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    return db_path


WRITERS = [
    ["load", "{db}", str(BAD / "good.jsonl")],
    ["sample", "{db}", "--base-url", "http://127.0.0.1:9/v1", "--verifier", "exact",
     "--max-retries", "0"],
    ["verify", "{db}", "--verifier", "math", "--silent"],
]


def fill(args, db_path):
    return [str(db_path) if a == "{db}" else a for a in args]


@pytest.mark.parametrize("args", WRITERS, ids=lambda a: a[0])
def test_read_only_ledger_file(ledger, args):
    before = ledger.read_bytes()
    with immutable([ledger]):
        assert_clean_error(rsr(*fill(args, ledger)), str(ledger), "read-only")
        # Readers still read it.
        assert cli("stats", ledger).returncode == 0
        assert cli("info", ledger).returncode == 0
    assert ledger.read_bytes() == before


@pytest.mark.parametrize("args", WRITERS, ids=lambda a: a[0])
def test_read_only_folder(ledger, args):
    "The file is writable but its folder is not: there is nowhere for the -wal file."
    before = ledger.read_bytes()
    with read_only_folder(ledger.parent):
        assert_clean_error(rsr(*fill(args, ledger)), str(ledger), "read-only")
        stats = cli("stats", ledger, "--json")
        assert stats.returncode == 0, stats.stderr
        assert '"total": 2' in stats.stdout
    assert ledger.read_bytes() == before
    assert sorted(p.name for p in ledger.parent.iterdir()) == ["run.db"]


def test_full_disk_while_sampling(tmp_path):
    "The disk fills mid-run: a clear error, the run marked failed, every row written kept."
    with small_disk(tmp_path / "disk", "900k") as disk:
        db_path = disk / "run.db"
        prompts = tmp_path / "p.jsonl"
        prompts.write_text("".join(f'{{"id": "p{i:03d}", "question": "{"q" * 300} {i}", "answer": "right"}}\n'
                                   for i in range(200)))
        assert rsr("load", db_path, prompts).returncode == 0
        args = ["sample", db_path, "--base-url", None, "--model", "m", "--verifier", "exact",
                "--seed", 4, "--max-rollouts", 4, "--step-size", 2, "--silent"]
        with FaultServer(rate=0.0) as server:
            args[3] = server.url
            result = rsr(*args)
            # Marking the run failed is best effort on a full disk: a warning says
            # when even that could not be written.
            result.stderr = "\n".join(line for line in result.stderr.splitlines()
                                      if not line.startswith("WARNING rsr.pipeline: could not record"))
            assert_clean_error(result, str(db_path), "disk is full")
            assert integrity(db_path) == [("ok",)]
            written = set(query(db_path, "select prompt_id, sample_index, seed, response from rollouts"))
            assert written, "the disk filled before anything was written"
            assert query(db_path, "select status, summary from runs where command = 'sample'") in (
                [("failed", "OperationalError: database or disk is full")], [("running", None)])
            # With room again, the same command finishes the run; nothing is lost or doubled.
            assert run_ok("mount", "-o", "remount,size=8m", str(disk))
            again = rsr(*args)
            assert again.returncode == 0, again.stderr
        final = set(query(db_path, "select prompt_id, sample_index, seed, response from rollouts"))
        assert written <= final
        assert query(db_path, "select count(*) from steps where received != requested") == [(0,)]
        assert query(db_path, """select count(*) from (select * from prompt_progress
                                 except select * from prompt_progress_slow)""") == [(0,)]


def test_full_disk_while_loading(ledger, tmp_path):
    with small_disk(tmp_path / "disk", "400k") as disk:
        db_path = disk / "run.db"
        shutil.copy(ledger, db_path)
        before = dump(db_path)
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:  # ends when the disk is full (ENOSPC)
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        big = tmp_path / "big.jsonl"
        write_prompts(big, 2000)
        # SQLite reports a full tmpfs as "disk is full" or as "disk I/O error".
        assert_clean_error(cli("load", db_path, big), str(db_path), "disk")
        filler.unlink()  # room for this test's own reader
        assert dump(db_path) == before
