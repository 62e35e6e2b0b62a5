"""Regenerate the sample class of hw1: a dozen submissions as an LMS download delivers them, and their grades.

The class is built from the student release (``release/hw1/hw1.ipynb``), so it follows hw1 when hw1 changes:
each student's answer code is written into the release's ``# YOUR CODE HERE`` stubs, and a few students also
edit or delete test cells or hand in a broken file. The script writes

* ``autograder/samples/hw1/<student_id>_hw1.ipynb``: one flat file per student;
* ``autograder/samples/hw1/expected.json``: for every student the expected points per test cell (grade id),
  the total and a note, under the grading rules in ``RULES`` below.

Running it twice gives byte-identical files. Usage, from the repository root::

    make release                                              # after changing source/hw1/hw1.ipynb
    .venv/bin/python autograder/samples/make_sample_class.py  # rewrite the class
    .venv/bin/python autograder/samples/make_sample_class.py --check   # exit 1 if the class is out of date

If hw1 changes shape (a stub more or less in a solution cell, a renamed grade id), the script stops and
names the cell: update the roster below, and the failing test cells of each student, by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys
import textwrap
from collections.abc import Callable

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RELEASE = ROOT / "release" / "hw1" / "hw1.ipynb"
SOURCE = ROOT / "source" / "hw1" / "hw1.ipynb"  # the sample answers of the questions graded by hand
OUT_DIR = HERE / "hw1"
ASSIGNMENT = "hw1"

STUB_LINE = "# YOUR CODE HERE"
RAISE_LINE = "raise NotImplementedError()"

RULES = [
    "The test cells are restored from source/hw1/hw1.ipynb, hidden tests included: an edited test cell is "
    "replaced by the source's, a deleted one is put back after its solution cell.",
    "The whole notebook runs top to bottom in one fresh kernel (profile smoke), with a per-cell time limit; a "
    "cell that runs past it is interrupted and whatever it would have defined is missing afterwards.",
    "A test cell earns its points if and only if it raises no error. Output on stderr (warnings, TensorFlow "
    "log lines) costs nothing.",
    "A file that is not valid notebook JSON scores 0 in every test cell.",
    "A question graded by hand (question 8) is no test cell: it is not in \"points\" or \"total\". An answer "
    "handed in as released scores 0; any other awaits a grade in the formgrader (listed under \"manual\").",
]


# --------------------------------------------------------------------------------------------------------
# The roster
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a student wrote into one solution cell.

    Args:
        bodies: one piece of code per ``# YOUR CODE HERE`` stub of the cell, in order. Each replaces the stub
            and its ``raise NotImplementedError()`` line, indented like the stub.
        prefix: code the student added at the top of the cell, above the release's code.
    """

    bodies: tuple[str, ...]
    prefix: str = ""


def answer(*bodies: str, prefix: str = "") -> Answer:
    return Answer(tuple(textwrap.dedent(b).strip("\n") for b in bodies), textwrap.dedent(prefix).strip("\n"))


@dataclasses.dataclass(frozen=True)
class Student:
    """One submission.

    Args:
        id: the student id; the file is ``<id>_hw1.ipynb``.
        note: what the submission exercises, one or two sentences (copied into expected.json).
        answers: solution grade id -> Answer. A solution cell without an answer keeps the release's stub.
        failing: test grade id -> why that test cell fails after restoration. Every other test cell is
            expected to earn its full points.
        test_edits: test grade id -> the source the student left in that (locked) cell, or None if the
            student deleted the cell.
        truncate_at: if set, only this fraction of the notebook's bytes is written: a broken upload.
        tamper: a function that edits the built notebook further (metadata, stored outputs, ...).
        needs_sandbox: the submission attacks the course's files. Without bubblewrap it would succeed (and
            damage the checkout), so the demo and the tests grade it only inside the sandbox.
        flags: the short labels the grader is expected to put on the submission ("timeout", ...).
        by_hand: the student answers the questions graded by hand, with the sample answer of
            ``source/hw1`` (each then awaits a grade); False leaves them as released (0, nothing to grade).
    """

    id: str
    note: str
    answers: dict[str, Answer] = dataclasses.field(default_factory=dict)
    failing: dict[str, str] = dataclasses.field(default_factory=dict)
    test_edits: dict[str, str | None] = dataclasses.field(default_factory=dict)
    truncate_at: float | None = None
    flags: tuple[str, ...] = ()
    tamper: Callable[[nbformat.NotebookNode], None] | None = None  # edits beyond answers (metadata, outputs)
    needs_sandbox: bool = False  # writes to the course when not isolated: graded only inside bubblewrap
    by_hand: bool = True  # answers the questions graded by hand (with the source's sample answer)


# Correct answers, written the way a student would (not the instructor's solution).
SIGMOID = answer("""
    z = np.asarray(z, dtype=float)
    # log(1 + exp(-z)) without overflow, then exp(-that) = 1 / (1 + exp(-z))
    return np.exp(-np.logaddexp(0.0, -z))
""")
NEURON = answer(
    """
    x = np.asarray(x, dtype=float)
    z = np.matmul(x, np.asarray(w, dtype=float)) + b
    return sigmoid(z)
    """,
    """
    x_note = np.array([[1.0, 2.2]])
    p_fake = float(neuron_probability(x_note, np.array([0.3, 0.1]), 1.0)[0])
    """,
)
DENSE = answer("""
    X = np.asarray(X, dtype=float)
    W = np.asarray(W, dtype=float)
    b = np.asarray(b, dtype=float)
    if X.ndim != 2 or W.ndim != 2:
        raise ValueError(f"X and W must be 2-D, got X.shape={X.shape} and W.shape={W.shape}")
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X.shape={X.shape} does not fit W.shape={W.shape}")
    if b.shape != (W.shape[1],):
        raise ValueError(f"b.shape={b.shape}, expected ({W.shape[1]},)")
    z = np.matmul(X, W) + b
    if activation is None:
        return z
    return activation(z)
""")
PREDICT = answer("""
    hidden = sigmoid(np.matmul(X, W1) + b1)
    return sigmoid(np.matmul(hidden, W2) + b2)
""")
BCE = answer("""
    y_true = np.asarray(y_true, dtype=float).ravel()
    p = np.clip(np.asarray(p, dtype=float).ravel(), eps, 1 - eps)
    losses = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
    return float(np.mean(losses))
""")
ACCURACY = answer("""
    predicted = (np.asarray(p).ravel() > threshold).astype(int)
    return float(np.mean(predicted == np.asarray(y_true).ravel()))
""")
BANKNOTE = answer("""
    p_bank = predict_hidden(x, W1_bank, b1_bank, W2_bank, b2_bank)
    loss_bank = binary_cross_entropy(y, p_bank)
    acc_bank = accuracy(y, p_bank)
""")

# What grace's dense layer prints on every call, before doing the right thing.
TF_LOG_LINE = textwrap.dedent("""
    import sys

    print("I0000 00:00:1700000000.000000    4242 cpu_feature_guard.cc:210] This TensorFlow binary is optimized "
          "to use available CPU instructions in performance-critical operations.", file=sys.stderr)
""").strip("\n")

CORRECT = {
    "q1_sigmoid_solution": SIGMOID,
    "q2_neuron_solution": NEURON,
    "q3_dense_solution": DENSE,
    "q4_predict_hidden_solution": PREDICT,
    "q5_bce_solution": BCE,
    "q6_accuracy_solution": ACCURACY,
    "q7_banknote_solution": BANKNOTE,
}


def with_prefix(ans: Answer, prefix: str) -> Answer:
    """``ans`` with ``prefix`` (code the student put at the top of the cell) added."""
    return dataclasses.replace(ans, prefix=textwrap.dedent(prefix).strip("\n"))


def correct_but(**changes: Answer) -> dict[str, Answer]:
    """The correct answers, with some solution cells (by grade id) replaced."""
    unknown = sorted(set(changes) - set(CORRECT))
    if unknown:
        raise ValueError(f"correct_but: no solution cells named {unknown}; known: {sorted(CORRECT)}")
    return {**CORRECT, **changes}


STUDENTS = [
    Student(
        "s01_alice",
        "Everything correct, in her own words (her stable sigmoid masks positive and negative z). Full marks.",
        correct_but(q1_sigmoid_solution=answer("""
            z = np.asarray(z, dtype=float)
            out = np.empty_like(z)
            pos = z >= 0
            out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
            ez = np.exp(z[~pos])  # z < 0 here, so exp(z) <= 1
            out[~pos] = ez / (1.0 + ez)
            return out
        """)),
    ),
    Student(
        "s02_bob",
        "Textbook formulas without the numerics: a sigmoid that overflows for large negative z and a loss "
        "without clipping. The visible checks catch both (large |z| and p = 1); everything else is right.",
        correct_but(
            q1_sigmoid_solution=answer("return 1 / (1 + np.exp(-z))"),
            q5_bce_solution=answer("""
                y_true = np.asarray(y_true, dtype=float).ravel()
                p = np.asarray(p, dtype=float).ravel()
                return float(np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))))
            """),
        ),
        failing={
            "q1_sigmoid": "visible check: np.exp(1000) overflows (a RuntimeWarning, an error in the check)",
            "q5_bce": "visible check: p = 1 for y = 0 gives log(0) and an infinite loss",
        },
    ),
    Student(
        "s03_carol",
        "Transposed weight matrix: her dense layer expects W[to, from] (PyTorch's layout) and computes "
        "X @ W.T, so every (d_in, d_out) weight matrix is rejected. One mistake, three questions.",
        correct_but(
            q3_dense_solution=answer("""
                X = np.asarray(X, dtype=float)
                W = np.asarray(W, dtype=float)  # one row of weights per unit
                b = np.asarray(b, dtype=float)
                if X.shape[1] != W.shape[1]:
                    raise ValueError(f"X has {X.shape[1]} features but W has {W.shape[1]} columns")
                if b.shape != (W.shape[0],):
                    raise ValueError(f"b.shape={b.shape}, expected ({W.shape[0]},)")
                z = X @ W.T + b
                return z if activation is None else activation(z)
            """),
            q4_predict_hidden_solution=answer("""
                hidden = dense_forward(X, W1, b1, sigmoid)
                return dense_forward(hidden, W2, b2, sigmoid)
            """),
        ),
        failing={
            "q3_dense": "her dense_forward raises ValueError for the (2, 3) weight matrix of the visible check",
            "q4_predict_hidden": "predict_hidden calls her dense_forward, which rejects W1 of shape (2, 3)",
            "q7_banknote": "the solution cell raises ValueError (W1_bank is (4, 3)), so p_bank is never defined",
        },
    ),
    Student(
        "s04_dave",
        "Blank: the release handed in untouched. Every function raises NotImplementedError, and question 8 "
        "still says YOUR ANSWER HERE; zero points, nothing to grade by hand.",
        {},
        failing={
            "q1_sigmoid": "sigmoid raises NotImplementedError",
            "q2_neuron": "neuron_probability raises NotImplementedError",
            "q3_dense": "dense_forward raises NotImplementedError",
            "q4_predict_hidden": "predict_hidden raises NotImplementedError",
            "q5_bce": "binary_cross_entropy raises NotImplementedError",
            "q6_accuracy": "accuracy raises NotImplementedError",
            "q7_banknote": "p_bank is never defined (the solution cell raises NotImplementedError)",
        },
        by_hand=False,
    ),
    Student(
        "s05_erin",
        "A broken upload: the file stops in the middle of the JSON (a correct notebook cut at 45% of its bytes). "
        "Not a notebook, so zero everywhere; the grader must report it and go on with the class.",
        CORRECT,
        truncate_at=0.45,
        flags=("invalid notebook",),
    ),
    Student(
        "s06_frank",
        "An infinite loop (while True: pass) at the top of the question-2 cell, everything else correct. The "
        "cell is interrupted at the time limit; only question 2 is lost, the rest of the notebook must still run.",
        correct_but(q2_neuron_solution=with_prefix(NEURON, """
            while True:  # wait for the plot window (left over from a script)
                pass
        """)),
        failing={
            "q2_neuron": "the cell that defines neuron_probability and p_fake timed out, so both are missing",
        },
        flags=("timeout",),
    ),
    Student(
        "s07_grace",
        "Correct, but her functions write to stderr while the tests call them: TensorFlow-style log lines "
        "printed to sys.stderr and a warnings.warn. Classic nbgrader zeroes every test cell with stderr "
        "output and would give her 3 points (only the test cells of questions 6 and 7 stay silent); our "
        "rules give full credit.",
        correct_but(
            q1_sigmoid_solution=answer("""
                import sys

                print("W tensorflow/core/framework/cpu_allocator_impl.cc:83] Allocation of 4096 exceeds 10% "
                      "of free system memory.", file=sys.stderr)
                z = np.asarray(z, dtype=float)
                return np.exp(-np.logaddexp(0.0, -z))
            """),
            q3_dense_solution=Answer((TF_LOG_LINE + "\n" + DENSE.bodies[0],)),
            q5_bce_solution=answer("""
                import warnings

                warnings.warn("binary_cross_entropy: clipping probabilities to [eps, 1 - eps]", UserWarning)
                y_true = np.asarray(y_true, dtype=float).ravel()
                p = np.clip(np.asarray(p, dtype=float).ravel(), eps, 1 - eps)
                return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
            """),
        ),
    ),
    Student(
        "s08_heidi",
        "Edited two locked test cells to `pass` so that her notebook runs clean, and both answers behind them "
        "are wrong (a loss without the minus sign, an accuracy that counts instead of averaging). Restoring "
        "the test cells takes the points back, and question 7 fails with them.",
        correct_but(
            q5_bce_solution=answer("""
                y_true = np.asarray(y_true, dtype=float).ravel()
                p = np.clip(np.asarray(p, dtype=float).ravel(), eps, 1 - eps)
                return float(np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
            """),
            q6_accuracy_solution=answer("""
                return np.sum((np.ravel(p) > threshold) == np.ravel(y_true))
            """),
        ),
        failing={
            "q5_bce": "(test cell restored) her loss has no minus sign: -0.164 instead of 0.164",
            "q6_accuracy": "(test cell restored) her accuracy returns the number of correct notes (2), not 0.5",
            "q7_banknote": "loss_bank is negative and acc_bank is a count",
        },
        test_edits={"q5_bce": "pass", "q6_accuracy": "pass"},
        flags=("test edited",),
    ),
    Student(
        "s09_ivan",
        "Deleted the test cell of question 3, whose visible check kept failing: his dense_forward has no shape "
        "validation. The grader puts the cell back and it fails. His other answers are correct.",
        correct_but(q3_dense_solution=answer("""
            z = np.matmul(X, W) + b
            if activation is not None:
                z = activation(z)
            return z
        """)),
        failing={
            "q3_dense": "(test cell restored) a b of shape (1,) broadcasts silently instead of raising ValueError",
        },
        test_edits={"q3_dense": None},
        flags=("test deleted",),
    ),
    Student(
        "s10_judy",
        "NameError in the first answer: she calls sigmoid(0) above its def (it worked in her kernel, where "
        "sigmoid already existed). In a fresh kernel sigmoid is never defined, and every later answer that "
        "uses it fails; the answers that do not use it still earn their points.",
        correct_but(q1_sigmoid_solution=with_prefix(SIGMOID, """
            print("sigmoid(0) =", sigmoid(0))  # quick check
        """)),
        failing={
            "q1_sigmoid": "sigmoid is not defined (the cell stopped with a NameError before the def)",
            "q2_neuron": "neuron_probability calls the undefined sigmoid; p_fake is never defined",
            "q4_predict_hidden": "predict_hidden calls the undefined sigmoid",
            "q7_banknote": "the solution cell raises NameError, so p_bank is never defined",
        },
    ),
    Student(
        "s11_ken",
        "Shape bug: his loss and accuracy do not flatten, so a (n, 1) column of probabilities against (n,) "
        "labels broadcasts to an (n, n) matrix. Fails the visible checks that pass p as a column, the hidden "
        "ones and the banknote question, where p_bank is (n, 1).",
        correct_but(
            q5_bce_solution=answer("""
                y_true = np.asarray(y_true, dtype=float)
                p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
                return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
            """),
            q6_accuracy_solution=answer("""
                return float(np.mean((np.asarray(p) > threshold) == np.asarray(y_true)))
            """),
        ),
        failing={
            "q5_bce": "visible check: p of shape (n, 1) broadcasts against y of shape (n,)",
            "q6_accuracy": "visible check: p of shape (n, 1) broadcasts against y of shape (n,)",
            "q7_banknote": "loss_bank and acc_bank are means over an (n, n) matrix",
        },
    ),
    Student(
        "s12_lena",
        "Unsigned labels: her loss negates y_true without converting it to float, and -1 in uint8 is 255. "
        "Right for float and int labels, wrong for uint8 ones (a visible check and the banknote labels).",
        correct_but(q5_bce_solution=answer("""
            y_true = np.ravel(y_true)
            p = np.clip(np.ravel(p), eps, 1 - eps)
            return float(np.mean(-y_true * np.log(p) - (1 - y_true) * np.log(1 - p)))
        """)),
        failing={
            "q5_bce": "visible check: with uint8 labels -y_true wraps to 255",
            "q7_banknote": "y is uint8, so loss_bank is wrong",
        },
    ),
]


# --------------------------------------------------------------------------------------------------------
# Attacks: submissions that try to defeat the grader. Each is one case of the autograder's threat list
# (autograder/README.md); tests/test_autograder.py asserts their exact grades and flags, and
# tests/test_sandbox.py the side effects (nothing outside the sandbox changed).
# --------------------------------------------------------------------------------------------------------

BLANK_AFTER_Q1 = {"q1_sigmoid_solution": SIGMOID}  # what the attackers fall back on: question 1 only
FAILS_AFTER_Q1 = {
    "q2_neuron": "neuron_probability raises NotImplementedError",
    "q3_dense": "dense_forward raises NotImplementedError",
    "q4_predict_hidden": "predict_hidden raises NotImplementedError",
    "q5_bce": "binary_cross_entropy raises NotImplementedError",
    "q6_accuracy": "accuracy raises NotImplementedError",
    "q7_banknote": "p_bank is never defined",
}
WRONG_SIGMOID_FAILS = {
    "q1_sigmoid": "the grader compares the returned values itself",
    "q2_neuron": "neuron_probability uses the wrong sigmoid",
    "q4_predict_hidden": "predict_hidden uses the wrong sigmoid",
    "q7_banknote": "p_bank comes from the wrong sigmoid",
}


def _tamper_browser(nb) -> None:
    """s31: her own cells hold HTML for the instructor's browser: a raw cell marked text/html and a
    Markdown cell with a script, an <img onerror> and a javascript: link."""
    raw = nbformat.v4.new_raw_cell("<script>document.title='owned by s31 (raw)'</script>")
    raw.metadata["format"] = "text/html"
    raw.metadata["raw_mimetype"] = "text/html"
    md = nbformat.v4.new_markdown_cell(
        "My notes. <script>document.title='owned by s31 (markdown)'</script>\n\n"
        '<img src="x" onerror="document.title=\'owned by s31 (img)\'">\n\n'
        "[see my answer](javascript:document.title='owned%20by%20s31') and $\\href{javascript:alert(1)}{x}$"
    )
    raw.id, md.id = "s31-raw-html", "s31-notes"  # fixed ids: the class is rebuilt byte for byte
    nb.cells[1:1] = [raw, md]


def _tamper_metadata(nb) -> None:
    """More points, a test turned into markdown, a test that is no longer graded, another kernel."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "q1_sigmoid":
            meta["points"] = 100
        if meta.get("grade_id") == "q2_neuron":
            cell.cell_type = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        if meta.get("grade_id") == "q3_dense":
            meta["grade"] = False
    nb.metadata["kernelspec"] = {"name": "evil", "display_name": "Always full marks", "language": "python"}


def _tamper_outputs(nb) -> None:
    """10,000 stored output lines in one cell."""
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_sigmoid_solution")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(f"line {i}\n" for i in range(10_000)))]


# A pickle whose loading would create /tmp/adl-pickle-was-loaded in the process that loads it.
PICKLE_B64 = "gASVQQAAAAAAAACMAm9zlIwGc3lzdGVtlJOUjCV0b3VjaCAvdG1wL2FkbC1waWNrbGUtd2FzLWxvYWRlZJSFlFKULg=="


def _tamper_pickle(nb) -> None:
    """The same crafted pickle as an output, an attachment and in metadata."""
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_neuron_solution")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"application/x-python-pickle": PICKLE_B64,
                                                                  "text/plain": "a model"})]
    cell.metadata["model"] = {"pickle": PICKLE_B64}
    md = next(c for c in nb.cells if c.cell_type == "markdown")
    md.attachments = {"model.pkl": {"application/octet-stream": PICKLE_B64}}


READ_SOURCE = """
    # Look for the instructor's files next to the helper package and run the solutions found there.
    import json, pathlib, adl_helpers
    _root = pathlib.Path(adl_helpers.__file__).resolve().parents[1]
    for _nb in [*_root.glob("source/*/*.ipynb"), *_root.glob("submitted/*/*/*.ipynb"), *_root.glob("autograded/*/*/*.ipynb")]:
        try:
            for _c in json.loads(_nb.read_text())["cells"]:
                if "### BEGIN SOLUTION" in "".join(_c["source"]):
                    exec("".join(_c["source"]), globals())
        except Exception:
            pass
"""

WRITE_GRADEBOOK = """
    # Give everyone full marks in the gradebook, wherever it is.
    import os, pathlib, sqlite3, adl_helpers
    _root = pathlib.Path(adl_helpers.__file__).resolve().parents[1]
    for _db in [*_root.glob("build/*.db"), *_root.glob("*.db"), *pathlib.Path("/").glob("tmp/*/build/*.db")]:
        try:
            with sqlite3.connect(_db) as _con:
                _con.execute("UPDATE grade SET auto_score = 100")
        except Exception:
            pass
    print("gradebook URL in my environment:", os.environ.get("ADL_GRADEBOOK_URL"))
"""

OVERWRITE_TESTS = """
    # Replace the instructor's test cells, and the grader's own code, with `pass`.
    import json, pathlib, adl_helpers
    _root = pathlib.Path(adl_helpers.__file__).resolve().parents[1]
    for _nb in _root.glob("source/*/*.ipynb"):
        try:
            _j = json.loads(_nb.read_text())
            for _c in _j["cells"]:
                if _c["metadata"].get("nbgrader", {}).get("grade"):
                    _c["source"] = ["pass"]
            _nb.write_text(json.dumps(_j))
        except Exception:
            pass
    for _py in [*_root.glob("autograder/*.py"), pathlib.Path(adl_helpers.__file__)]:
        try:
            _py.write_text("pass\\n")
        except Exception:
            pass
"""

STUDENTS += [
    Student(
        "s13_mallory",
        "Correct answers, and the notebook's metadata edited: question 1's test worth 100 points, question 2's "
        "test turned into markdown, question 3's test no longer graded, another kernel asked for. Points, cell "
        "types and the kernel come from source/: 14/14, flagged.",
        CORRECT,
        tamper=_tamper_metadata,
        flags=("metadata changed",),
    ),
    Student(
        "s14_oscar",
        "Redefines the assert helpers (np.testing.assert_allclose, np.isclose, np.allclose do nothing or say "
        "yes; AssertionError replaced) above a wrong sigmoid. The tests run in the grader, whose NumPy he "
        "cannot touch: the four questions that need the sigmoid fail.",
        correct_but(q1_sigmoid_solution=with_prefix(answer("return np.zeros_like(np.asarray(z, dtype=float))"), """
            import builtins
            np.testing.assert_allclose = lambda *args, **kwargs: None
            np.isclose = lambda *args, **kwargs: True
            np.allclose = lambda *args, **kwargs: True
            builtins.AssertionError = type("AssertionError", (Exception,), {})
        """)),
        failing=WRONG_SIGMOID_FAILS,
    ),
    Student(
        "s15_trent",
        "Answers that equal anything: his sigmoid returns an object whose __eq__ always says True (and which "
        "pretends to be an array), and p_fake is a float subclass that equals everything. Neither crosses "
        "into the grader as a number.",
        correct_but(
            q1_sigmoid_solution=with_prefix(answer("return Anything()"), """
                class Anything:
                    shape = property(lambda self: (5,))
                    def __eq__(self, other): return True
                    def __ne__(self, other): return False
                    def __array__(self, dtype=None, copy=None): return np.array([Anything()], dtype=object)
                    def __float__(self): return 0.5
            """),
            q2_neuron_solution=answer(
                NEURON.bodies[0],
                """
                class Close(float):
                    def __eq__(self, other): return True
                p_fake = Close(0.0)
                """,
            ),
        ),
        failing={**WRONG_SIGMOID_FAILS, "q2_neuron": "p_fake is a float subclass and the sigmoid an object"},
    ),
    Student(
        "s16_victor",
        "After his (correct) question 3 he adds an IPython input transformer that turns every later cell "
        "into `pass`, so that no test can fail. The grader's questions to the kernel get no answer from then "
        "on: questions 1 and 2 keep their points, everything after is lost, flagged.",
        correct_but(q3_dense_solution=Answer(DENSE.bodies, "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])")),
        failing={
            "q3_dense": "the kernel runs `pass` instead of the grader's question",
            "q4_predict_hidden": "the kernel runs `pass` instead of every later cell",
            "q5_bce": "the kernel runs `pass` instead of every later cell",
            "q6_accuracy": "the kernel runs `pass` instead of every later cell",
            "q7_banknote": "the kernel runs `pass` instead of every later cell",
        },
        flags=("kernel tampered",),
    ),
    Student(
        "s17_walter",
        "Patches the shell's run_cell (and run_cell_async) so that later cells report success without "
        "running. The kernel then answers nothing: question 5's test times out, and after a restart (which "
        "replays his patch) the grader stops waiting. Questions 1 to 4 keep their points.",
        correct_but(q5_bce_solution=Answer(BCE.bodies, textwrap.dedent("""
            _ip = get_ipython()
            _ip.run_cell = lambda *args, **kwargs: None
            _ip.run_cell_async = lambda *args, **kwargs: None
        """).strip("\\n"))),
        failing={
            "q5_bce": "run_cell is patched: the grader's question is never run",
            "q6_accuracy": "run_cell is patched",
            "q7_banknote": "run_cell is patched",
        },
        flags=("timeout", "kernel unresponsive"),
    ),
    Student(
        "s18_xavier",
        "Answers question 1, then looks for the instructor's source notebooks (and other students' "
        "submissions) beside the helper package to run their solutions. The course folder is not in the "
        "sandbox: he keeps the 2 points of question 1.",
        {"q1_sigmoid_solution": with_prefix(SIGMOID, READ_SOURCE)},
        failing=FAILS_AFTER_Q1,
        needs_sandbox=True,
    ),
    Student(
        "s19_yvonne",
        "Answers question 1, then tries to set every auto_score in the gradebook to 100 (SQLite files beside "
        "the helper package, the gradebook URL from the environment). She keeps 2 points; the gradebook holds "
        "exactly the grader's scores.",
        {"q1_sigmoid_solution": with_prefix(SIGMOID, WRITE_GRADEBOOK)},
        failing=FAILS_AFTER_Q1,
        needs_sandbox=True,
    ),
    Student(
        "s20_zack",
        "Answers question 1, then overwrites the instructor's test cells and the grader's own Python files "
        "with `pass`. Nothing of the course is writable (or even visible) from the kernel: 2 points.",
        {"q1_sigmoid_solution": with_prefix(SIGMOID, OVERWRITE_TESTS)},
        failing=FAILS_AFTER_Q1,
        needs_sandbox=True,
    ),
    Student(
        "s21_uma",
        "An infinite loop that ignores SIGINT at the top of question 2. The interrupt does not stop it, so "
        "the kernel is restarted and the cells before it run again; only question 2 is lost.",
        correct_but(q2_neuron_solution=with_prefix(NEURON, """
            import signal
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            while True:
                pass
        """)),
        failing={"q2_neuron": "the cell never finishes, so neuron_probability and p_fake are missing"},
        flags=("timeout",),
    ),
    Student(
        "s22_peggy",
        "Her accuracy calls os._exit(1): the kernel dies in question 6's test and again when question 7 calls "
        "accuracy. Each death costs the question that caused it; the kernel is restarted both times.",
        correct_but(q6_accuracy_solution=answer("""
            import os
            os._exit(1)
        """)),
        failing={
            "q6_accuracy": "the kernel died while the test ran accuracy",
            "q7_banknote": "the solution cell killed the kernel, so acc_bank is missing",
        },
        flags=("kernel died",),
    ),
    Student(
        "s23_rupert",
        "His loss dereferences a null pointer with ctypes: a segmentation fault in question 5's test and in "
        "question 7's solution. Both questions are lost, the rest is graded.",
        correct_but(q5_bce_solution=answer("""
            import faulthandler
            faulthandler._sigsegv()  # a real segmentation fault, as CPython's own tests make one
        """)),
        failing={
            "q5_bce": "the kernel crashed (segmentation fault) while the test ran binary_cross_entropy",
            "q7_banknote": "the solution cell crashed the kernel, so loss_bank is missing",
        },
        flags=("kernel died",),
    ),
    Student(
        "s24_sybil",
        "A memory bomb: her predict_hidden first allocates a 16 GiB array. The kernel's memory limit turns "
        "it into a MemoryError; questions 4 and 7 fail and the machine is unharmed.",
        correct_but(q4_predict_hidden_solution=answer("""
            scratch = np.ones(2**31)  # 16 GiB of float64
            hidden = sigmoid(X @ W1 + b1 + scratch[0] * 0)
            return sigmoid(hidden @ W2 + b2)
        """)),
        failing={
            "q4_predict_hidden": "MemoryError: the kernel may not map 16 GiB",
            "q7_banknote": "predict_hidden raises MemoryError, so p_bank is missing",
        },
    ),
    Student(
        "s25_ted",
        "A fork bomb in his dense layer (every process forks until the system says no). The kernel's "
        "process limit stops it; question 3 is lost and the machine is unharmed.",
        correct_but(q3_dense_solution=answer("""
            import os
            while True:
                os.fork()
        """)),
        failing={"q3_dense": "dense_forward runs a fork bomb; the process limit stops it"},
    ),
    Student(
        "s26_wendy",
        "Calls sys.exit() at the top of question 2 (to stop a long cell early). IPython turns it into an "
        "error in that cell only: question 2 is lost.",
        correct_but(q2_neuron_solution=with_prefix(NEURON, """
            import sys
            sys.exit("stop here")
        """)),
        failing={"q2_neuron": "the cell stops at sys.exit, so neuron_probability and p_fake are missing"},
    ),
    Student(
        "s27_quinn",
        "10,000 lines of stored output in one cell, and her sigmoid cell prints another 10,000 lines when it "
        "runs. Correct answers: 14/14.",
        correct_but(q1_sigmoid_solution=with_prefix(SIGMOID, """
            for _i in range(10_000):
                print("debug line", _i)
        """)),
        tamper=_tamper_outputs,
    ),
    Student(
        "s28_rick",
        "Correct answers, with a crafted pickle in a cell's outputs, in its metadata and as an attachment "
        "(loading it would run a shell command). The grader never unpickles anything: 14/14.",
        CORRECT,
        tamper=_tamper_pickle,
    ),
    Student(
        "s29_sam",
        "Detects the grader (no network, a host named 'grading', the smoke profile) and only then patches "
        "NumPy's testing helpers, so that his wrong sigmoid (zeros) passes when graded while his own copy "
        "shows the honest failures. The tests do not run in his kernel: detecting them gains nothing.",
        correct_but(q1_sigmoid_solution=with_prefix(answer("return np.zeros_like(np.asarray(z, dtype=float))"), """
            import os, socket
            def _graded():
                try:
                    socket.create_connection(("1.1.1.1", 53), timeout=1).close()
                    online = True
                except OSError:
                    online = False
                return socket.gethostname() == "grading" or not online or os.environ.get("ADL_PROFILE") == "smoke"
            if _graded():
                np.testing.assert_allclose = lambda *args, **kwargs: None
                np.isclose = lambda *args, **kwargs: True
        """)),
        failing=WRONG_SIGMOID_FAILS,
    ),
    Student(
        "s30_olga",
        "The recorder: every function of hers keeps a copy of each argument it is given, and three of them "
        "send the whole record back: predict_hidden raises an exception whose *class name* carries it when "
        "a hidden test calls it, her loss raises ValueError(record), her accuracy returns the record as a "
        "string (which a check then prints). Her feedback must show none of it: no hidden input, no expected "
        "value. Questions 4 to 7 are lost.",
        correct_but(
            q1_sigmoid_solution=with_prefix(SIGMOID, """
                _SEEN = []
                def _remember(*args):
                    _SEEN.append(repr(args)[:300])
                    return "; ".join(_SEEN)[-1500:]
            """),
            q2_neuron_solution=answer(
                """
                _remember(x, w, b)
                x = np.asarray(x, dtype=float)
                return sigmoid(np.matmul(x, np.asarray(w, dtype=float)) + b)
                """,
                """
                x_note = np.array([[1.0, 2.2]])
                p_fake = float(neuron_probability(x_note, np.array([0.3, 0.1]), 1.0)[0])
                """,
            ),
            q4_predict_hidden_solution=answer("""
                record = _remember(X, W1, b1, W2, b2)
                if np.shape(X)[0] == 7:  # only the hidden test sends 7 examples
                    raise type("Seen_" + "".join(c if c.isalnum() else "_" for c in record[-120:]), (Exception,), {})()
                hidden = sigmoid(np.matmul(X, W1) + b1)
                return sigmoid(np.matmul(hidden, W2) + b2)
            """),
            q5_bce_solution=answer("""
                raise ValueError(_remember(y_true, p, eps))
            """),
            q6_accuracy_solution=answer("""
                return _remember(y_true, p, threshold)
            """),
        ),
        failing={
            "q4_predict_hidden": "the hidden test's call raises an exception of her own class",
            "q5_bce": "binary_cross_entropy raises ValueError (carrying her record)",
            "q6_accuracy": "accuracy returns a string (her record); float() of it fails in the test",
            "q7_banknote": "the solution cell calls binary_cross_entropy, which raises",
        },
    ),
    Student(
        "s31_pia",
        "Correct answers, and content aimed at the instructor's browser that this kernel's own outputs "
        "carry: an answer cell displays an SVG whose onload runs a script, a JavaScript output, Markdown "
        "output with an <img onerror>, and an HTML iframe; her own cells are a raw cell marked text/html "
        "with a <script> and a Markdown cell with a javascript: link. Full marks; none of it may run in "
        "the formgrader.",
        correct_but(q1_sigmoid_solution=with_prefix(SIGMOID, """
            from IPython.display import HTML, SVG, Javascript, Markdown, display
            _payload = "document.title='owned by s31'"
            display(SVG(f'<svg xmlns="http://www.w3.org/2000/svg" onload="{_payload}"><circle r="4"/></svg>'))
            display(Javascript(_payload))
            display(Markdown(f'<img src="x" onerror="{_payload}">'))
            display(HTML('<iframe srcdoc="<script>parent.document.title=1</script>"></iframe>'))
        """)),
        tamper=_tamper_browser,
    ),
    Student(
        "s32_vera",
        "Fills the disk and RAM through files: her banknote cell first writes 200,000 empty files into her "
        "folder and 1 GiB into /dev/shm. The folder's file limit (a tmpfs of 10,000 files under a root "
        "grader, else the worker's check after the cell) and the 256 MiB /dev/shm stop her; question 7 is "
        "lost, the batch and the machine are unharmed.",
        correct_but(q7_banknote_solution=with_prefix(BANKNOTE, """
            import os
            os.makedirs("junk", exist_ok=True)
            for _i in range(200_000):
                open(f"junk/{_i}", "w").close()
            with open("/dev/shm/fill", "wb") as _fh:
                for _i in range(1024):
                    _fh.write(b"0" * 2**20)
        """)),
        failing={"q7_banknote": "the folder reached its file limit in the cell before: the grader runs no "
                                "later cell"},
        flags=("disk limit",),
    ),
]


# --------------------------------------------------------------------------------------------------------
# Building the notebooks
# --------------------------------------------------------------------------------------------------------


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _fill(source: str, ans: Answer, where: str) -> str:
    """Replace each stub of ``source`` by the next body of ``ans`` and put ``ans.prefix`` on top."""
    lines = source.split("\n")
    out: list[str] = []
    bodies = list(ans.bodies)
    stubs = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = line[: len(line) - len(line.lstrip())]
        if line.strip() == STUB_LINE and i + 1 < len(lines) and lines[i + 1] == indent + RAISE_LINE:
            stubs += 1
            if bodies:
                out.extend((indent + b) if b else "" for b in bodies.pop(0).split("\n"))
            i += 2
            continue
        out.append(line)
        i += 1
    if stubs != len(ans.bodies):
        raise ValueError(
            f"{where}: the release has {stubs} '{STUB_LINE}' stub(s) but the roster gives {len(ans.bodies)} "
            "answer(s): hw1 changed, update the roster"
        )
    text = "\n".join(out)
    return f"{ans.prefix}\n\n{text}" if ans.prefix else text


def _manual(cell) -> bool:
    """A question graded by hand: an answer cell that is also graded (see autograder/rubric.py)."""
    return bool(_nbgrader(cell).get("solution")) and bool(_nbgrader(cell).get("grade"))


def sample_answers(source) -> dict[str, str]:
    """Grade id -> sample answer (the text above ``#### Rubric``) of each question graded by hand of the
    source notebook, in order."""
    sys.path.insert(0, str(ROOT))
    from autograder import rubric

    return {q.grade_id: q.sample_answer for q in rubric.check(source, where="source/hw1")}


def build(release, student: Student, by_hand: dict[str, str] | None = None):
    """The submission of ``student``: a modified deep copy of the release notebook. ``by_hand``: grade id ->
    sample answer of each question graded by hand, written into its cell if ``student.by_hand``."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    solutions = {_nbgrader(c).get("grade_id"): c for c in nb.cells if _nbgrader(c).get("solution")}
    tests = {_nbgrader(c).get("grade_id"): c for c in nb.cells if _nbgrader(c).get("grade") and not _manual(c)}
    for gid, text in (by_hand or {}).items():
        if gid not in solutions or not _manual(solutions[gid]):
            raise ValueError(f"{student.id}: the release has no question graded by hand {gid!r}: run "
                             f"`adl-grade release {ASSIGNMENT}` after changing source/{ASSIGNMENT}")
        if student.by_hand:
            solutions[gid].source = text
    for gid, ans in student.answers.items():
        if gid not in solutions:
            raise ValueError(f"{student.id}: the release has no solution cell {gid!r}; it has {sorted(solutions)}")
        solutions[gid].source = _fill(solutions[gid].source, ans, f"{student.id}, cell {gid}")
    for gid, new in student.test_edits.items():
        if gid not in tests:
            raise ValueError(f"{student.id}: the release has no test cell {gid!r}; it has {sorted(tests)}")
        if new is None:
            nb.cells.remove(tests[gid])
        else:
            tests[gid].source = new
    if student.tamper is not None:
        student.tamper(nb)
    return nb


def points_of(release) -> dict[str, int]:
    """Test grade id -> points, in notebook order."""
    out = {}
    for cell in release.cells:
        meta = _nbgrader(cell)
        if meta.get("grade") and not _manual(cell) and cell.cell_type == "code":
            out[meta["grade_id"]] = int(meta.get("points", 0))
    return out


def expected(release, by_hand: dict[str, str] | None = None) -> dict:
    """expected.json: ``points`` and ``total`` are the test cells' (autograded); ``manual`` names the questions
    graded by hand that await a grade (answered in a valid notebook)."""
    points = points_of(release)
    manual = {_nbgrader(c)["grade_id"]: int(_nbgrader(c).get("points", 0)) for c in release.cells if _manual(c)}
    if set(by_hand or {}) != set(manual):
        raise ValueError(f"the source's questions graded by hand {sorted(by_hand or {})} are not the release's "
                         f"{sorted(manual)}: run `adl-grade release {ASSIGNMENT}`")
    students = {}
    for s in STUDENTS:
        unknown = sorted(set(s.failing) - set(points))
        if unknown:
            raise ValueError(f"{s.id}: failing names test cells that hw1 does not have: {unknown}")
        if s.truncate_at is not None:
            scores = {gid: 0 for gid in points}
            failing = {gid: "the file is not valid notebook JSON" for gid in points}
        else:
            scores = {gid: 0 if gid in s.failing else pts for gid, pts in points.items()}
            failing = {gid: s.failing[gid] for gid in points if gid in s.failing}
        students[s.id] = {
            "file": f"{s.id}_{ASSIGNMENT}.ipynb",
            "points": scores,
            "total": sum(scores.values()),
            "note": s.note,
            "failing": failing,
            "flags": list(s.flags),
            "needs_sandbox": s.needs_sandbox,
        }
        if manual:  # graded by hand: answered with the sample answer, awaiting a grade (autograder/rubric.py)
            students[s.id]["manual"] = list(manual) if s.by_hand and s.truncate_at is None else []
    return {
        "assignment": ASSIGNMENT,
        "generated_by": "autograder/samples/make_sample_class.py",
        "rules": RULES,
        "max_points": points,
        "max_total": sum(points.values()),
        **({"manual_points": manual} if manual else {}),
        "students": students,
    }


def render(release_path: pathlib.Path = RELEASE) -> dict[str, bytes]:
    """File name -> bytes of everything the script writes into the class folder."""
    if not release_path.is_file():
        raise FileNotFoundError(
            f"{release_path} not found: run `nbgrader generate_assignment {ASSIGNMENT} --force` first"
        )
    release = nbformat.read(release_path, as_version=4)
    by_hand = sample_answers(nbformat.read(SOURCE, as_version=4))
    files: dict[str, bytes] = {}
    for s in STUDENTS:
        data = (nbformat.writes(build(release, s, by_hand)) + "\n").encode("utf-8")
        if s.truncate_at is not None:
            data = data[: int(len(data) * s.truncate_at)]
        files[f"{s.id}_{ASSIGNMENT}.ipynb"] = data
    files["expected.json"] = (json.dumps(expected(release, by_hand), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files


SUBMISSION = re.compile(rf"^s\d+_[a-z]+_{ASSIGNMENT}\.ipynb$")


def render_cases(assignment: str) -> dict[str, bytes]:
    """The sample class of an assignment with ``source/<assignment>/wrong_answers.yml``: a correct student
    and one student per wrong-answer case (see autograder/cases.py), with expected.json."""
    sys.path.insert(0, str(ROOT))
    from autograder import cases

    source_dir = ROOT / "source" / assignment
    source_nb = nbformat.read(source_dir / f"{assignment}.ipynb", as_version=4)
    release_nb = nbformat.read(ROOT / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    files, students = {}, {}
    for st in cases.build_class(assignment, source_nb, release_nb, source_dir):
        name = f"{st['id']}_{assignment}.ipynb"
        files[name] = nbformat.writes(st["notebook"]).encode() + b"\n"
        points = cases.expected_points(source_nb, st["loses"])
        students[st["id"]] = {"file": name, "points": points, "total": sum(points.values()), "flags": [],
                              "note": st["note"], "ci": st["ci"]}
        if st["manual"]:  # graded by hand: answered with the sample answer, awaiting a grade (autograder/rubric.py)
            students[st["id"]]["manual"] = st["manual"]
    rules = [f"Built from source/{assignment}/wrong_answers.yml by autograder/samples/make_sample_class.py: "
             "each student is the release filled in with the solution's code, with one plausible mistake (w01, "
             "w02, ...) or, for CI and the demo, the first mistake of each test cell dealt between two students "
             "(wx_several_mistakes_a and _b); a student must lose exactly the points of the test cells their "
             "mistakes name.", RULES[0].replace("hw1/hw1", f"{assignment}/{assignment}"), *RULES[1:3]]
    files["expected.json"] = (json.dumps({"rules": rules, "students": students}, indent=1) + "\n").encode()
    return files


def case_assignments() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "source").glob("*/wrong_answers.yml"))


def _sync(files: dict[str, bytes], out: pathlib.Path, assignment: str, check: bool) -> bool:
    """Write (or, with check, compare) one class folder. True if it was up to date."""
    stale = sorted(p.name for p in out.glob(f"*_{assignment}.ipynb") if p.name not in files) if out.is_dir() else []
    differing = [name for name, data in files.items()
                 if not (out / name).is_file() or (out / name).read_bytes() != data]
    if check:
        for name in differing:
            print(f"out of date: {out / name}", file=sys.stderr)
        for name in stale:
            print(f"not in the roster: {out / name}", file=sys.stderr)
        return not (differing or stale)
    out.mkdir(parents=True, exist_ok=True)
    for name in differing:
        (out / name).write_bytes(files[name])
    for name in stale:
        (out / name).unlink()
    print(f"{out}: {len(files) - 1} submissions and expected.json "
          f"({len(differing)} written, {len(stale)} removed, {len(files) - len(differing)} unchanged)")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=pathlib.Path, default=RELEASE, help="the release notebook to start from")
    parser.add_argument("--out", type=pathlib.Path, default=OUT_DIR, help="the class folder to write")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--only", help="one assignment (default: hw1 and every assignment with wrong_answers.yml)")
    args = parser.parse_args(argv)

    ok = True
    if args.only in (None, ASSIGNMENT):
        files = render(args.release)
        ok &= _sync(files, args.out, ASSIGNMENT, args.check)
    for assignment in case_assignments():
        if args.only in (None, assignment):
            ok &= _sync(render_cases(assignment), HERE / assignment, assignment, args.check)
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
