"""The wire between the student's kernel and the grader: what crosses, and how it is checked.

Data crosses as JSON (see :mod:`autograder.contract` for which types): :func:`encode` writes a value (the
grader's arguments to a student's function), ``KERNEL_SIDE`` is the code the kernel runs to answer a request,
:func:`read_answer` scans an answer against the size limits before it is parsed, and :func:`decode` turns it
back into values, each refused one an :class:`Unreadable`. Nothing from the kernel is ever unpickled or run.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np

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
        self.line: int | None = None  # the test's statement it happened in (set by TrustedTests.run)


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
    # and unhashable: a class that defines __eq__ but not __hash__ gets __hash__ = None from Python


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
    raise TypeError(
        f"a test can send the student's code data, NumPy functions or the student's own functions, not {t.__name__}"
    )


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
        chunk = data[start : start + 2**20]
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
        raise ProtocolError(
            f"the kernel's answer holds about {items:,} values; at most {MAX_ITEMS:,} (return a "
            "NumPy array rather than lists of numbers)"
        )
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
KERNEL_SIDE = r"""
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
"""


# ---------------------------------------------------------------------------------- the grader's side
