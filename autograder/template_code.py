"""The code a template (:mod:`autograder.forkserver`) runs inside its sandbox, as text for ``python -c``.

:data:`TEMPLATE_CODE` runs after the template's own code (the evaluator's ``serve(inp, out)``, or
:data:`KERNEL_CODE`'s ``start(req)``): it forks one child per request line, hands the child to the slot's user with
the job's limits, and clears up after it. Kept apart from the grader's side because none of it runs in the grader.
"""

# Runs in the template after the evaluator's code (which defines ``serve(inp, out)`` and imports what it needs).
TEMPLATE_CODE = r"""
import ctypes, json, os, resource, shutil, signal, sys, time, warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork() beside TensorFlow's idle threads
_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option, value):
    args = [ctypes.c_int(option)] + [ctypes.c_ulong(v) for v in (value, 0, 0, 0)]
    if _libc.prctl(*args) != 0:
        raise OSError(ctypes.get_errno(), "prctl(%d, %d) failed" % (option, value))


def child(req):
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    uid = req["uid"]
    if uid is not None:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
        for cap in range(last + 1):
            prctl(24, cap)  # PR_CAPBSET_DROP
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # the permitted and effective capabilities go with root
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        if _libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:  # and the inheritable ones
            raise OSError(ctypes.get_errno(), "capset failed")
    for name, value in req["limits"]:
        resource.setrlimit(getattr(resource, name), (value, value))
    os.chdir(req["folder"])
    os.environ["HOME"] = req["folder"]
    start(req)


if "start" not in globals():  # the evaluator's: one request line in, one answer line out, over named pipes

    def start(req):
        with open("in") as inp, open("out", "w") as out:
            serve(inp, out)


def reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def sweep():
    for _ in range(5000):
        try:
            os.kill(-1, signal.SIGKILL)  # every process of the sandbox but this one and bubblewrap's init
        except ProcessLookupError:
            break
        except PermissionError as exc:
            return "kill: %s" % exc
        reap()
        time.sleep(0.001)
    else:
        return "processes keep running"
    for top in ("/tmp", "/dev/shm"):
        problem = empty(top)
        if problem:
            return problem
    return None


def on_the_way(path):  # a folder holding a mount point
    return any(k.startswith(path + "/") for k in KEEP)


def empty(top):  # remove everything in top but the mount points in it (its own folder, a bound venv) and their way
    for name in os.listdir(top):
        path = os.path.join(top, name)
        if path in KEEP:
            continue
        if on_the_way(path):
            problem = empty(path)
            if problem:
                return problem
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            pass
    left = [n for n in os.listdir(top) if os.path.join(top, n) not in KEEP and not on_the_way(os.path.join(top, n))]
    return "%s is not empty: %s" % (top, left[:3]) if left else None


with open("/proc/self/mountinfo") as fh:  # field 5: the mount point, a space written as \040
    KEEP = {line.split()[4].encode().decode("unicode_escape") for line in fh} | {os.getcwd()}
prctl(4, 0)  # PR_SET_DUMPABLE: no child reads or writes this process's memory or descriptors
prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: what a child leaves running is this process's to kill and wait for
sys.stdout.write("ready %d\n" % os.getpid())
sys.stdout.flush()
while True:
    line = sys.stdin.readline()
    if not line:
        break
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            child(req)
            code = 0
        finally:
            os._exit(code)
    if req.get("report"):
        sys.stdout.write("forked %d\n" % pid)
        sys.stdout.flush()
    while True:  # reap what the child leaves behind as it dies (this process is their subreaper), until it ends
        done, status = os.waitpid(-1, 0)
        if done == pid:
            break
    problem = sweep()
    sys.stdout.write(("unclean %s" % problem)[:1000] if problem else "ended %d" % os.waitstatus_to_exitcode(status))
    sys.stdout.write("\n")
    sys.stdout.flush()
    if problem:
        break
"""


# A kernel template's code (``PRELOAD``: the modules to import once): each child becomes the submission's IPython
# kernel, as ``python -m ipykernel_launcher`` started in its folder with the job's environment would be.
KERNEL_CODE = r"""
import importlib, os, random, sys

import ipykernel.kernelapp
import ipykernel_launcher
import numpy

for _name in PRELOAD:
    importlib.import_module(_name)


def start(req):
    os.environ.clear()
    os.environ.update(req["env"])
    try:  # the kernel's own stderr goes to the submission's log, through the named pipe the grader reads
        fd = os.open(req["log"], os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        fd = None
    if fd is not None:
        os.set_blocking(fd, True)
        os.dup2(fd, 2)
        os.close(fd)
    sys.path[0] = os.getcwd()
    sys.argv = [ipykernel_launcher.__file__, *req["argv"]]
    random.seed()  # each kernel its own random state, as a fresh process has (the template's was seeded once)
    numpy.random.seed()
    config = sys.modules.get("keras.src.backend.config")
    if config is not None and hasattr(config, "_KERAS_DIR"):  # Keras fixed its folder at import: the template's
        base = os.path.expanduser("~")
        config._KERAS_DIR = os.environ.get("KERAS_HOME") or os.path.join(
            base if os.access(base, os.W_OK) else "/tmp", ".keras"
        )
    ipykernel.kernelapp.IPKernelApp.launch_instance(argv=list(req["argv"]))
"""
