"""Bounds on what one submission may take: answers the grader decodes, output the notebook keeps, the folder's
bytes and files, the worker's own memory, and what a killed grader leaves behind (issue 13, items 6 and 7)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import nbformat
import psutil
import pytest
from helpers import scratch_course

from autograder import evaluate, folders, pipeline
from autograder.contract import MAX_ITEMS, MAX_NESTING, ProtocolError, read_answer
from autograder.course import CourseError, load_course, load_settings
from autograder.job import Job, SandboxSpec
from autograder.sandbox import Limits, SandboxError

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "autograder" / "samples"


# ------------------------------------------------------------------------------------- decoding answers


def test_answer_with_too_many_values_is_refused_before_parsing():
    """A 60 MB answer of small nested lists cost the worker 1.4 GiB to parse: the count comes first."""
    text = '{"value": {"__list__": [' + ",".join(['{"__list__": [1]}'] * (MAX_ITEMS // 2 + 10)) + "]}}"
    with pytest.raises(ProtocolError, match=r"holds about [\d,]+ values; at most 1,000,000"):
        read_answer(text)


def test_answer_nested_too_deeply_is_refused_before_parsing():
    depth = MAX_NESTING + 5
    with pytest.raises(ProtocolError, match=f"nested {depth + 1} levels deep; at most {MAX_NESTING}"):
        read_answer('{"value": ' + "[" * depth + "]" * depth + "}")


def test_brackets_and_quotes_inside_strings_are_not_counted():
    text = json.dumps({"value": "[" * 5000 + '\\"{' * 2000, "n": [1, 2, 3]})
    assert read_answer(text)["n"] == [1, 2, 3]


def test_worker_memory_limit_turns_a_big_answer_into_a_memory_error():
    """The worker's own address space is capped per job: parsing past it raises MemoryError (which the test
    that asked fails with), instead of taking the machine's memory."""
    code = (
        "from autograder import worker\nfrom autograder.contract import read_answer\n"
        "text = '{\"v\": [' + ','.join(['\"' + 'x' * 400 + '\"'] * 100_000) + ']}'\n"
        "worker._limit_memory(16 * 2**20)\n"
        "try:\n    read_answer(text)\n    print('parsed')\nexcept MemoryError:\n    print('MemoryError')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.strip() == "MemoryError", proc.stderr[-2000:]


# ------------------------------------------------------------------------------------- settings


def test_tmpfs_and_folder_count_against_the_memory_limit(tmp_path):
    assert Limits(memory=5 * 2**30).address_space == 4 * 2**30
    with pytest.raises(SandboxError, match="leave 0.50 GiB of address space"):
        Limits(memory=2 * 2**30, disk=2**29, tmp_size=2**29).check()
    settings = tmp_path / "assignments.yml"
    base = "defaults:\n  cell_timeout: 30\n  notebook_timeout: 600\n"
    settings.write_text(base + "  memory_limit: 1G\n")
    with pytest.raises(CourseError, match="memory limit 1 GiB is too small"):
        load_settings("hw1", settings)
    settings.write_text(base + "  max_files: 5\n")
    with pytest.raises(CourseError, match="max_files for 'hw1' must be a whole number of at least 100"):
        load_settings("hw1", settings)
    settings.write_text(base + "  output_limit: 2M\n  notebook_output_limit: 1M\n")
    with pytest.raises(CourseError, match="notebook_output_limit for 'hw1' is smaller than output_limit"):
        load_settings("hw1", settings)
    settings.write_text(base + "  disk_limit: lots\n")
    with pytest.raises(CourseError, match="disk_limit for 'hw1': cannot read the size 'lots'"):
        load_settings("hw1", settings)


# ------------------------------------------------------------------------------------- output and disk


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """One small notebook in a real sandboxed kernel with low limits: 1,000 KiB of output per cell, 3 MiB per
    notebook, 300 files in the folder."""
    base = tmp_path_factory.mktemp("limits")
    base.chmod(0o711)
    home, control, private = base / "home", base / "control", base / "private"
    for d in (home, control, private):
        d.mkdir()
    private.chmod(0o700)
    test = {"nbgrader": {"grade_id": "t", "grade": True, "points": 1}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(src)
        for src in (
            "print('x' * 5_000_000)",  # one message past the cell's limit: cut to the limit
            "for _ in range(50):\n    print('y' * 100_000)",  # many messages: the rest dropped
            "from IPython.display import HTML\nfor _ in range(5):\n    display(HTML('z' * 900_000))",
            "print('small' * 60_000)",  # 300 KB: past what is left of the notebook's 3 MiB
            "import os\nfor i in range(400):\n    open(f'f{i}', 'w').close()",
            "never = 1",
        )
    ]
    nb.cells.append(nbformat.v4.new_code_cell("assert True", metadata=test))
    nbformat.write(nb, str(private / "nb.ipynb"))
    Job(
        workdir=str(home),
        control=str(control),
        notebook=str(private / "nb.ipynb"),
        cell_timeout=60,
        notebook_timeout=200,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        sandbox=SandboxSpec(
            slot=11,
            memory=4 * 2**30 + 2 * 64 * 2**20 + 64 * 2**20,
            processes=256,
            tmp_size=64 * 2**20,
            disk=64 * 2**20,
            files=300,
        ),
        output_limit=1000 * 2**10,
        notebook_output_limit=3 * 2**20,
        executed=str(base / "out.ipynb"),
        result=str(base / "result.json"),
    ).write(private / "job.json")
    proc = subprocess.run(
        [sys.executable, "-m", "autograder.worker", str(private / "job.json")],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((base / "result.json").read_text()), base / "out.ipynb"


def _text(cell) -> str:
    return "".join(o.get("text", "") + "".join(map(str, o.get("data", {}).values())) for o in cell.outputs)


def test_output_is_cut_per_cell_and_per_notebook_with_a_note(bounded):
    _, path = bounded
    assert path.stat().st_size < 4 * 2**20  # 5 MB + 5 MB + 4.5 MB printed
    nb = nbformat.read(str(path), as_version=4)
    note = "[output truncated by the grader: a cell keeps 1000 KiB of output, the notebook 3 MiB]"
    for index in (0, 1, 2):
        text = _text(nb.cells[index])
        assert note in text and len(text) <= 1000 * 2**10 + 200, (index, len(text))
    assert len(_text(nb.cells[0])) > 1000 * 2**10 - 10  # a stream is cut at the limit, not dropped
    assert note in _text(nb.cells[3]) and len(_text(nb.cells[3])) < 250_000


def test_folder_past_its_file_limit_fails_the_cell_and_stops(bounded):
    result, _ = bounded
    cells = result["cells"]
    assert cells[4]["status"] == "disk" and cells[4]["ename"] == "DiskLimitExceeded", cells[4]
    assert "reached its limit (64 MiB, 300 files and folders)" in cells[4]["evalue"]
    assert [c["status"] for c in cells[5:]] == ["disk", "disk"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can mount the folder's tmpfs")
def test_root_grader_gives_the_folder_a_tmpfs_of_its_size_and_file_count(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    if not folders.mount_home(home, Limits(disk=2**20, files=100)):
        pytest.skip("no right to mount here (a container without the privilege)")
    try:
        made = 0
        with pytest.raises(OSError, match="No space left on device"):
            for made in range(200):  # noqa: B007
                (home / f"f{made}").touch()
        assert made == 100
        with pytest.raises(OSError, match="No space left on device"):
            (home / "f0").write_bytes(b"0" * 2 * 2**20)
        assert folders._mounts_under(tmp_path) == [str(home)]
    finally:
        folders.remove_grading_folder(tmp_path)
    assert not tmp_path.exists() and folders._mounts_under(tmp_path) == []


# ------------------------------------------------------------------------------------- the model evaluator


def test_model_evaluator_starts_with_only_its_pipes(tmp_path, monkeypatch):
    """Without bubblewrap (``sandbox: false``) the evaluator is a process of its own per submission: it inherits its
    three pipes and nothing else of the worker's (its log, say). With bubblewrap each is a child of a template
    process, which keeps none of its descriptors (tests/test_forkserver.py)."""
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (an open file of the worker's, like its log)
    os.set_inheritable(log.fileno(), True)
    monkeypatch.setattr(
        evaluate,
        "EVALUATOR_CODE",
        (
            "import json, os\nfds = {}\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
            "        fds[fd] = os.readlink('/proc/self/fd/' + fd)\n    except OSError:\n        pass\n"
            "json.dump(fds, open('fds.json', 'w'))\nprint('ready', flush=True)\nimport sys\nsys.stdin.read()\n"
        ),
    )
    work = tmp_path / "work"
    work.mkdir()
    tmp_path.chmod(0o711)
    ev = evaluate.ModelEvaluator(work, timeout=60, slot=12, scratch=tmp_path, sandbox=False)
    try:
        _, box = ev._process()
        assert box.parent == tmp_path
        fds = json.loads((box / "fds.json").read_text())
    finally:
        ev.close()
        log.close()
    assert fds["0"].startswith("pipe:") and fds["1"].startswith("pipe:") and fds["2"] == "/dev/null", fds
    assert {t for t in fds.values() if t.startswith("/")} == {"/dev/null"}, fds


# ------------------------------------------------------------------------------------- a killed grader


def test_killed_grader_leaves_no_process_and_no_folder(tmp_path):
    """kill -9 of adl-grade mid-batch: the worker, kernel and evaluator die with it, and the next run removes
    the dead run's grading folder (hidden tests, the student's folder)."""
    mp = pytest.MonkeyPatch()
    # a grading root of its own (short: the kernel's sockets live below it): a grader that another test runs
    # meanwhile would otherwise remove the dead run's folder before this test looks at it
    root = tempfile.mkdtemp(prefix="adl-")
    mp.setenv("ADL_GRADING_DIR", root)
    try:
        scratch_course(tmp_path, ["hw1"], mp)
        course = load_course(tmp_path)
        pipeline.release(course, "hw1")
        download = tmp_path / "download"
        download.mkdir()
        shutil.copy(SAMPLES / "hw1" / "s01_alice_hw1.ipynb", download)
        pipeline.collect(course, "hw1", download)
        proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.cli", "--course", str(tmp_path), "autograde", "hw1", "--workers", "1"],
            env=dict(os.environ),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        grading = folders.grading_root()
        deadline, kernel = time.monotonic() + 240, None
        while time.monotonic() < deadline and kernel is None:  # until the kernel runs the student's cells
            time.sleep(0.2)
            kids = psutil.Process(proc.pid).children(recursive=True)
            kernel = next((p for p in kids if _is_kernel(p)), None)
        assert kernel is not None, "the kernel did not start"
        started = psutil.Process(proc.pid).children(recursive=True)
        (run,) = [p for p in grading.iterdir() if p.name.startswith(f"{proc.pid}-")]
        assert list(run.glob("hw1-*/private/hw1.ipynb"))
        proc.send_signal(signal.SIGKILL)  # the grader alone, as kill -9 PID does
        proc.wait()
        gone, alive = psutil.wait_procs(started, timeout=15)
        assert alive == [], [(p.pid, p.name()) for p in alive]
        assert run.exists()  # left behind: private/, home/ ...
        assert grading.stat().st_mode & 0o777 == 0o711
        folders._GRADING_FOLDERS.clear()
        mine = folders.grading_folder()  # the next run
        assert not run.exists() and mine.is_dir() and folders._mounts_under(run) == []
    finally:
        mp.undo()
        folders._GRADING_FOLDERS.clear()
        shutil.rmtree(root, ignore_errors=True)


def _is_kernel(proc) -> bool:
    try:
        return proc.name() != "bwrap" and "ipykernel_launcher" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def test_grading_root_is_short_and_the_graders_own(tmp_path, monkeypatch):
    """The kernel's Unix sockets live in the submission's folder (at most 107 bytes of path): a grading root
    so deep that they could not is refused with what to do, as is a root someone else made first."""
    deep = tmp_path / ("d" * 60)
    monkeypatch.setenv("ADL_GRADING_DIR", str(deep))
    monkeypatch.setattr(folders, "_GRADING_FOLDERS", {})
    with pytest.raises(CourseError, match="107-byte limit.*ADL_GRADING_DIR"):
        folders.check_socket_room("hw1")
    link = tmp_path / "g"
    link.symlink_to(tmp_path)
    monkeypatch.setenv("ADL_GRADING_DIR", str(link))
    with pytest.raises(CourseError, match="not a folder of this user"):
        folders.grading_root()
    short = tmp_path.parent / "g"
    monkeypatch.setenv("ADL_GRADING_DIR", str(short))
    try:
        folders.check_socket_room("hw1")
        mine = folders.grading_folder()
        assert mine.parent == short and short.stat().st_mode & 0o777 == 0o711
    finally:
        folders.remove_grading_folder(short)
