"""Running an untrusted program: its own process tree, user and temporary directory.

One call of run() is one sandboxed process (and whatever it starts):

- a fresh temporary directory, owned by a throwaway user id and seen by the
  program as `/tmp` (also its HOME and working directory);
- a user id of its own (UID_BASE + the pid of the process that runs the
  sandbox), so the program cannot write outside that directory, cannot read
  files that are not world-readable (the ledger's open files, /root), and
  everything it starts can be killed afterwards with kill(-1) from that uid,
  which also catches processes that left the process group with setsid();
- a new network namespace (only a loopback interface, down: no network at
  all, not even 127.0.0.1 of the host) and a new mount namespace in which
  every mount is read-only, /root, /home, $HOME, the caller's working
  directory and the directories of files the caller holds open (the ledger)
  are hidden under empty file systems, and the Python installation the
  program runs with is bound back in, read-only;
- limits: CPU seconds, wall seconds, address space, processes (RLIMIT_NPROC
  binds because the uid is not root), file size (stdout and stderr go to
  files, so this is also the output limit), open files, no core dumps.

Namespaces and a second user id need root with CAP_SYS_ADMIN (a container
started with it, or a VM). Where they are not available (an unprivileged
user; Docker's default capabilities), run() refuses with SandboxUnavailable
unless unsafe=True is given, which runs the program as rsr's own user with
the limits alone (and kills its process group afterwards).

Processes are not in a pid namespace, so the program can still see other
processes in /proc (not read their memory or environment).
"""

import ctypes
import dataclasses
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache

from ..errors import RsrError

log = logging.getLogger(__name__)

# Sandbox user ids: UID_BASE + the pid of the process that runs the sandbox, so
# two sandboxes running at the same time never share a uid (pids are below 2**22).
UID_BASE = 3_000_000_000
UID_SPAN = 1 << 22
# The exit status of a child that could not set its sandbox up (the reason on stderr).
SETUP_FAILED = 125
SETUP_MARK = b"rsr-sandbox-setup: "

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

# System directories that are never hidden (the program needs them to start).
_NEVER_HIDE = ("/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/dev",
               "/sys", "/tmp", "/var", "/opt", "/run")


class SandboxUnavailable(RsrError):
    "The kernel or the user running rsr cannot isolate a program."


@dataclasses.dataclass
class Limits:
    "What one sandboxed run may use."

    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_mb: int = 1024
    processes: int = 16
    output_kb: int = 1024
    open_files: int = 64


@dataclasses.dataclass
class Result:
    "How a sandboxed run ended."

    returncode: int | None
    stdout: bytes
    stderr: bytes
    extra: bytes  # what the program wrote to fd 3
    timed_out: bool
    wall_ms: int
    leftover: int  # processes still running when the main one ended, killed

    @property
    def signal(self) -> int | None:
        "The signal that ended the main process, if one did."
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None


@lru_cache(maxsize=None)
def _libc():
    "The C library (loaded on first use, so that importing rsr works where there is none)."
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_char_p]
    return libc


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _encode(text):
    return None if text is None else os.fsencode(text)


def _mount(source, target, fstype, flags, data=None):
    _check(_libc().mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)),
           f"mount {target}")


def _unescape(field):
    "A mountinfo path with its octal escapes (\\040 for a space) decoded."
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def _mounts():
    "[(mount point, per-mount flags)] from /proc/self/mountinfo, in mount order."
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            flags = 0
            for option in parts[5].split(","):
                flags |= _MOUNT_FLAGS.get(option, 0)
            found.append((_unescape(parts[4]), flags))
    return found


def interpreter() -> tuple[str, str]:
    "(python executable, its installation prefix) the sandboxed program runs with."
    executable = getattr(sys, "_base_executable", None) or sys.executable
    return executable, os.path.realpath(sys.base_prefix)


def _within(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def hidden_paths(extra=()) -> list[str]:
    """Directories hidden from the program: /root, /home, $HOME, the working directory,
    the directories of every regular file this process holds open, and extra."""
    paths = ["/root", "/home", os.path.expanduser("~"), os.getcwd(), *extra]
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and os.path.isfile(target):
            paths.append(os.path.dirname(target))
    found, prefix = [], interpreter()[1]
    for path in paths:
        path = os.path.realpath(path)
        if not os.path.isdir(path):
            path = os.path.dirname(path)
        if path in _NEVER_HIDE or any(_within(path, p) for p in ("/proc", "/dev", "/sys", prefix)):
            continue  # the system, or inside the interpreter's installation (which must run)
        if _within(tempfile.gettempdir(), path):
            continue  # an ancestor of the temporary directory: /tmp is replaced anyway
        if path not in found:
            found.append(path)
    return found


def _isolate(workdir, hide, prefix):
    "In the child: new namespaces, everything read-only, hidden paths, the work dir as /tmp."
    _check(_libc().unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Opened in the new namespace (a bind mount's source must be in it), before
    # hiding can cover them.
    prefix_fd = os.open(prefix, os.O_PATH)
    workdir_fd = os.open(workdir, os.O_PATH)
    for path in sorted(hide, key=len):
        if not os.path.isdir(path):
            continue  # already hidden under a shorter path
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        if _within(prefix, path):  # the interpreter lives here: bring it back
            os.makedirs(prefix, exist_ok=True)
            _mount(f"/proc/self/fd/{prefix_fd}", prefix, None, MS_BIND | MS_REC)
    # The work directory replaces /tmp (so no world-writable /tmp remains), and
    # every other mount becomes read-only (no /var/tmp, /dev/shm or /run/lock either).
    for mount_point, flags in _mounts():
        if mount_point == "/proc" or _within(mount_point, "/proc"):
            flags |= MS_NOSUID | MS_NODEV | MS_NOEXEC
        try:
            _mount(None, mount_point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except FileNotFoundError:
            continue  # under a hidden directory now
    _mount(f"/proc/self/fd/{workdir_fd}", "/tmp", None, MS_BIND)
    _mount(None, "/tmp", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
    os.close(prefix_fd)
    os.close(workdir_fd)


def _preexec(workdir, uid, limits, isolate, hide, prefix):
    "The child between fork and exec: session, isolation, limits, then the sandbox user."
    import resource

    try:
        os.setsid()
        if isolate:
            _isolate(workdir, hide, prefix)
            os.chdir("/tmp")
        else:
            os.chdir(workdir)
        cpu = max(1, int(limits.cpu_seconds))
        for which, value in (
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2),
            (resource.RLIMIT_FSIZE, (limits.output_kb << 10,) * 2),
            (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_NPROC, (limits.processes,) * 2),
        ):
            resource.setrlimit(which, value)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        # Set after the uid change, which clears it: if rsr's worker dies (kill -9),
        # the program dies with it; what it started is killed by the next run's
        # reap_orphans().
        if sys.platform.startswith("linux"):
            _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except BaseException as ex:  # report why, in the child's stderr, and never exec
        os.write(2, SETUP_MARK + f"{type(ex).__name__}: {ex}\n".encode())
        os._exit(SETUP_FAILED)


def sandbox_uid() -> int | None:
    "This process's sandbox uid, or None when it cannot switch users (not root)."
    if os.geteuid() != 0:
        return None
    return UID_BASE + os.getpid() % UID_SPAN


@lru_cache(maxsize=None)
def probe() -> str | None:
    "None when full isolation works here, else why not (checked once per process)."
    if not sys.platform.startswith("linux"):
        return f"sandboxing needs Linux namespaces; this is {sys.platform}"
    if os.geteuid() != 0:
        return ("the sandbox needs root (a container) to switch to a throwaway user "
                "and create network and mount namespaces")
    try:
        result = run(["-c", "pass"], {}, Limits(wall_seconds=20), unsafe=False, _probing=True)
    except OSError as ex:
        return f"could not start the interpreter: {ex}"
    if result.returncode == SETUP_FAILED and SETUP_MARK in result.stderr:
        return result.stderr.split(SETUP_MARK, 1)[1].decode(errors="replace").strip()
    if result.returncode != 0:
        return f"a sandboxed interpreter exited with {result.returncode}: {result.stderr[-300:]!r}"
    return None


def require(unsafe=False) -> bool:
    """Whether runs are isolated: True when they are; False when they cannot be and
    unsafe is set; raises SandboxUnavailable when they cannot be and it is not."""
    reason = probe()
    if reason is None:
        return True
    if unsafe:
        log.warning("running code without isolation (unsafe): %s", reason)
        return False
    raise SandboxUnavailable(
        f"Cannot sandbox code here: {reason}. Run as root in a container, or pass "
        "--verifier-option unsafe=true to run programs with resource limits only "
        "(they can then use the network and write where rsr can)"
    )


_subreaper_pid = None


def _subreaper():
    """Make this process a child subreaper, once per process: orphans of the program
    then become its children and are reaped after they are killed, instead of
    staying zombies (which count toward the uid's process limit). A forked worker
    does not inherit the attribute, so the pid is what is remembered."""
    global _subreaper_pid
    if _subreaper_pid != os.getpid():
        _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _subreaper_pid = os.getpid()


def processes_of(uid) -> list[tuple[int, str, int]]:
    "[(pid, state, parent pid)] of the processes running as uid."
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:  # cheap: no file to read
                continue
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found.append((int(name), fields[0], int(fields[1])))
    return found


def _kill_all_as(uid):
    "kill(-1, SIGKILL) from a child running as uid: every process of that uid, in any session."
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child only kills and exits)
        try:
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def kill_uid(uid, keep=None) -> int:
    """Kill every process of uid, reap the ones that became our children (but keep,
    which its Popen waits for); how many were running."""
    running = len([p for p in processes_of(uid) if p[1] != "Z"])
    # Twice whatever the scan saw: a fork can race the first kill, and on kernels
    # where a non-dumpable process's /proc entry belongs to root the scan misses it.
    _kill_all_as(uid)
    for _ in range(100):
        _kill_all_as(uid)
        if not [p for p in processes_of(uid) if p[1] != "Z"]:
            break
        time.sleep(0.002)
    for pid, state, parent in processes_of(uid):
        if parent == os.getpid() and pid != keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return running


def reap_orphans() -> None:
    "Kill sandbox processes whose owner (the process whose pid names their uid) is gone."
    owners = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uid = os.stat(f"/proc/{name}").st_uid
            except OSError:
                continue
            if UID_BASE <= uid < UID_BASE + UID_SPAN:
                owners.add(uid)
    for uid in owners:
        if not os.path.exists(f"/proc/{uid - UID_BASE}"):
            kill_uid(uid)


def run(args, files, limits, *, unsafe=False, hide=(), env=None, _probing=False) -> Result:
    """Run the sandbox's Python with args in a fresh directory holding files
    ({name: bytes}), env added to its environment; return how it ended. The
    program may write to fd 3, which comes back as Result.extra. Everything it started is killed before
    this returns, and the directory is removed."""
    isolate = True if _probing else require(unsafe)
    # Without isolation the program keeps rsr's user: the sandbox's user could not
    # even reach an interpreter installed under /root.
    uid = sandbox_uid() if isolate else None
    executable, prefix = interpreter()
    if uid is not None:
        _subreaper()
        reap_orphans()
        if processes_of(uid):
            kill_uid(uid)  # left over from a run that was itself killed
    workdir = tempfile.mkdtemp(prefix="rsr-code-")
    try:
        for name, data in files.items():
            with open(os.path.join(workdir, name), "wb") as f:
                f.write(data)
        if uid is not None:
            for name in [".", *files]:
                os.chown(os.path.join(workdir, name), uid, uid)
        os.chmod(workdir, 0o700)
        hidden = hidden_paths(hide) if isolate else []
        home = "/tmp" if isolate else workdir
        environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        environ.update(env or {})
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                tempfile.TemporaryFile() as extra:
            started = time.monotonic()
            process = subprocess.Popen(
                [executable, "-I", "-S", "-B", *args], stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, pass_fds=(3,), env=environ, close_fds=True,
                preexec_fn=lambda: _preexec_with_extra(extra.fileno(), workdir, uid, limits,
                                                       isolate, hidden, prefix),
            )
            try:
                timed_out = _wait(process, limits.wall_seconds)
            finally:
                # Killing the session first stops a fork loop from growing while
                # kill_uid works; kill_uid then reaches what left the session.
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                leftover = kill_uid(uid, keep=process.pid) if uid is not None else 0
                process.kill()
                process.wait()
            wall_ms = int((time.monotonic() - started) * 1000)
            outputs = []
            for f in (out, err, extra):
                f.seek(0)
                outputs.append(f.read(limits.output_kb << 10))
        return Result(process.returncode, *outputs, timed_out, wall_ms, leftover)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(process, seconds) -> bool:
    "Wait for process to end, at most seconds; whether it ran past them."
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd (before Linux 5.3): Popen's polling wait
        try:
            process.wait(seconds)
            return False
        except subprocess.TimeoutExpired:
            return True
    try:
        # Wakes the moment the process ends; Popen.wait(timeout) would poll in
        # sleeps of up to 50 ms, which was most of a short check's time.
        return not select.select([fd], [], [], seconds)[0]
    finally:
        os.close(fd)


def _preexec_with_extra(extra_fd, *args):
    # fd 3 is the program's own channel (the harness writes its result there);
    # subprocess closes other descriptors after this runs, keeping pass_fds=(3,).
    os.dup2(extra_fd, 3)
    _preexec(*args)

