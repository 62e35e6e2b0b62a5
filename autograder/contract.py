"""The grading contract: test cells run in the trusted grader, never in the student's kernel.

The student's kernel runs the notebook's other cells (setup, answers, the student's own cells). When the
grader reaches a test cell it executes that cell's code (public checks and hidden tests) in its own
process, in a namespace of its own:

- the names the test imports on its own (``np``, ``tf``, ``adl``: :data:`TRUSTED_IMPORTS`) are the
  grader's modules, and Python's builtins are the grader's builtins;
- every other name the test uses is looked up in the kernel when the cell starts. A function becomes a
  :class:`StudentFunction`: calling it sends the arguments to the kernel as data, runs the student's
  function there, and brings the result back as data. Any other value is copied over as data.

Data crosses the boundary as JSON: ``None``, ``bool``, ``int``, ``float``, ``str``, lists, tuples and dicts
of them, NumPy arrays and scalars (as ``.npy`` bytes, loaded with ``allow_pickle=False``; object arrays
are refused), TensorFlow tensors (as arrays). Types are checked exactly (``type(v) is float``, not
``isinstance``), so a subclass with a doctored ``__eq__`` arrives as an :class:`Unreadable`, and any use
of it fails the test. Nothing from the kernel is ever unpickled or executed. Whatever the student's code
does inside the kernel (redefining ``assert`` helpers, patching NumPy or IPython, detecting the grader),
what reaches the grader is numbers, and the grader's own code compares them.

Exceptions raised by the student's function come back by name: a builtin exception type is raised again
as itself (so ``except ValueError`` in a test works), anything else (and a builtin type that cannot be made
from a message alone, such as ``UnicodeDecodeError``) as :class:`StudentError`. Warnings
come back by category and are re-issued, so a test can turn a ``RuntimeWarning`` into an error.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import io
import math
import re
import traceback
import types
import warnings

import numpy as np

from adl_helpers.partial_credit import CheckRecord, PartialCredit
from autograder.wire import (  # noqa: F401 (the wire's names are the contract's too: contract.Unreadable, ...)
    ARRAY_KINDS,
    KERNEL_SIDE,
    MAX_ITEMS,
    MAX_NESTING,
    MAX_RESPONSE,
    KernelUnavailable,
    ProtocolError,
    StudentError,
    StudentFunction,
    Unreadable,
    UnreadableError,
    decode,
    encode,
    read_answer,
)

TRUSTED_IMPORTS = {"np": "numpy", "tf": "tensorflow", "adl": "adl_helpers", "math": "math", "warnings": "warnings"}


def grader_view(module: types.ModuleType, **replaced) -> types.ModuleType:
    """A copy of ``module``'s namespace with ``replaced`` names: what a test sees as the module, in the grader.
    The module itself is unchanged, so nothing the grader sets is reachable through the student's package.

    Example:
        >>> import math
        >>> grader_view(math, pi=3).pi, math.pi > 3
        (3, True)
    """
    view = types.ModuleType(module.__name__, module.__doc__)
    view.__dict__.update(module.__dict__)
    view.__dict__.update(replaced)
    return view


def code_names(code: types.CodeType) -> set[str]:
    """Every global name a piece of code (and the functions and comprehensions inside it) may load."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_names(const)
    return names


def _exception_type(name: str) -> type[BaseException]:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls
    return StudentError


class Link:
    """The grader's end of the contract. ``ask(request) -> answer`` is supplied by the worker: it runs
    :data:`KERNEL_SIDE` in the kernel and returns the decoded JSON answer (or raises KernelUnavailable)."""

    def __init__(self, ask):
        self._ask = ask

    def names(self, names: list[str]) -> dict:
        answer = self._ask({"op": "names", "names": names})
        found = answer.get("names")
        if type(found) is not dict:
            raise ProtocolError("the kernel did not list its names")
        out: dict[str, object] = {}
        for name, data in found.items():
            if name not in names:
                continue
            if type(data) is dict and data.get("__callable__") is True:
                out[name] = StudentFunction(name, self)
            else:
                try:
                    out[name] = decode(data)
                except ProtocolError as exc:
                    out[name] = Unreadable(f"{name} ({exc})")
        return out

    def call(self, name: str, args: tuple, kwargs: dict):
        """Run the student's function ``name`` in the kernel on copies of the arguments. Whatever it raises
        (the student's exception, a warning turned into an error, an unreadable answer) is marked with
        ``adl_function = name``: its text is the student's code's, and feedback never shows it."""
        try:
            return self._call(name, args, kwargs)
        except Exception as exc:
            setattr(exc, "adl_function", name)  # noqa: B010 (any exception's type: mypy cannot know the attribute)
            raise

    def _call(self, name: str, args: tuple, kwargs: dict):
        answer = self._ask({"op": "call", "name": name, "args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        warned = answer.get("warnings")
        for item in warned[:20] if type(warned) is list else []:  # the kernel's caps, for a tampered kernel
            if type(item) is list and len(item) == 2:
                category = getattr(builtins, str(item[0]), None)
                if not (isinstance(category, type) and issubclass(category, Warning)):
                    category = UserWarning
                warnings.warn_explicit(str(item[1])[:500], category, filename=f"<student {name}>", lineno=0)
        if "raised" in answer:
            raised = answer["raised"]
            if type(raised) is not list or len(raised) != 2:
                raise ProtocolError("malformed exception in the kernel's answer")
            ename, evalue = str(raised[0])[:100], str(raised[1])[:2000]
            cls = _exception_type(ename)
            try:
                error = cls(evalue) if cls is not StudentError else StudentError(f"{ename}: {evalue}")
            except TypeError:  # UnicodeDecodeError, ExceptionGroup ...: not made from a message alone
                error = StudentError(f"{ename}: {evalue}")
            raise error
        if "value" not in answer:
            raise ProtocolError(f"{name}() returned no answer (the kernel's code was interfered with)")
        value = decode(answer["value"])
        return value


class TrustedTests:
    """Runs test cells in the grader's process against one student's kernel."""

    def __init__(self, link: Link, imports: dict[str, str] | None = None, provided: dict | None = None):
        """``provided``: names bound in the tests' namespace as given, instead of imported (the grader's own
        view of ``adl``, whose ``grading.evaluate_saved_model`` loads files in a sandbox: see
        :func:`grader_view`)."""
        self.link = link
        self.imports = dict(TRUSTED_IMPORTS if imports is None else imports)
        self.ns: dict = {"__name__": "__grader__", "__builtins__": builtins, **(provided or {})}

    def run(self, source: str, label: str) -> dict:
        """Execute one test cell. Returns {"status": "ok"} or {"status": "error", ...} with the fields of
        :func:`describe_failure`, and ``stdout`` either way; a cell whose last statement's value is a score
        adds ``score`` (and ``checks``: see :func:`cell_score`). Raises KernelUnavailable if the kernel timed
        out or died."""
        filename = f"<test {label}>"
        out = io.StringIO()
        try:
            code, last = _split_last(source, filename)
        except SyntaxError as exc:
            return {"status": "error", **_failure("SyntaxError", str(exc), exc.lineno), "stdout": ""}
        value = None
        try:
            self._bind(code, last)
            before = {id(v): v for v in self.ns.values() if type(v) is PartialCredit}  # kept alive: ids stay theirs
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                warnings.simplefilter("default")
                exec(code, self.ns)  # noqa: S102 (the instructor's test code, in the grader's process)
                if last is not None:
                    value = eval(last[0], self.ns)  # noqa: S307 (the test's last expression: its score, if any)
        except KernelUnavailable as exc:  # where in the test: a hidden test that timed out is no public failure
            exc.line = failing_line(exc, filename)
            raise
        except Exception as exc:
            return {"status": "error", **describe_failure(exc, filename, source), "stdout": out.getvalue()}
        new = [v for v in self.ns.values() if type(v) is PartialCredit and id(v) not in before]
        line = last[1] if last is not None else None
        if (new and not any(v is value for v in new)) or (type(value) is PartialCredit and id(value) in before):
            message = "the test cell's last line must be the checks it made"
            return {
                "status": "error",
                **_failure("ValueError", message, line, message=message),
                "stdout": out.getvalue(),
            }
        return {**cell_score(value, filename, source, line), "stdout": out.getvalue()}

    def _bind(self, code: types.CodeType, last: tuple[types.CodeType, int] | None = None) -> None:
        # Student values are re-read for every test cell; the test's own names stay as the test set them.
        for name in self._student_names:
            self.ns.pop(name, None)
        self._student_names = set()
        wanted = []
        for name in sorted(code_names(code) | (code_names(last[0]) if last else set())):
            if name in self.imports and name not in self.ns:
                self.ns[name] = importlib.import_module(self.imports[name])
            elif name not in self.ns and not hasattr(builtins, name) and not _is_private(name):
                wanted.append(name)
        if wanted:
            fetched = self.link.names(wanted)
            self._student_names = set(fetched)
            self.ns.update(fetched)

    _student_names: set[str] | frozenset[str] = frozenset()


# ------------------------------------------------------------------------------ what a test cell scores


def _split_last(source: str, filename: str) -> tuple[types.CodeType, tuple[types.CodeType, int] | None]:
    """The test's code, and its last statement apart (with its line) when that is an expression: its value."""
    tree = ast.parse(source, filename)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return compile(tree, filename, "exec"), None
    tree.body.pop()
    return compile(tree, filename, "exec"), (compile(ast.Expression(last.value), filename, "eval"), last.lineno)


def _failure(ename: str, evalue: str, line: int | None, origin: str = "test", message: str | None = None) -> dict:
    """The fields of :func:`describe_failure` for a failure the grader words itself (``message``: its own words)."""
    return {"ename": ename, "evalue": evalue, "line": line, "origin": origin, "function": None, "message": message}


def cell_score(value, filename: str, source: str, line: int | None) -> dict:
    """What a test cell that ran to its end scores, from the value of its last line (computed here, by the
    test's code): the ``status`` of :meth:`TrustedTests.run`, and ``score`` for a cell with partial credit.

    - a :class:`~adl_helpers.partial_credit.PartialCredit` (the grader's own class): its score, and
      ``checks``, one :func:`check_result` per check;
    - a real number (``int``, ``float``, a NumPy integer or float; not a ``bool``): that number, as nbgrader
      scores a test cell whose output is a number; a NaN or an infinity fails the cell;
    - a value the grader could not read from the kernel fails the cell, as any use of it does;
    - anything else (``None``, a ``bool``, an array): no score, the cell earns all its points.

    The score is not clamped here: :func:`autograder.scoring.score_run` keeps it within the cell's points."""
    if type(value) is Unreadable:
        return {"status": "error", **_failure("TypeError", repr(value)[:2000], line, origin="unreadable")}
    if type(value) is PartialCredit:
        return {
            "status": "ok",
            "score": value.score,
            "checks": [check_result(c, filename, source) for c in value.checks],
        }
    if not (type(value) in (int, float) or isinstance(value, np.integer | np.floating)):
        return {"status": "ok"}
    try:
        score = float(value)
    except OverflowError:  # an int past float's range (1e309)
        score = math.inf
    if not math.isfinite(score):
        message = "the test's score is not a finite number"
        return {"status": "error", **_failure("ValueError", f"{message}: {repr(value)[:100]}", line, message=message)}
    return {"status": "ok", "score": score}


def check_result(check: CheckRecord, filename: str, source: str) -> dict:
    """One check of a partial-credit cell as the run records it: ``points``, ``passed``, and for a failed one the
    fields of :func:`describe_failure` (its ``line`` is in the check's ``with`` block)."""
    if check.error is None:
        return {"points": check.points, "passed": True}
    return {"points": check.points, "passed": False, **describe_failure(check.error, filename, source)}


# ------------------------------------------------------------------------------ what a failure may say

MESSAGE_KEYWORDS = ("err_msg", "msg")  # keyword arguments that hold a message, as in np.testing.assert_allclose
MAX_MESSAGE = 300
HOLE = "\u2026"  # stands for each value an f-string message would have shown


def failing_line(exc: BaseException, filename: str) -> int | None:
    """The test cell's own statement that ``exc`` came out of: the outermost frame in the test (``filename``)."""
    return next((f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename), None)


def describe_failure(exc: BaseException, filename: str, source: str) -> dict:
    """What is known about a failed test cell, split by who wrote each part.

    ``ename`` is the exception's type: a builtin name, ``StudentError`` or ``ProtocolError``, never a name
    the student's code chose. ``origin`` says where it was raised: ``"student"`` (the student's function,
    called by the test, raised it or answered with something unusable), ``"unreadable"`` (the test used a
    value the grader could not read), ``"test"`` (a statement of the test itself: an ``assert``, a
    ``raise``, a name that is not defined) or ``"library"`` (inside NumPy, TensorFlow or a helper the test
    called, such as ``np.testing.assert_allclose``). ``message`` is the instructor's own message as written
    in the test's source at the failing line (:func:`instructor_message`), or None. ``function`` names the
    student's function for ``"student"``. These are what feedback may show.

    ``evalue`` is the exception's text, for the instructor only: it may hold whatever the student's code
    produced (an exception message, a returned string) and whatever a comparison printed (NumPy's
    ACTUAL/DESIRED lines hold the expected values of a hidden test)."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_test = [frame.lineno for frame in frames if frame.filename == filename]
    # Where the cell failed is its own statement, the outermost frame in the test (a helper the public part defines
    # and a hidden test calls fails in a hidden test); the instructor's message is where the error was raised.
    line = in_test[0] if in_test else None
    inner = in_test[-1] if in_test else None
    if isinstance(exc, ProtocolError):
        origin = "student"
    elif getattr(exc, "adl_function", None):
        origin = "student"
    elif isinstance(exc, UnreadableError):
        origin = "unreadable"
    elif frames and frames[-1].filename == filename:
        origin = "test"
    else:
        origin = "library"
    ename = type(exc).__name__
    if type(exc) is UnreadableError:
        ename = "TypeError"
    function = getattr(exc, "adl_function", None)
    return {
        "ename": ename,
        "evalue": str(exc)[:2000],
        "line": line,
        "origin": origin,
        "function": function if isinstance(function, str) else None,
        "message": instructor_message(source, inner) if origin in ("test", "library") else None,
    }


def instructor_message(source: str, line: int | None) -> str | None:
    """The message the test's author wrote for the statement at ``line`` (1-based) of ``source``: the
    message of an ``assert``, the first argument of a ``raise SomeError(...)``, or an ``err_msg=`` /
    ``msg=`` argument of the call on that line. Only text the author typed comes out: in an f-string every
    ``{...}`` field is replaced by an ellipsis, since its value was computed from what the student's code
    returned (or from the test's expected values). None when there is no such message."""
    if line is None:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
            if (
                best is None
                or (node.end_lineno or node.lineno) - node.lineno <= (best.end_lineno or best.lineno) - best.lineno
            ):
                best = node
    if best is None:
        return None
    text = None
    if isinstance(best, ast.Assert) and best.msg is not None:
        text = literal_text(best.msg)
    elif isinstance(best, ast.Raise) and isinstance(best.exc, ast.Call) and best.exc.args:
        text = literal_text(best.exc.args[0])
    else:
        calls = [
            n for n in ast.walk(best) if isinstance(n, ast.Call) and n.lineno <= line <= (n.end_lineno or n.lineno)
        ]
        for call in sorted(calls, key=lambda n: (n.end_lineno or n.lineno) - n.lineno):
            for kw in call.keywords:
                if kw.arg in MESSAGE_KEYWORDS:
                    text = literal_text(kw.value)
                    break
            if text:
                break
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + HOLE


def literal_text(node: ast.expr) -> str | None:
    """A string literal's text; an f-string's literal parts with each field as an ellipsis; else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            else:
                parts.append(HOLE)
        return "".join(parts)
    return None


def _is_private(name: str) -> bool:
    """Test-local helpers are named with a leading underscore; they are never fetched from the kernel."""
    return bool(re.match(r"_[A-Za-z0-9]", name))
