"""Suite-wide pytest hooks: the longest files first, and the per-notebook execution times printed at the end of
`make test`."""

import collections

# `make test` runs files on 2 workers (pytest-xdist, --dist loadfile --no-loadscope-reorder): each worker takes
# the next file in collection order when it is free. Starting the longest files first (as longest-processing-
# time-first scheduling does) keeps a long file from starting last while the other worker has nothing left.
# The order is from the durations `make test` prints (seconds on 2 cores, smoke profile); a file not listed
# keeps its place after these. Only the order changes: every file still runs.
LONGEST_FIRST = [
    "tests/test_assignments.py",  # about 500 s: every assignment's solution, blank and wrong-answer students
    "tests/test_autograder.py",  # about 230 s: hw1's sample class
    "tests/test_no_sandbox.py",
    "notebooks/week09_detection_and_segmentation.ipynb",
    "notebooks/week11_attention_and_transformers.ipynb",
    "notebooks/week05_mnist_to_svhn.ipynb",
    "notebooks/week07_training_in_practice.ipynb",
    "notebooks/week04_cnns_on_mnist.ipynb",
    "notebooks/week12_gans.ipynb",
    "tests/test_formgrader.py",
    "tests/test_sandbox.py",
    "tests/test_limits.py",
    "tests/test_manual_grading.py",
]

_notebook_seconds: dict[str, float] = collections.defaultdict(float)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: in-file order kept


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook execution times (fresh kernel, all cells)")
    for path, seconds in sorted(_notebook_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}")
