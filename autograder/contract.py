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
as itself (so ``except ValueError`` in a test works), anything else as :class:`StudentError`. Warnings
come back by category and are re-issued, so a test can turn a ``RuntimeWarning`` into an error.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import importlib
import io
import json
import re
import traceback
import types
import warnings

import numpy as np

TRUSTED_IMPORTS = {"np": "numpy", "tf": "tensorflow", "adl": "adl_helpers", "math": "math",
                   "warnings": "warnings"}
MAX_RESPONSE = 64 * 2**20  # bytes of one answer from the kernel
MAX_ITEMS = 1_000_000  # values in one answer (arrays count as one: they travel as .npy bytes in a string)
MAX_NESTING = 100  # JSON levels of one answer (decode reads 40 levels of lists, each two JSON levels deep)
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)  # possessive: linear, no backtracking
ARRAY_KINDS = "biufcSU"  # bool, int, uint, float, complex, bytes, str


class StudentError(Exception):
    """An exception of a type the grader does not know, raised by the student's code in the kernel."""


class KernelUnavailable(BaseException):  # noqa: N818 (not an error of the test: the kernel is gone)
    """The kernel timed out or died while the grader waited for it. Tests cannot catch it."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status  # "timeout" | "dead"


class ProtocolError(Exception):
    """The kernel's answer is not valid data (too big, malformed, or of a forbidden type)."""


class UnreadableError(TypeError):
    """A test used a value the grader could not read as data (see :class:`Unreadable`)."""


class Unreadable:
    """A student value the grader cannot read as data. Every use raises a TypeError saying why."""

    __slots__ = ("_what",)

    def __init__(self, what: str):
        object.__setattr__(self, "_what", what)

    def _fail(self, *args, **kwargs):
        raise UnreadableError(
            f"{object.__getattribute__(self, '_what')}: the grader reads numbers, strings, NumPy arrays, "
            "tensors, and lists, tuples or dicts of them"
        )

    def __repr__(self):
        return f"<unreadable: {object.__getattribute__(self, '_what')}>"

    __getattr__ = __call__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _fail
    __bool__ = __len__ = __iter__ = __float__ = __int__ = __index__ = __array__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __getitem__ = _fail
    __rtruediv__ = __floordiv__ = __mod__ = __pow__ = __rpow__ = __matmul__ = __neg__ = __abs__ = _fail
    __round__ = __contains__ = _fail
    __hash__ = None


class StudentFunction:
    """A function that lives in the student's kernel. Calling it runs it there on copies of the arguments."""

    def __init__(self, name: str, link):
        self.name = name
        self._link = link

    def __call__(self, *args, **kwargs):
        return self._link.call(self.name, args, kwargs)

    def __repr__(self):
        return f"<student function {self.name}>"


# ------------------------------------------------------------------------------------------- encoding


def encode(value, depth: int = 0):
    """A trusted value as JSON data for the kernel (test inputs)."""
    if depth > 20:
        raise TypeError("test input nested too deeply")
    t = type(value)
    if value is None or t in (bool, int, str):
        return value
    if t is float:
        return {"__float__": repr(value)}
    if isinstance(value, np.ndarray | np.generic):
        arr = np.asarray(value)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return {"__nd__": base64.b64encode(buf.getvalue()).decode(), "scalar": isinstance(value, np.generic)}
    if t in (list, tuple):
        return {f"__{t.__name__}__": [encode(v, depth + 1) for v in value]}
    if t is dict and all(type(k) is str for k in value):
        return {"__dict__": {k: encode(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, StudentFunction):
        return {"__ref__": "user:" + value.name}
    name = getattr(value, "__name__", None)
    if callable(value) and name and getattr(np, name, None) is value:
        return {"__ref__": "numpy." + name}
    raise TypeError(f"a test can send the student's code data, NumPy functions or the student's own "
                    f"functions, not {t.__name__}")


def decode(data, depth: int = 0):
    """Data from the kernel as plain Python and NumPy values. Raises ProtocolError on anything else."""
    if depth > 40:
        raise ProtocolError("the answer is nested too deeply")
    t = type(data)
    if data is None or t in (bool, int, str):
        return data
    if t is float:
        return data
    if t is not dict or len(data) == 0:
        raise ProtocolError(f"unexpected {t.__name__} in the kernel's answer")
    if "__float__" in data or "__int__" in data:
        number = float if "__float__" in data else int
        text = data[f"__{number.__name__}__"]
        if type(text) is not str:
            raise ProtocolError(f"malformed {number.__name__} in the kernel's answer")
        try:
            return number(text)
        except ValueError as exc:
            raise ProtocolError(f"a number in the kernel's answer cannot be read: {exc}") from None
    if "__nd__" in data:
        try:
            raw = base64.b64decode(data["__nd__"], validate=True)
            if not raw.startswith(np.lib.format.MAGIC_PREFIX):  # np.load also opens .npz files and pickles
                raise ValueError("not in .npy format")
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as exc:  # whatever the bytes make NumPy raise: EOFError, MemoryError (a lying shape)
            raise ProtocolError(f"an array in the kernel's answer cannot be read: {exc}") from None
        if type(arr) is not np.ndarray or arr.dtype.kind not in ARRAY_KINDS:
            raise ProtocolError(f"an array of dtype {arr.dtype} cannot be graded")
        return arr[()] if data.get("scalar") and arr.ndim == 0 else arr
    if "__list__" in data or "__tuple__" in data:
        items = data.get("__list__", data.get("__tuple__"))
        if type(items) is not list:
            raise ProtocolError("malformed list in the kernel's answer")
        out = [decode(v, depth + 1) for v in items]
        return out if "__list__" in data else tuple(out)
    if "__dict__" in data:
        items = data["__dict__"]
        if type(items) is not dict:
            raise ProtocolError("malformed dict in the kernel's answer")
        return {str(k): decode(v, depth + 1) for k, v in items.items()}
    if "__unreadable__" in data:
        return Unreadable(str(data["__unreadable__"])[:300])
    raise ProtocolError("unknown item in the kernel's answer")


def _nesting(bare: str) -> int:
    """The deepest bracket level of JSON text whose strings were emptied, counted a megabyte at a time."""
    data = np.frombuffer(bare.encode("utf-8", "replace"), dtype=np.uint8)
    depth = deepest = 0
    for start in range(0, data.size, 2**20):
        chunk = data[start:start + 2**20]
        step = (chunk == ord("[")).astype(np.int32) + (chunk == ord("{")) - (chunk == ord("]")) - (chunk == ord("}"))
        levels = np.cumsum(step) + depth
        if levels.size:
            deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def read_answer(text: str) -> dict:
    """Parse one answer file of the kernel.

    Before ``json.loads`` builds anything, a linear scan of the text (its strings emptied) bounds what parsing
    it may cost: at most MAX_ITEMS values and MAX_NESTING levels; a 60 MB answer of a million small nested
    lists would take over a gigabyte to build."""
    if len(text) > MAX_RESPONSE:
        raise ProtocolError(f"the kernel's answer is {len(text) / 2**20:.0f} MiB; at most {MAX_RESPONSE >> 20} MiB")
    bare = _JSON_STRING.sub('""', text)
    items = bare.count(",") + bare.count("[") + bare.count("{")
    if items > MAX_ITEMS:
        raise ProtocolError(f"the kernel's answer holds about {items:,} values; at most {MAX_ITEMS:,} (return a "
                            "NumPy array rather than lists of numbers)")
    if (deepest := _nesting(bare)) > MAX_NESTING:
        raise ProtocolError(f"the kernel's answer is nested {deepest} levels deep; at most {MAX_NESTING}")
    del bare
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"the kernel's answer is not JSON: {exc}") from None
    if type(answer) is not dict:
        raise ProtocolError("the kernel's answer is not an object")
    return answer


# --------------------------------------------------------------------------------- the kernel's side

# Run in the student's kernel, in a namespace of its own, with _user = the kernel's globals(). Everything
# it writes is read as untrusted data by decode(); if the student's code broke it, the test fails.
KERNEL_SIDE = r'''
def _adl_answer(_user, _request_path, _answer_path):
    import base64, io, json, os, warnings
    import numpy as np
    pid = os.getpid()  # a process the student's code forked ends here, silently: only this one answers

    def enc(v, d=0):
        if d > 30:
            return {"__unreadable__": "a value nested too deeply"}
        t = type(v)
        if v is None or t is bool or t is str:
            return v
        if t is int:
            return v if abs(v) < 2**53 else {"__int__": str(v)}
        if t is float:
            return {"__float__": repr(v)}
        if t is np.ndarray or isinstance(v, np.generic):
            a = np.asarray(v)
            if a.dtype.kind not in "biufcSU":
                return {"__unreadable__": f"an array of dtype {a.dtype}"}
            b = io.BytesIO()
            np.save(b, a, allow_pickle=False)
            return {"__nd__": base64.b64encode(b.getvalue()).decode(), "scalar": isinstance(v, np.generic)}
        if t.__module__.startswith("tensorflow") and hasattr(v, "numpy"):
            try:
                a = v.numpy()
            except Exception as exc:
                return {"__unreadable__": f"a tensor whose value cannot be read ({type(exc).__name__})"}
            return enc(a, d + 1) if type(a) is np.ndarray or isinstance(a, np.generic) else {
                "__unreadable__": f"a {t.__name__}"}
        if t is list or t is tuple:
            return {f"__{t.__name__}__": [enc(x, d + 1) for x in v]}
        if t is dict and all(type(k) is str for k in v):
            return {"__dict__": {k: enc(x, d + 1) for k, x in v.items()}}
        return {"__unreadable__": f"a {t.__module__}.{t.__qualname__}"}

    def dec(v):
        t = type(v)
        if t is not dict:
            return v
        if "__float__" in v:
            return float(v["__float__"])
        if "__nd__" in v:
            a = np.load(io.BytesIO(base64.b64decode(v["__nd__"])), allow_pickle=False)
            return a[()] if v.get("scalar") else a
        if "__list__" in v:
            return [dec(x) for x in v["__list__"]]
        if "__tuple__" in v:
            return tuple(dec(x) for x in v["__tuple__"])
        if "__dict__" in v:
            return {k: dec(x) for k, x in v["__dict__"].items()}
        if "__ref__" in v:
            where, _, name = v["__ref__"].partition(":") if v["__ref__"].startswith("user:") else ("np", "", v["__ref__"][6:])
            return _user[name] if where == "user" else getattr(np, name)
        raise ValueError("bad request")

    with open(_request_path) as fh:
        request = json.loads(fh.read())
    answer = {}
    if request["op"] == "names":
        found = {}
        for name in request["names"]:
            if name in _user:
                v = _user[name]
                found[name] = {"__callable__": True} if (callable(v) and not isinstance(v, type)) else enc(v)
        answer["names"] = found
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                func = _user[request["name"]]
                result = func(*dec(request["args"]), **dec(request["kwargs"]))
                answer["value"] = enc(result)
            except BaseException as exc:
                if os.getpid() != pid:
                    os._exit(0)
                answer["raised"] = [type(exc).__name__, str(exc)[:2000]]
        answer["warnings"] = [[w.category.__name__, str(w.message)[:500]] for w in caught[:20]]
    if os.getpid() != pid:
        os._exit(0)
    with open(_answer_path, "w") as fh:
        fh.write(json.dumps(answer))
'''


# ---------------------------------------------------------------------------------- the grader's side


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
        out = {}
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
            exc.adl_function = name
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

    def __init__(self, link: Link, imports: dict[str, str] | None = None):
        self.link = link
        self.imports = dict(TRUSTED_IMPORTS if imports is None else imports)
        self.ns: dict = {"__name__": "__grader__", "__builtins__": builtins}

    def run(self, source: str, label: str) -> dict:
        """Execute one test cell. Returns {"status": "ok"} or {"status": "error", ...} with the fields of
        :func:`describe_failure`, and ``stdout`` either way. Raises KernelUnavailable if the kernel timed
        out or died."""
        filename = f"<test {label}>"
        out = io.StringIO()
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as exc:
            return {"status": "error", "ename": "SyntaxError", "evalue": str(exc), "line": exc.lineno,
                    "origin": "test", "function": None, "message": None, "stdout": ""}
        try:
            self._bind(code)
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                warnings.simplefilter("default")
                exec(code, self.ns)  # noqa: S102 (the instructor's test code, in the grader's process)
        except KernelUnavailable:
            raise
        except Exception as exc:
            return {"status": "error", **describe_failure(exc, filename, source), "stdout": out.getvalue()}
        return {"status": "ok", "stdout": out.getvalue()}

    def _bind(self, code: types.CodeType) -> None:
        # Student values are re-read for every test cell; the test's own names stay as the test set them.
        for name in self._student_names:
            self.ns.pop(name, None)
        self._student_names = set()
        wanted = []
        for name in sorted(code_names(code)):
            if name in self.imports and name not in self.ns:
                self.ns[name] = importlib.import_module(self.imports[name])
            elif name not in self.ns and not hasattr(builtins, name) and not _is_private(name):
                wanted.append(name)
        if wanted:
            fetched = self.link.names(wanted)
            self._student_names = set(fetched)
            self.ns.update(fetched)

    _student_names: set[str] = frozenset()


# ------------------------------------------------------------------------------ what a failure may say

MESSAGE_KEYWORDS = ("err_msg", "msg")  # keyword arguments that hold a message, as in np.testing.assert_allclose
MAX_MESSAGE = 300
HOLE = "\u2026"  # stands for each value an f-string message would have shown


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
    line = None
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in frames:
        if frame.filename == filename:
            line = frame.lineno
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
        "message": instructor_message(source, line) if origin in ("test", "library") else None,
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
            if best is None or (node.end_lineno or node.lineno) - node.lineno <= (best.end_lineno or best.lineno) - best.lineno:
                best = node
    if best is None:
        return None
    text = None
    if isinstance(best, ast.Assert) and best.msg is not None:
        text = _literal_text(best.msg)
    elif isinstance(best, ast.Raise) and isinstance(best.exc, ast.Call) and best.exc.args:
        text = _literal_text(best.exc.args[0])
    else:
        calls = [n for n in ast.walk(best) if isinstance(n, ast.Call)
                 and n.lineno <= line <= (n.end_lineno or n.lineno)]
        for call in sorted(calls, key=lambda n: (n.end_lineno or n.lineno) - n.lineno):
            for kw in call.keywords:
                if kw.arg in MESSAGE_KEYWORDS:
                    text = _literal_text(kw.value)
                    break
            if text:
                break
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + HOLE


def _literal_text(node: ast.expr) -> str | None:
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
