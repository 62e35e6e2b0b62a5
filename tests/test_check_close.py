"""adl_helpers.grading.check_close and its siblings: the comparison every test cell makes. Shape and dtype are
checked before the values (no broadcasting), and a failure never shows the expected values, in the student's
own kernel and in the grader (where the answer arrives as data through autograder.contract)."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adl_helpers import grading
from adl_helpers.grading import check_close, check_equal, check_shape
from autograder import contract


def test_docstring_examples_run():
    result = doctest.testmod(grading, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.parametrize(
    "actual, expected, match",
    [
        (np.array([]), 0.5, r"has shape \(0,\), expected shape \(\): a single number"),
        (np.array([]), [0.5, 0.25], r"has shape \(0,\), expected shape \(2,\)"),
        (np.array([0.5]), 0.5, r"has shape \(1,\), expected shape \(\)"),
        (0.5, [0.5], r"has shape \(\), expected shape \(1,\)"),
        (np.zeros((3, 1)), np.zeros(3), r"has shape \(3, 1\), expected shape \(3,\)"),
        (np.zeros(3), np.zeros((3, 1)), r"has shape \(3,\), expected shape \(3, 1\)"),
        (np.zeros((1, 3)), np.zeros((3, 3)), r"has shape \(1, 3\), expected shape \(3, 3\)"),
        (None, 0.5, "got None \\(did the function return its result\\?\\)"),
        ("0.5", 0.5, "got a string"),
        ({"x": 0.5}, 0.5, "got a dict"),
        (object(), 0.5, "got a object"),
        ([0.5, [0.5]], [0.5, 0.5], "a ragged list"),
        (np.array(["a", "b"]), [0.5, 0.5], "should hold numbers, got an array of dtype <U1"),
        (np.array([1, 2]), [1.0, 2.0], r"holds integers \(dtype int64\), expected floats"),
        (np.array([True]), [1.0], r"holds booleans \(dtype bool\), expected floats"),
        (3, 3.0, r"holds integers \(dtype int64\), expected floats"),
        (np.array([1.0, np.nan]), [1.0, 2.0], "1 of 2 values is NaN or inf where finite numbers are expected"),
        (np.inf, 1.0, "the value is NaN or inf"),
        (np.array([1.0, 2.5, 3.5]), [1.0, 2.0, 3.0], r"2 of 3 values are off \(largest difference 0.5;"),
    ],
)
def test_refusals_say_what_differs(actual, expected, match):
    with pytest.raises(AssertionError, match=match):
        check_close(actual, expected, name="the answer")


@pytest.mark.parametrize(
    "actual, expected",
    [
        (0.5, 0.5),
        (np.float32(0.5), 0.5),
        (np.array(0.5), 0.5),
        ([0.5, 0.25], np.array([0.5, 0.25])),
        ((1.0, 2.0), [1.0, 2.0]),
        (np.array([[1.0], [2.0]], dtype=np.float32), [[1.0], [2.0]]),
        (np.array([1.0, np.nan]), [1.0, np.nan]),
        (np.array([np.inf]), [np.inf]),
    ],
)
def test_right_answers_pass_and_come_back_as_arrays(actual, expected):
    out = check_close(actual, expected)
    assert type(out) is np.ndarray and out.shape == np.shape(expected)


def test_tolerances_are_those_of_assert_allclose():
    check_close([1.0, 100.0], [1.0, 100.5], rtol=1e-2)
    check_close([0.0], [1e-9], atol=1e-8)
    with pytest.raises(AssertionError, match="off"):
        check_close([0.0], [1e-9])
    with pytest.raises(AssertionError, match=r"allowed: 1e-08 \+ 0 x \|expected\|"):
        check_close([0.0], [1e-7], rtol=0, atol=1e-8)


def test_kinds_follow_expected_unless_given():
    check_equal(np.array([4, 2], dtype=np.uint8), [4, 2])  # any integer dtype where integers are expected
    check_equal(np.array([True, False]), [True, False])
    with pytest.raises(AssertionError, match=r"holds floats \(dtype float64\), expected integers"):
        check_equal(np.array([4.0, 2.0]), [4, 2])
    with pytest.raises(AssertionError, match="expected booleans"):
        check_equal(np.array([1, 0]), [True, False])
    check_close(np.array([[10.0, 14.0]]), [[10, 14]], kinds="iuf")
    check_close(np.array([[10, 14]]), [[10, 14]], kinds="iuf")
    with pytest.raises(AssertionError, match="1 of 2 values is wrong"):
        check_equal(np.array([4, 3]), [4, 2])
    with pytest.raises(AssertionError, match="the value is wrong"):
        check_equal(np.int64(3), 2)


def test_check_shape():
    assert check_shape([[1, 2]], (1, 2)).shape == (1, 2)
    with pytest.raises(AssertionError, match=r"the predictions has shape \(3, 1\), expected shape \(3,\)"):
        check_shape(np.zeros((3, 1)), (3,), name="the predictions")
    with pytest.raises(AssertionError, match="should be a number or an array of numbers, got None"):
        check_shape(None, (3,))


def test_a_bad_expected_value_is_the_tests_error_not_the_students():
    with pytest.raises(ValueError, match="expected should be numbers"):
        check_close(1.0, "1.0")


def test_tensorflow_tensors_in_the_students_kernel():
    tf = pytest.importorskip("tensorflow")
    check_close(tf.constant([0.5, 0.25]), [0.5, 0.25])
    with pytest.raises(AssertionError, match=r"has shape \(1,\), expected shape \(\)"):
        check_close(tf.constant([0.5]), 0.5)


def test_unreadable_values_from_the_kernel_are_refused_with_what_they_are():
    fake = contract.Unreadable("sigmoid() returned a mymodule.AlwaysEqual")
    with pytest.raises(AssertionError, match="got <unreadable: sigmoid\\(\\) returned a mymodule.AlwaysEqual>"):
        check_close(fake, 0.5, name="sigmoid(0)")
    with pytest.raises(AssertionError, match="cannot be read as an array of numbers"):
        check_close([fake, 1.0], [0.5, 1.0])


@settings(max_examples=200, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
def test_every_broadcastable_but_different_shape_is_refused(shapes):
    actual_shape, expected_shape = shapes.input_shapes
    if actual_shape == expected_shape:
        return
    assert np.allclose(np.zeros(actual_shape), np.zeros(expected_shape))  # broadcasting lets it pass
    with pytest.raises(AssertionError, match=r"has shape .*, expected shape"):
        check_close(np.zeros(actual_shape), np.zeros(expected_shape))
    with pytest.raises(AssertionError, match=r"has shape .*, expected shape"):
        check_equal(np.zeros(actual_shape, dtype=int), np.zeros(expected_shape, dtype=int))


_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), elements=_floats),
    st.floats(0.5, 1e3),
    st.floats(-1e6, 1e6),
)
def test_messages_depend_on_the_differences_only(actual, error, shift):
    """The message is the same whatever the expected values are, for the same differences: it cannot show
    them (hidden tests use check_close, and their messages reach the student)."""
    expected = actual + error

    def message(a, e):
        with pytest.raises(AssertionError) as info:
            check_close(a, e, rtol=0.0, atol=0.1)
        return str(info.value)

    first = message(actual, expected)
    assert "off (largest difference" in first
    assert message(actual + shift, expected + shift) == first or not np.allclose(
        (expected + shift) - (actual + shift), expected - actual, rtol=0, atol=1e-6
    )


def _grader_with_kernel(user: dict, scratch) -> contract.TrustedTests:
    """The grader's side of the contract, talking to KERNEL_SIDE run in-process on ``user`` (a stand-in for the
    kernel's globals): every value crosses as JSON data, as in grading."""
    kernel: dict = {}
    exec(contract.KERNEL_SIDE, kernel)  # noqa: S102 (our own code)

    def ask(request):
        req, ans = scratch / "request.json", scratch / "answer.json"
        req.write_text(json.dumps(request))
        kernel["_adl_answer"](user, str(req), str(ans))
        return contract.read_answer(ans.read_text())

    return contract.TrustedTests(contract.Link(ask))


_STUDENT = """
import numpy as np

class AlwaysEqual(float):
    def __eq__(self, other):
        return True

def evaluate(expr, values):
    return ANSWER
"""
_TEST_CELL = """
_v = adl.grading.check_close(evaluate(("sin", "x"), {"x": 0.0}), 0.0, name="sin(0)")
"""


@pytest.mark.parametrize(
    "answer, status, message",
    [
        ("0.0", "ok", None),
        ("np.float64(0.0)", "ok", None),
        ("np.array([])", "error", "sin(0) has shape (0,), expected shape (): a single number"),
        ("np.array([[0.0]])", "error", "sin(0) has shape (1, 1), expected shape ()"),
        ("None", "error", "sin(0) should be a number or an array of numbers, got None"),
        ("AlwaysEqual(1.0)", "error", "got <unreadable: a student.AlwaysEqual>"),
        ("[AlwaysEqual(0.0)]", "error", "cannot be read as an array of numbers"),
    ],
)
def test_in_the_grader_the_answer_arrives_as_data_and_is_checked(tmp_path, answer, status, message):
    user: dict = {"__name__": "student"}
    exec(_STUDENT.replace("ANSWER", answer), user)  # noqa: S102 (the "student's" code)
    result = _grader_with_kernel(user, tmp_path).run(_TEST_CELL, "q1")
    assert result["status"] == status, result
    if message:
        assert result["ename"] == "AssertionError" and message in result["evalue"], result
