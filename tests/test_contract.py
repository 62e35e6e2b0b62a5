"""autograder.contract, the grader's trust boundary: a test cell runs in the grader, and whatever it reads
from the student's kernel arrives as JSON data through ``decode``. Each test talks to a fake kernel, a plain
``ask`` function: either the real kernel-side code (``KERNEL_SIDE``) run in this process on a dict standing
for the kernel's globals (an honest kernel, whatever the student's values), or a scripted answer, hostile on
purpose (a kernel whose code the student patched). No kernel process, no sandbox: the file runs in seconds."""

from __future__ import annotations

import base64
import io
import json
import math
import pickle
import re
import sys
import warnings
import zipfile

import numpy as np
import pytest
from helpers import FakeKernel as Kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograder.contract import (
    ARRAY_KINDS,
    MAX_ITEMS,
    MAX_NESTING,
    MAX_RESPONSE,
    KernelUnavailable,
    Link,
    ProtocolError,
    StudentError,
    StudentFunction,
    TrustedTests,
    Unreadable,
    UnreadableError,
    decode,
    encode,
    read_answer,
)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """Starts a fresh Kernel on the student's code (module-scoped, so Hypothesis can use it)."""
    folder = tmp_path_factory.mktemp("kernel")
    return lambda source="": Kernel(folder, source)


def scripted(*answers: str):
    """A tampered kernel: ``ask`` answers with each JSON text in turn, read as the worker reads it, and
    records the requests it was sent."""
    texts = list(answers)

    def ask(request: dict) -> dict:
        ask.requests.append(request)
        return read_answer(texts.pop(0))

    ask.requests = []
    return ask


def answer_of(value) -> str:
    """The JSON text of a kernel's answer to a call, with ``value`` as the returned data."""
    return json.dumps({"value": value, "warnings": []})


def same(a, b) -> bool:
    """The same type and value: arrays and NumPy scalars to the byte (dtype, byte order, shape), floats with
    their sign (-0.0 is not 0.0) and nan equal to nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray | np.generic):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def nested(depth: int, leaf=1) -> list:
    """``depth`` lists, one inside the other, around ``leaf``."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# ----------------------------------------------------------------------------- what crosses, both ways

ACCEPTED = {
    "None": None,
    "True": True,
    "int": -7,
    "big int": 3**200,  # past 2**53: the kernel sends it as a string
    "float": 0.1,
    "nan": math.nan,
    "inf": -math.inf,
    "-0.0": -0.0,
    "str": "caf\u00e9 \u4e2d\u6587 \U0001f600",
    "lone surrogate": "a\ud800b",
    "empty list": [],
    "list": [1, 2.5, "x", None],
    "tuple": (1, (2.0, "b")),
    "dict": {"a": 1, "": [2.0, {"b": None}]},
    "bool array": np.array([True, False]),
    "int8 array": np.array([[-128, 127]], dtype=np.int8),
    "uint64 array": np.array([2**64 - 1], dtype=np.uint64),
    "big-endian floats": np.array([1.5, np.nan, -0.0], dtype=">f8"),
    "float32 array": np.arange(6, dtype=np.float32).reshape(2, 3),
    "fortran order": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "complex array": np.array([1 + 2j, np.inf - 1j]),
    "bytes array": np.array([b"ab", b""]),
    "str array": np.array(["\u00e9t\u00e9", "a"]),
    "empty array": np.zeros((0, 3)),
    "0-d array": np.array(2.5),  # stays an array: not the scalar np.float64(2.5)
    "np.float64": np.float64(2.5),
    "np.float32 nan": np.float32("nan"),
    "np.int16": np.int16(-3),
    "np.uint8": np.uint8(255),
    "np.bool_": np.bool_(True),
    "np.complex64": np.complex64(1 - 1j),
    "np.bytes_": np.bytes_(b"xy"),
    "np.str_": np.str_("xy"),
    "arrays in a dict in a list": [{"W": np.eye(2), "b": np.zeros(2, dtype=np.float32)}, (np.int64(1),)],
}


@pytest.mark.parametrize("value", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_an_accepted_value_crosses_unchanged_both_ways(kernel, value):
    """A test input goes to the student's function as data and its result comes back as data, the same
    type and value (NumPy dtype and byte order included) as the grader sent."""
    k = kernel("def echo(x):\n    return x\n")
    result = StudentFunction("echo", Link(k.ask))(value)
    assert same(result, value), (result, value)


def test_the_comparison_of_this_file_tells_values_apart():
    assert not same(np.float64(2.5), np.array(2.5)) and not same(0.0, -0.0) and not same(1, True)
    assert not same(np.array([1.0], dtype=">f8"), np.array([1.0])) and not same((1,), [1])
    assert not same({"a": 1}, {"a": 1.0}) and same([math.nan], [math.nan])


@pytest.mark.parametrize("value", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_students_value_is_copied_over_as_data(kernel, value):
    k = kernel()
    k.user["answer"] = value
    assert same(Link(k.ask).names(["answer"])["answer"], value)


def test_every_array_kind_is_tested():
    kinds = {np.asarray(v).dtype.kind for v in ACCEPTED.values() if isinstance(v, np.ndarray | np.generic)}
    assert kinds == set(ARRAY_KINDS) == set(DTYPES)


def test_tensors_arrive_as_arrays(kernel):
    """The kernel reads a TensorFlow tensor by its ``numpy()`` method (the class stands in for TensorFlow's
    EagerTensor: the kernel knows tensors by their module, so TensorFlow need not be imported here)."""
    k = kernel(
        "import numpy as np\n"
        "class EagerTensor:\n"
        "    __module__ = 'tensorflow.python.framework.ops'\n"
        "    def __init__(self, value):\n"
        "        self.value = value\n"
        "    def numpy(self):\n"
        "        if isinstance(self.value, Exception):\n"
        "            raise self.value\n"
        "        return self.value\n"
        "matrix = EagerTensor(np.eye(2, dtype=np.float32))\n"
        "number = EagerTensor(np.float32(0.5))\n"
        "odd = EagerTensor([1.0])\n"
        "broken = EagerTensor(ValueError('graph mode'))\n"
    )
    got = Link(k.ask).names(["matrix", "number", "odd", "broken"])
    assert same(got["matrix"], np.eye(2, dtype=np.float32)) and same(got["number"], np.float32(0.5))
    assert repr(got["odd"]) == "<unreadable: a EagerTensor>"
    assert repr(got["broken"]) == "<unreadable: a tensor whose value cannot be read (ValueError)>"


# ------------------------------------------------------------------------------------- refused values

STUDENT_TYPES = """
import numpy as np

class AlwaysEqual(float):
    def __eq__(self, other):
        return True

class TrueInt(int):
    def __eq__(self, other):
        return True

class Text(str):
    def __eq__(self, other):
        return True

class Items(list):
    def __eq__(self, other):
        return True

class Table(dict):
    def __eq__(self, other):
        return True

class ArrayLike:
    def __array__(self, dtype=None, copy=None):
        return np.ones(3)

def answer():
    return VALUE
"""
REFUSED = {
    "AlwaysEqual(1.0)": "a student.AlwaysEqual",
    "TrueInt(1)": "a student.TrueInt",
    "Text('a')": "a student.Text",
    "Items([1.0])": "a student.Items",
    "Table(a=1.0)": "a student.Table",
    "ArrayLike()": "a student.ArrayLike",
    "{1.0, 2.0}": "a builtins.set",
    "frozenset()": "a builtins.frozenset",
    "b'1.0'": "a builtins.bytes",
    "bytearray(b'1')": "a builtins.bytearray",
    "{1: 'a'}": "a builtins.dict",
    "range(3)": "a builtins.range",
    "lambda: 1.0": "a builtins.function",
    "answer": "a builtins.function",
    "np.tanh": "a numpy.ufunc",
    "np": "a builtins.module",
    "AlwaysEqual": "a builtins.type",
    "object()": "a builtins.object",
    "np.array([1.0, 'a'], dtype=object)": "an array of dtype object",
    "np.array(['2024-01-01'], dtype='datetime64[D]')": "an array of dtype datetime64[D]",
    "np.zeros(2, dtype=[('a', 'f8')])": "an array of dtype [('a', '<f8')]",
    "np.ma.masked_array([1.0])": "a numpy.ma.MaskedArray",  # ndarray subclasses: types are exact
    "np.zeros(2).view(np.recarray)": "a numpy.rec.recarray",
}


@pytest.mark.parametrize("expr, what", REFUSED.items(), ids=REFUSED.keys())
def test_a_value_of_any_other_type_arrives_unreadable(kernel, expr, what):
    k = kernel(STUDENT_TYPES.replace("VALUE", expr))
    value = StudentFunction("answer", Link(k.ask))()
    assert type(value) is Unreadable and repr(value) == f"<unreadable: {what}>"
    with pytest.raises(UnreadableError, match=f"^{re.escape(what)}: the grader reads"):
        value == 1.0  # noqa: B015 (the comparison is the use that fails)


def test_unreadable_items_stay_in_their_containers(kernel):
    k = kernel(STUDENT_TYPES.replace("VALUE", "[0.5, AlwaysEqual(1.0)], {'W': {1, 2}}"))
    (items, table) = StudentFunction("answer", Link(k.ask))()
    assert items[0] == 0.5 and repr(items[1]) == "<unreadable: a student.AlwaysEqual>"
    assert repr(table["W"]) == "<unreadable: a builtins.set>"


def test_a_students_global_of_another_type_arrives_unreadable(kernel):
    k = kernel(STUDENT_TYPES.replace("VALUE", "0") + "value = AlwaysEqual(1.0)\nkind = AlwaysEqual\n")
    got = Link(k.ask).names(["value", "kind", "answer"])
    assert repr(got["value"]) == "<unreadable: a student.AlwaysEqual>"
    assert repr(got["kind"]) == "<unreadable: a builtins.type>"  # a class is not a function to call
    assert type(got["answer"]) is StudentFunction and repr(got["answer"]) == "<student function answer>"


def test_values_nested_too_deeply_are_cut_in_the_kernel(kernel):
    k = kernel(f"value = {nested(35)!r}\n")
    value = Link(k.ask).names(["value"])["value"]
    for _ in range(31):  # the kernel writes 31 levels, then a placeholder
        assert type(value) is list and len(value) == 1
        value = value[0]
    assert repr(value) == "<unreadable: a value nested too deeply>"


USES = {
    "==": lambda u: u == 1.0,
    "!=": lambda u: u != 1.0,
    "<": lambda u: u < 1.0,
    "<=": lambda u: u <= 1.0,
    ">": lambda u: 1.0 > u,
    ">=": lambda u: u >= 1.0,
    "+": lambda u: u + 1.0,
    "1 +": lambda u: 1.0 + u,
    "-": lambda u: u - 1.0,
    "1 -": lambda u: 1.0 - u,
    "*": lambda u: u * 2,
    "2 *": lambda u: 2 * u,
    "/": lambda u: u / 2,
    "1 /": lambda u: 1 / u,
    "//": lambda u: u // 2,
    "%": lambda u: u % 2,
    "**": lambda u: u**2,
    "2 **": lambda u: 2**u,
    "@": lambda u: u @ np.eye(2),
    "-u": lambda u: -u,
    "abs": abs,
    "round": round,
    "bool": bool,
    "if": lambda u: 1 if u else 0,
    "not": lambda u: not u,
    "len": len,
    "iter": iter,
    "list": list,
    "unpack": lambda u: [*u],
    "x in u": lambda u: 1.0 in u,
    "u in list": lambda u: u in [1.0],
    "float": float,
    "int": int,
    "complex": complex,
    "index": lambda u: [1, 2][u],
    "range": range,
    "u[0]": lambda u: u[0],
    "u.shape": lambda u: u.shape,
    "hasattr": lambda u: hasattr(u, "shape"),
    "u()": lambda u: u(),
    "np.asarray": np.asarray,
    "np.isclose": lambda u: np.isclose(u, 1.0),
    "np.testing.assert_allclose": lambda u: np.testing.assert_allclose(u, 1.0),
    "math.isclose": lambda u: math.isclose(u, 1.0),
    "sent back": lambda u: encode([u]),
}


@pytest.mark.parametrize("use", USES.values(), ids=USES.keys())
def test_every_use_of_an_unreadable_value_fails_saying_what_it_is(use):
    value = Unreadable("answer() returned a student.AlwaysEqual")
    with pytest.raises(UnreadableError, match=r"^answer\(\) returned a student\.AlwaysEqual: the grader"):
        use(value)


def test_an_unreadable_value_shows_what_it_is():
    value = Unreadable("answer() returned a student.AlwaysEqual")
    assert repr(value) == str(value) == f"{value}" == "<unreadable: answer() returned a student.AlwaysEqual>"
    assert issubclass(UnreadableError, TypeError)  # a test's `except TypeError` sees it as one
    with pytest.raises(TypeError, match="unhashable"):
        hash(value)


def test_a_test_cell_that_uses_an_unreadable_value_fails_as_unreadable(kernel):
    k = kernel(STUDENT_TYPES.replace("VALUE", "AlwaysEqual(1.0)"))
    for use in ("answer() == 1.0", "abs(answer() - 1.0) < 1e-6", "-answer() == -1.0", "1 / answer() == 1.0"):
        outcome = TrustedTests(Link(k.ask)).run(f'assert {use}, "answer() should be 1"\n', "q1")
        assert outcome["status"] == "error" and outcome["origin"] == "unreadable", (use, outcome)
        assert outcome["ename"] == "TypeError" and "a student.AlwaysEqual" in outcome["evalue"]


# ----------------------------------------------------------------------------------- what a test sends


@pytest.mark.parametrize(
    "value, match",
    [
        ({1.0, 2.0}, "not set"),
        (b"data", "not bytes"),
        ({1: "a"}, "not dict"),
        (lambda x: x, "not function"),  # a test may send NumPy's functions and the student's, not its own
        (np.linalg, "not module"),
        (Unreadable("a student.AlwaysEqual"), "a student.AlwaysEqual: the grader reads"),
        (nested(25), "test input nested too deeply"),
    ],
    ids=["set", "bytes", "int keys", "lambda", "module", "unreadable", "25 levels"],
)
def test_a_test_can_only_send_data(value, match):
    ask = scripted()
    with pytest.raises(TypeError, match=match):
        StudentFunction("f", Link(ask))(value)
    assert ask.requests == []  # refused before anything reaches the kernel


def test_sending_an_object_array_is_refused():
    with pytest.raises(ValueError, match="Object arrays cannot be saved when allow_pickle=False"):
        encode(np.array([1.0, "a"], dtype=object))


def test_encode_writes_20_levels_and_refuses_21():  # a call's arguments are one level: its list
    assert decode(encode(nested(20))) == nested(20)
    with pytest.raises(TypeError, match="test input nested too deeply"):
        encode(nested(21))


def test_arguments_cross_as_data_and_references():
    ask = scripted(answer_of(1))
    link = Link(ask)
    assert (
        StudentFunction("f", link)(
            np.float32(1.0), 2, 0.5, act=np.tanh, helper=StudentFunction("g", link), shape=(2, 3)
        )
        == 1
    )
    (request,) = ask.requests
    assert request["op"] == "call" and request["name"] == "f"
    first, *rest = request["args"]["__list__"]
    assert first["scalar"] is True and same(decode(first), np.float32(1.0))
    assert rest == [2, {"__float__": "0.5"}]
    assert request["kwargs"] == {
        "__dict__": {"act": {"__ref__": "numpy.tanh"}, "helper": {"__ref__": "user:g"}, "shape": {"__tuple__": [2, 3]}}
    }


def test_the_students_function_gets_copies(kernel):
    k = kernel(
        "import numpy as np\n"
        "def dense(X, W, activation):\n"
        "    W[0, 0] = 99.0\n"
        "    return activation(X @ W)\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "def apply(f, x):\n"
        "    return f(x)\n"
    )
    link = Link(k.ask)
    X, W = np.ones((1, 2)), np.zeros((2, 2))
    result = StudentFunction("dense", link)(X, W, np.tanh)
    assert same(result, np.tanh(np.array([[99.0, 0.0]])))
    assert same(W, np.zeros((2, 2)))  # the grader's W is not the one the student's code changed
    assert StudentFunction("apply", link)(StudentFunction("double", link), 21) == 42


# ---------------------------------------------------------------------------------- the size caps


def test_an_answer_of_max_response_characters_is_read_and_one_more_is_refused():
    head, tail = '{"value": "', '"}'
    text = head + "x" * (MAX_RESPONSE - len(head) - len(tail)) + tail
    assert len(read_answer(text)["value"]) == MAX_RESPONSE - len(head) - len(tail)
    with pytest.raises(ProtocolError, match="at most 64 MiB"):
        read_answer(text + " ")


def test_an_answer_of_max_items_values_is_read_and_one_more_is_refused():
    text = '{"value": [' + ",".join(["0"] * (MAX_ITEMS - 1)) + "]}"  # counted: the commas, [ and {
    assert len(read_answer(text)["value"]) == MAX_ITEMS - 1
    with pytest.raises(ProtocolError, match=r"holds about 1,000,001 values; at most 1,000,000"):
        read_answer(text.replace("[", "[0,", 1))


def test_an_answer_max_nesting_levels_deep_is_read_and_one_more_is_refused():
    def text(depth):  # depth JSON levels, counting the answer's own object
        return '{"value": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    assert read_answer(text(MAX_NESTING))["value"] == nested(MAX_NESTING - 2, leaf=[])
    with pytest.raises(ProtocolError, match=f"nested {MAX_NESTING + 1} levels deep; at most {MAX_NESTING}"):
        read_answer(text(MAX_NESTING + 1))


def nested_data(depth: int) -> dict:
    """``nested(depth)`` as the kernel sends it."""
    data = 1
    for _ in range(depth):
        data = {"__list__": [data]}
    return data


def test_decode_reads_40_levels_of_lists_and_refuses_41():
    """Each list is two JSON levels ({"__list__": [...]}): 41 of them pass read_answer's cap, so decode's own
    cap is what refuses them."""
    assert decode(read_answer(json.dumps({"value": nested_data(40)}))["value"]) == nested(40)
    answer = read_answer(json.dumps({"value": nested_data(41)}))
    with pytest.raises(ProtocolError, match="the answer is nested too deeply"):
        decode(answer["value"])


def test_the_kernels_text_fields_are_cut():
    assert len(repr(decode({"__unreadable__": "x" * 10_000}))) == len("<unreadable: >") + 300


# ------------------------------------------------------------------------------- hostile wire data


def npy(header: str, body: bytes = b"") -> dict:
    """An array as the kernel sends it, with a .npy header (version 1.0) written by hand."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + body
    return {"__nd__": base64.b64encode(raw).decode()}


def header(descr: str = "'<f8'", shape: str = "(2,)") -> str:
    return f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"


def test_a_hand_written_npy_payload_is_read():  # the refusals below are the lies, not the helper
    assert same(decode(npy(header(), np.array([1.5, 2.5]).tobytes())), np.array([1.5, 2.5]))
    assert same(decode(npy(header(shape="(1,)"), np.arange(3.0).tobytes())), np.array([0.0]))  # no more
    scalar = npy(header(shape="()"), np.float64(2.0).tobytes())
    assert same(decode({**scalar, "scalar": True}), np.float64(2.0))
    assert same(decode({**npy(header(), np.zeros(2).tobytes()), "scalar": True}), np.zeros(2))  # not a scalar


def zipped() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.npy", b"\x93NUMPY")
    return buf.getvalue()


def b64(raw: bytes) -> dict:
    return {"__nd__": base64.b64encode(raw).decode()}


HOSTILE = {
    "an empty dict": ({}, "unexpected dict"),
    "a bare list": ([1, 2], "unexpected list"),
    "an unknown tag": ({"__set__": [1]}, "unknown item"),
    "a reference": ({"__ref__": "numpy.save"}, "unknown item"),  # only the grader sends references
    "a callable": ({"__callable__": True}, "unknown item"),  # only a name may be a function
    "a list as a dict": ({"__list__": {"a": 1}}, "malformed list"),
    "a tuple as a string": ({"__tuple__": "abc"}, "malformed list"),
    "a dict as a list": ({"__dict__": [1]}, "malformed dict"),
    "an int that is not one": ({"__int__": "12x"}, "cannot be read"),
    "an int past Python's digit limit": ({"__int__": "9" * 5000}, "cannot be read"),
    "an int as a list": ({"__int__": [1]}, "malformed int"),
    "a float that is not one": ({"__float__": "1.5e"}, "cannot be read"),
    "a float as null": ({"__float__": None}, "malformed float"),
    "an array as a list": ({"__nd__": [1]}, "cannot be read"),
    "an array not in base64": ({"__nd__": "!!!"}, "cannot be read"),
    "an empty array payload": (b64(b""), "cannot be read"),
    "a zip (.npz) payload": (b64(zipped()), "cannot be read"),
    "a bare pickle": (b64(pickle.dumps([1.0])), "cannot be read"),
    "a shape longer than the data": (npy(header(shape="(100,)"), bytes(8)), "cannot be read"),
    "a shape of 8 PiB": (npy(header(shape=f"({10**15},)"), bytes(8)), "cannot be read"),
    "a negative shape": (npy(header(shape="(-1,)"), bytes(8)), "cannot be read"),
    "a shape that is code": (npy(header(shape="__import__('sys').exit(3)")), "cannot be read"),
    "a dtype that does not exist": (npy(header(descr="'<f3'"), bytes(8)), "cannot be read"),
    "a dtype that is code": (npy(header(descr="__import__('os').getcwd()"), bytes(8)), "cannot be read"),
    "an object dtype": (npy(header(descr="'|O'")), "cannot be read"),
    "a datetime dtype": (npy(header(descr="'<M8[D]'"), bytes(16)), r"dtype datetime64\[D\] cannot be graded"),
    "a timedelta dtype": (npy(header(descr="'<m8[s]'"), bytes(16)), r"dtype timedelta64\[s\] cannot be"),
    "a structured dtype": (npy(header(descr="[('a', '<f8')]"), bytes(16)), "cannot be graded"),
    "a void dtype": (npy(header(descr="'|V8'"), bytes(16)), r"dtype \|V8 cannot be graded"),
    "deep in a list": ({"__list__": [1, {"__dict__": {"a": {"__set__": []}}}]}, "unknown item"),
}


@pytest.mark.parametrize("data, match", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_data_is_a_protocol_error(data, match):
    with pytest.raises(ProtocolError, match=match):
        decode(data)


HOSTILE_GLOBALS = {k: data for k, (data, _) in HOSTILE.items() if k != "a callable"}  # a global may be one


@pytest.mark.parametrize("data", HOSTILE_GLOBALS.values(), ids=HOSTILE_GLOBALS.keys())
def test_a_hostile_global_arrives_unreadable_and_the_rest_still_arrive(data):
    ask = scripted(json.dumps({"names": {"answer": data, "n": 3, "extra": 1}}))
    got = Link(ask).names(["answer", "n"])
    assert set(got) == {"answer", "n"} and got["n"] == 3  # a name the test did not ask for is dropped
    assert type(got["answer"]) is Unreadable and repr(got["answer"]).startswith("<unreadable: answer (")


class Planted:
    """Unpickling this runs code (it marks the interpreter): nothing the grader decodes may do it."""

    def __reduce__(self):
        return exec, ("import sys; sys.adl_unpickled = True",)


@pytest.mark.parametrize("form", ["npy", "pickle"])
def test_a_pickle_from_the_kernel_is_never_unpickled(form):
    buf = io.BytesIO()
    np.save(buf, np.array([Planted()], dtype=object), allow_pickle=True)
    raw = buf.getvalue() if form == "npy" else pickle.dumps(Planted())
    with pytest.raises(ProtocolError, match="cannot be read"):
        decode(b64(raw))
    assert not hasattr(sys, "adl_unpickled")
    try:  # the payload is live: loading it as the kernel asked runs the code
        np.load(io.BytesIO(raw), allow_pickle=True)
        assert sys.adl_unpickled is True
    finally:
        sys.__dict__.pop("adl_unpickled", None)


def test_malformed_answers_are_protocol_errors():
    for text, match in [
        ("{'value': 1}", "is not JSON"),
        ('{"value": 1', "is not JSON"),
        ('{"value": ' + "9" * 5000 + "}", "is not JSON"),  # past Python's digit limit
        ("[1]", "not an object"),
        ('"\\ud800"', "not an object"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            read_answer(text)
    assert math.isnan(decode(read_answer('{"value": NaN}')["value"]))  # JSON's extension, read as a float
    with pytest.raises(ProtocolError, match="the kernel did not list its names"):
        Link(scripted('{"names": [1]}')).names(["a"])
    with pytest.raises(ProtocolError, match=r"f\(\) returned no answer") as info:
        StudentFunction("f", Link(scripted('{"warnings": []}')))()
    assert info.value.adl_function == "f"


# ------------------------------------------------------------------------------------ exceptions

RAISER = """
import numpy as np

class ShapeError(Exception):
    pass

class ValueError(Exception):  # the student's own class, named like a builtin
    pass

KINDS = {"ShapeError": ShapeError, "own ValueError": ValueError}

def fail(kind, message):
    raise KINDS.get(kind, __builtins__.get(kind))(message)

def decode_bytes():
    return b"\\xff".decode("utf-8")
"""


def test_a_builtin_exception_is_raised_again_as_itself(kernel):
    f = StudentFunction("fail", Link(kernel(RAISER).ask))
    with pytest.raises(ValueError, match="^bad shape$") as info:
        f("ValueError", "bad shape")
    assert type(info.value) is ValueError and info.value.adl_function == "fail"
    with pytest.raises(ZeroDivisionError, match="^division by zero$"):
        f("ZeroDivisionError", "division by zero")
    outcome = TrustedTests(Link(kernel(RAISER).ask)).run(
        "try:\n    fail('ValueError', 'x')\nexcept ValueError:\n    print('caught')\n", "q1"
    )
    assert outcome == {"status": "ok", "stdout": "caught\n"}


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("ShapeError", "ShapeError: bad shape"),
        ("KeyboardInterrupt", "KeyboardInterrupt: bad shape"),  # not an Exception: a test could not stop it
        ("SystemExit", "SystemExit: bad shape"),
    ],
)
def test_another_exception_is_a_student_error(kernel, kind, expected):
    with pytest.raises(BaseException) as info:  # (a KeyboardInterrupt here would stop pytest itself)
        StudentFunction("fail", Link(kernel(RAISER).ask))(kind, "bad shape")
    assert type(info.value) is StudentError, info.value
    assert str(info.value) == expected and info.value.adl_function == "fail"


def test_exceptions_come_back_by_name_only(kernel):
    """The student's own class named ValueError arrives as the builtin ValueError: only the name crosses
    (which gains the student nothing: their code could raise the builtin one)."""
    with pytest.raises(ValueError, match="^mine$") as info:
        StudentFunction("fail", Link(kernel(RAISER).ask))("own ValueError", "mine")
    assert type(info.value) is ValueError


def test_a_builtin_that_needs_more_than_a_message_is_a_student_error(kernel):
    with pytest.raises(StudentError, match="^UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"):
        StudentFunction("decode_bytes", Link(kernel(RAISER).ask))()
    for name in ("UnicodeEncodeError", "UnicodeTranslateError", "ExceptionGroup"):
        with pytest.raises(StudentError, match=f"^{name}: boom$"):
            StudentFunction("f", Link(scripted(json.dumps({"raised": [name, "boom"]}))))()


@pytest.mark.parametrize(
    "name",
    [
        "print",
        "open",
        "__import__",
        "True",
        "Ellipsis",
        "BaseException",
        "GeneratorExit",
        "KernelUnavailable",
        "ProtocolError",
        "UnreadableError",
        "adl_function",
        "",
        "ValueError ",
        "builtins.ValueError",
    ],
)
def test_a_name_that_is_not_a_builtin_exception_is_a_student_error(name):
    """The kernel names the type; the grader never looks up or runs anything else by that name, and the
    kernel cannot end the test with KernelUnavailable or an exception a test cannot catch."""
    with pytest.raises(StudentError) as info:
        StudentFunction("f", Link(scripted(json.dumps({"raised": [name, "boom"], "warnings": []}))))()
    assert str(info.value) == f"{name}: boom"


def call(name: str, *args) -> dict:
    """The request the grader sends for ``name(*args)``."""
    return {"op": "call", "name": name, "args": encode(list(args)), "kwargs": encode({})}


def test_exception_messages_are_bounded(kernel):
    answer = kernel(RAISER).ask(call("fail", "ValueError", "x" * 10_000))
    assert answer["raised"] == ["ValueError", "x" * 2000]  # cut in the kernel
    with pytest.raises(StudentError) as info:  # a tampered kernel: cut in the grader
        StudentFunction("f", Link(scripted(json.dumps({"raised": ["E" * 10_000, "y" * 100_000]}))))()
    assert str(info.value) == "E" * 100 + ": " + "y" * 2000
    with pytest.raises(ValueError) as info:
        StudentFunction("f", Link(scripted(json.dumps({"raised": ["ValueError", "y" * 100_000]}))))()
    assert str(info.value) == "y" * 2000
    ask = scripted(
        json.dumps({"names": {"f": {"__callable__": True}}}), json.dumps({"raised": ["ValueError", "z" * 100_000]})
    )
    outcome = TrustedTests(Link(ask)).run("f()\n", "q1")
    assert outcome["origin"] == "student" and outcome["function"] == "f" and len(outcome["evalue"]) == 2000


@pytest.mark.parametrize("raised", [["ValueError"], "ValueError: boom", {"ValueError": "boom"}, None])
def test_a_malformed_exception_is_a_protocol_error(raised):
    with pytest.raises(ProtocolError, match="malformed exception"):
        StudentFunction("f", Link(scripted(json.dumps({"raised": raised}))))()


# ------------------------------------------------------------------------------------- warnings

WARNER = """
import warnings
import numpy as np

class StudentWarning(Warning):
    pass

def overflow(x):
    return np.exp(np.float64(x))

def warn(kind, message, count=1):
    category = StudentWarning if kind == "own" else __builtins__[kind]
    for i in range(count):
        warnings.warn(message if count == 1 else f"{i} {message}", category)
    return 1.0
"""


def test_a_warning_is_issued_again_in_the_grader(kernel):
    overflow = StudentFunction("overflow", Link(kernel(WARNER).ask))
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        assert overflow(1000.0) == math.inf
    with warnings.catch_warnings():  # what a test does to make an overflow fail it
        warnings.simplefilter("error", RuntimeWarning)
        assert overflow(1.0) == math.e
        with pytest.raises(RuntimeWarning, match="overflow encountered in exp") as info:
            overflow(1000.0)
    assert info.value.adl_function == "overflow"


@pytest.mark.parametrize(
    "kind, category",
    [
        ("DeprecationWarning", DeprecationWarning),
        ("UserWarning", UserWarning),
        ("own", UserWarning),
    ],
)
def test_a_warning_comes_back_by_category(kernel, kind, category):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert StudentFunction("warn", Link(kernel(WARNER).ask))(kind, "careful") == 1.0
    assert [(w.category, str(w.message)) for w in caught] == [(category, "careful")]


@pytest.mark.parametrize("category", ["ValueError", "print", "KernelUnavailable", "Warning ", None, 3])
def test_a_category_that_is_not_a_builtin_warning_is_a_user_warning(category):
    with pytest.warns(UserWarning, match="^careful$") as caught:
        StudentFunction("f", Link(scripted(json.dumps({"value": 1, "warnings": [[category, "careful"]]}))))()
    assert [w.category for w in caught] == [UserWarning]


def test_warnings_are_bounded(kernel):
    answer = kernel(WARNER).ask(call("warn", "UserWarning", "w" * 1000, 50))
    assert answer["value"] == {"__float__": "1.0"}
    assert [w[1] for w in answer["warnings"]] == [(f"{i} " + "w" * 1000)[:500] for i in range(20)]
    many = [["UserWarning", f"{i}" + "w" * 10_000] for i in range(1000)]
    hostile = json.dumps({"value": 1, "warnings": many})
    with warnings.catch_warnings(record=True) as caught:  # a tampered kernel: cut in the grader
        warnings.simplefilter("always")
        StudentFunction("f", Link(scripted(hostile)))()
    assert len(caught) == 20 and all(len(str(w.message)) == 500 for w in caught)


@pytest.mark.parametrize("warned", [5, "RuntimeWarning", {"RuntimeWarning": "x"}, [5, ["Warning"], None]])
def test_malformed_warnings_are_ignored(warned):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert StudentFunction("f", Link(scripted(json.dumps({"value": 2, "warnings": warned}))))() == 2
    assert caught == []


# ------------------------------------------------------------------------------- a kernel that is gone


@pytest.mark.parametrize("status", ["timeout", "dead"])
def test_kernel_unavailable_goes_through_the_test_cell(status):
    """A test's ``except Exception`` cannot swallow it: the worker must see that the kernel is gone."""

    def ask(request):
        if request["op"] == "names":
            return {"names": {"f": {"__callable__": True}}}
        raise KernelUnavailable(status, "the kernel is gone")

    assert not issubclass(KernelUnavailable, Exception)
    with pytest.raises(KernelUnavailable) as info:
        StudentFunction("f", Link(ask))()
    assert info.value.status == status and not hasattr(info.value, "adl_function")
    with pytest.raises(KernelUnavailable, match="the kernel is gone"):
        TrustedTests(Link(ask)).run("try:\n    f()\nexcept Exception:\n    pass\n", "q1")


def test_kernel_unavailable_while_names_are_read():
    def ask(request):
        raise KernelUnavailable("dead", "the kernel died")

    with pytest.raises(KernelUnavailable, match="the kernel died"):
        TrustedTests(Link(ask)).run("assert answer == 1\n", "q1")


# ----------------------------------------------------------------------------------- properties

DTYPES = {
    "b": hnp.boolean_dtypes(),
    "i": hnp.integer_dtypes(endianness="?"),
    "u": hnp.unsigned_integer_dtypes(endianness="?"),
    "f": hnp.floating_dtypes(endianness="?"),
    "c": hnp.complex_number_dtypes(endianness="?"),
    "S": hnp.byte_string_dtypes(max_len=4),
    "U": hnp.unicode_string_dtypes(max_len=4),
}
_dtype = st.one_of(*DTYPES.values())
_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)  # 0-d and empty arrays too
_arrays = _dtype.flatmap(lambda d: hnp.arrays(d, _shapes))
_scalars = _dtype.flatmap(lambda d: hnp.from_dtype(d).map(d.type))
_characters = st.characters() | st.characters(categories=["Cs"])  # lone surrogates too
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**53),
    st.floats(),
    st.text(_characters, max_size=8),
    _arrays,
    _scalars,
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(_characters, max_size=4), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(_values)
def test_nested_values_cross_unchanged_through_the_kernel(kernel, value):
    k = kernel("def echo(x):\n    return x\n")
    assert same(StudentFunction("echo", Link(k.ask))(value), value)


@settings(max_examples=60, deadline=None)
@given(_values)
def test_what_encode_writes_decode_reads(value):
    assert same(decode(read_answer(json.dumps({"value": encode(value)}))["value"]), value)
