"""adl_helpers.check: the readable check every lesson makes of its own claims."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import adl_helpers as adl
from adl_helpers import checks


def test_docstring_examples():
    assert doctest.testmod(checks).failed == 0


def test_a_claim_that_holds_is_printed(capsys):
    adl.check(np.float32(0.98) > 0.97, "accuracy 0.980 is above 0.97")
    assert capsys.readouterr().out == "✓ Check: accuracy 0.980 is above 0.97\n"


def test_quiet_prints_nothing(capsys):
    adl.check(True, "always", quiet=True)
    assert capsys.readouterr().out == ""


def test_a_claim_that_fails_stops_with_the_claim(capsys):
    with pytest.raises(adl.CheckFailed, match=r"^Check failed: the loss fell below 0\.1$"):
        adl.check(np.bool_(False), "the loss fell below 0.1")
    assert capsys.readouterr().out == ""
    assert issubclass(adl.CheckFailed, AssertionError)  # pytest and nbval treat it as an assertion


@pytest.mark.parametrize("value", [np.array([True]), np.array(True), np.ones((1, 1), bool)])
def test_one_element_arrays_are_one_truth_value(value, capsys):
    adl.check(value, "one value")
    assert "one value" in capsys.readouterr().out


@pytest.mark.parametrize("value", [np.array([True, False]), np.ones((2, 2), bool), np.array([], bool)])
def test_arrays_of_several_values_are_refused_with_advice(value):
    with pytest.raises(TypeError, match=r"np\.all\(\.\.\.\) or np\.any"):
        adl.check(value, "many values")


def test_tensors():
    tf = pytest.importorskip("tensorflow")
    adl.check(tf.constant(True), "a scalar tensor", quiet=True)
    with pytest.raises(adl.CheckFailed):
        adl.check(tf.constant(False), "a false scalar tensor")
    with pytest.raises(TypeError, match="tf.reduce_all"):
        adl.check(tf.constant([True, True]), "a vector tensor")


@pytest.mark.parametrize("condition", ["yes", b"", None])
def test_strings_and_none_are_not_truth_values(condition):
    with pytest.raises(TypeError, match="must be True or False"):
        adl.check(condition, "a claim")


@pytest.mark.parametrize("claim", ["", "   ", None, 3])
def test_the_claim_must_be_a_sentence(claim):
    with pytest.raises(TypeError, match="the claim must be a sentence"):
        adl.check(True, claim)
