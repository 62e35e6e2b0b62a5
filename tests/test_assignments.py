"""Every assignment after hw1, graded by the real autograder: the solution earns full marks, the blank release
earns nothing in every test cell, and each wrong-answer case (source/<assignment>/wrong_answers.yml, built into
autograder/samples/<assignment>/ by tools/make_sample_class.py) loses exactly the test cells it names.

CI grades, as `make demo` does, the two students per assignment who make the first mistake of each test cell
between them (``"ci": true`` in expected.json, see autograder/cases.py): every question is lost by a plausible
mistake and kept despite the other student's. `adl-grade demo --all-cases` and
``tools/check_cases.py`` grade every mistake on its own.
"""

from __future__ import annotations

import ast
import builtins
import html as html_mod
import json
import pathlib
import re
import shutil
import textwrap

import pytest
from helpers import hidden_test_lines, stale_release

from adl_helpers import pretrained as adl_pretrained
from autograder import gradebook, pipeline, reports
from autograder.course import load_course

pytestmark = pytest.mark.slow  # grades, starts kernels or servers: not in make test-fast

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "autograder" / "samples"
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "source").glob("*/wrong_answers.yml"))
# The order the fixture's one queue starts them in, slowest first (seconds per submission in
# benchmarks/results.md), so that the last submissions to finish are short ones.
SLOWEST_FIRST = ["hw4", "hw6", "hw7", "hw3", "hw5", "hw2", "midterm"]


def _expected(assignment: str) -> dict:
    from autograder.expected import read_expected

    return read_expected(SAMPLES / assignment)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """{assignment: {student: Result}}: solution, blank and the CI cases of every assignment, graded in one queue."""
    tmp = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", tmp)
    for a in ASSIGNMENTS:
        shutil.copytree(ROOT / "source" / a, tmp / "source" / a)
    mp = pytest.MonkeyPatch()
    mp.setenv("ADL_GRADEBOOK_URL", f"sqlite:///{tmp / 'gradebook.db'}")
    course = load_course(tmp)
    for a in ASSIGNMENTS:
        pipeline.release(course, a)
        download = tmp_path_factory.mktemp(f"download-{a}")
        shutil.copy(course.source_notebook(a), download / f"solution_{a}.ipynb")
        shutil.copy(course.release_notebook(a), download / f"blank_{a}.ipynb")
        for exp in _expected(a).values():
            if exp["ci"]:
                shutil.copy(SAMPLES / a / exp["file"], download / exp["file"])
        got = pipeline.collect(course, a, download)
        assert got.rejected == []
    graded = pipeline.autograde_all(course, {a: None for a in SLOWEST_FIRST}, workers=2, progress=False)
    out = {a: {r.student: r for r in results} for a, results in graded.items()}
    yield course, out
    mp.undo()


def test_every_assignment_is_in_the_grading_order():
    assert sorted(SLOWEST_FIRST) == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(graded, assignment):
    course, _ = graded
    problems = stale_release(course, assignment, ROOT)
    assert problems == [], f"release/{assignment} is stale: run 'make release' and commit it ({problems})"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_blank_zero(graded, assignment):
    course, results = graded
    solution, blank = results[assignment]["solution"], results[assignment]["blank"]
    auto = [q for q in solution.questions if not q.manual]  # questions graded by hand wait for the formgrader
    assert solution.max_score > 0
    assert all(q.points == q.max_points for q in auto), [q for q in auto if q.status != "passed"]
    assert solution.pending == [q.grade_id for q in solution.questions if q.manual]
    assert blank.pending == []  # an answer handed in as released scores 0, as in nbgrader
    assert solution.flags == [], solution.notes
    run = json.loads((course.autograded / "solution" / assignment / "run.json").read_text())
    failing = [
        (c["index"], c.get("grade_id"), c["status"], c.get("evalue")) for c in run["cells"] if c["status"] != "ok"
    ]
    assert failing == [], f"the solution notebook has failing cells (nbval does not run source/): {failing}"
    assert all(q.points == 0 for q in blank.questions), [q for q in blank.questions if q.points]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_wrong_answer_loses_exactly_its_question(graded, assignment):
    _, results = graded
    if assignment == "hw4" and adl_pretrained.weights_source((96, 96, 3)) == "stand-in":
        pytest.skip(
            "hw4's wrong answers cost accuracy, which needs ImageNet features: without the data mirror "
            "(ADL_DATA_MIRROR) the smoke profile's stand-in backbone has random weights"
        )
    expected = _expected(assignment)
    ci = {s: e for s, e in expected.items() if e["ci"]}
    full = {q.grade_id: q.max_points for q in results[assignment]["solution"].questions if not q.manual}
    assert {g for e in ci.values() for g, p in e["points"].items() if p < full[g]} == set(full), (
        "every test cell needs a wrong-answer case that costs it points (all of them, or some of a cell with "
        "partial credit)"
    )
    for student, exp in ci.items():
        r = results[assignment][student]
        got = {q.grade_id: q.points for q in r.questions if not q.manual}
        assert got == exp["points"], (
            student,
            exp["note"],
            [q for q in r.questions if got.get(q.grade_id) != exp["points"].get(q.grade_id)],
        )
        assert r.flags == [], (student, r.flags, r.notes)
        assert r.pending == exp.get("manual", []), (student, "questions graded by hand must await a grade")


def test_feedback_never_shows_hidden_tests(graded):
    course, results = graded
    for a in ASSIGNMENTS:
        hidden = hidden_test_lines(course.source_notebook(a))
        assert hidden, f"{a} has no hidden tests"
        for r in results[a].values():
            shown = {
                line.strip() for line in html_mod.unescape(reports.write_feedback(course, r).read_text()).splitlines()
            }
            assert [h for h in hidden if h in shown] == [], r.student


def test_gradebook_holds_every_assignment(graded):
    course, results = graded
    for a in ASSIGNMENTS:
        scores = gradebook.scores(course, a)
        assert {s: sum(v.values()) for s, v in scores.items()} == {s: r.score for s, r in results[a].items()}


def test_sample_classes_are_built_from_every_case():
    for a in ASSIGNMENTS:
        files = {p.name for p in (SAMPLES / a).glob(f"*_{a}.ipynb")}
        assert files == {e["file"] for e in _expected(a).values()}
        assert load_course(ROOT).settings(a).notebook == f"{a}.ipynb"


# ------------------------------------------------------------------------------------------------------------
# Comparisons that check shape first: a scan of every source notebook's test cells (AST).

_COMPARE_CALLS = {
    "assert_allclose",
    "allclose",
    "isclose",
    "assert_array_equal",
    "array_equal",
    "array_equiv",
    "assert_equal",
    "assert_almost_equal",
    "assert_array_almost_equal",
    "assert_array_less",
}
_CHECKS = {"check_close", "check_equal", "check_shape"}  # adl.grading's: shape and dtype, then values
# Calls whose result compares exactly with == (a Python number, string, set, shape): float() and int() also
# refuse every array of more than one value.
_EXACT_CALLS = {
    "len",
    "set",
    "frozenset",
    "type",
    "isinstance",
    "str",
    "float",
    "int",
    "np.shape",
    "np.ndim",
    "np.size",
    "np.issubdtype",
}
_EXACT_ATTRS = {"shape", "dtype", "ndim", "size"}
_SCALAR_TYPES = {"int", "float", "str", "bool", "np.integer", "np.floating", "np.number"}
_TRUSTED_NAMES = {"np", "tf", "adl", "math", "warnings", "keras"}


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _bound_names(body) -> set[str]:
    """Names a block binds (assignments, loops, imports, defs, with/except targets), not looking into defs."""
    out: set[str] = set()
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return out


class _ShapeFirstScan:
    """Finds comparisons (numpy's assert_allclose, allclose, isclose, array_equal ...; ``==`` and ``!=``) of a
    value that comes from the student (a name the grader fetches from the kernel, the result of a call to the
    student's function, a saved model's outputs, or anything computed from them) whose shape was not checked
    before: through adl.grading.check_close / check_equal / check_shape, an ``assert`` on its ``.shape`` (or
    ``np.shape``, or ``isinstance`` with a scalar type), or a ``float()`` / ``int()`` of it."""

    def __init__(self, source: str):
        self.tree = ast.parse(source)
        self.findings: dict[int, str] = {}
        self.functions: dict[str, ast.FunctionDef] = {}
        self.function_scopes: dict[str, list[set[str]]] = {}
        self.reports: set[str] = set()  # names holding what adl.grading.evaluate_saved_model returned
        self.tainted_params: dict[str, set[str]] = {}

    def run(self) -> list[tuple[int, str]]:
        for _ in range(4):  # until the parameters that receive student values stop growing
            before = {k: set(v) for k, v in self.tainted_params.items()}
            self.findings = {}
            self._block(self.tree.body, scopes=[_bound_names(self.tree.body)], tainted=set(), checked=set())
            for name, fn in list(self.functions.items()):
                params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
                self._block(
                    fn.body,
                    scopes=[*self.function_scopes[name], params | _bound_names(fn.body)],
                    tainted=set(self.tainted_params.get(name, set())),
                    checked=set(),
                )
            if before == self.tainted_params:
                break
        return sorted(self.findings.items())

    # -- which expressions hold student values
    def _student_name(self, name: str, scopes) -> bool:
        return not (
            any(name in s for s in scopes)
            or name in _TRUSTED_NAMES
            or hasattr(builtins, name)
            or re.match(r"_[A-Za-z0-9]", name)
        )

    def _tainted(self, node, st) -> bool:
        scopes, tainted, checked = st
        if node is None or isinstance(node, ast.Constant | ast.Lambda):
            return False
        if isinstance(node, ast.Name):
            if node.id in checked:
                return False
            return node.id in tainted or self._student_name(node.id, scopes)
        if isinstance(node, ast.Attribute):
            return node.attr not in _EXACT_ATTRS and self._tainted(node.value, st)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in self.reports
            and isinstance(node.slice, ast.Constant)
            and node.slice.value != "outputs"
        ):
            return False  # the grader's report on a saved model: lists of ints and strings; "outputs" is the model's
        if isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            if name.rsplit(".", 1)[-1] in _CHECKS or name in _EXACT_CALLS:
                return False
            if isinstance(node.func, ast.Attribute) and node.func.attr == "tolist":
                return False  # Python lists and numbers: == compares them exactly
            if name == "adl.grading.evaluate_saved_model":
                return True
            args = [*node.args, *(k.value for k in node.keywords)]
            if name in self.functions:
                fn = self.functions[name]
                touches = any(
                    isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Load)
                    and self._student_name(n.id, [*scopes, {a.arg for a in fn.args.args}, _bound_names(fn.body)])
                    for n in ast.walk(fn)
                )
                return touches or any(self._tainted(a, st) for a in args)
            return self._tainted(node.func, st) or any(self._tainted(a, st) for a in args)
        if isinstance(node, ast.IfExp):  # the condition only chooses between the two values
            return self._tainted(node.body, st) or self._tainted(node.orelse, st)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = set(tainted)
            for gen in node.generators:
                if self._tainted(gen.iter, (scopes, inner, checked)):
                    inner |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            sub = ([*scopes, _bound_names([node])], inner, checked)
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return any(self._tainted(p, sub) for p in parts)
        return any(self._tainted(child, st) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))

    # -- findings
    def _scan(self, node, st) -> None:
        if node is None:
            return
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                name = _dotted(sub.func) or ""
                if name in self.functions:
                    fn = self.functions[name]
                    params = [a.arg for a in fn.args.args]
                    hot = self.tainted_params.setdefault(name, set())
                    for i, arg in enumerate(sub.args):
                        if i < len(params) and self._tainted(arg, st):
                            hot.add(params[i])
                    for kw in sub.keywords:
                        if kw.arg and self._tainted(kw.value, st):
                            hot.add(kw.arg)
                short = name.rsplit(".", 1)[-1]
                values = [*sub.args, *(k.value for k in sub.keywords if k.arg not in ("err_msg", "msg"))]
                if short in _COMPARE_CALLS and any(self._tainted(a, st) for a in values):
                    self.findings.setdefault(
                        sub.lineno, f"{name}() of a student value whose shape was not checked first"
                    )
            elif isinstance(sub, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in sub.ops):
                if any(self._tainted(x, st) for x in [sub.left, *sub.comparators]):
                    self.findings.setdefault(
                        sub.lineno, "== or != on a student value whose shape was not checked first"
                    )

    def _shape_checks(self, node, st) -> None:
        _, tainted, checked = st
        for sub in ast.walk(node):
            name = None
            if isinstance(sub, ast.Attribute) and sub.attr == "shape" and isinstance(sub.value, ast.Name):
                name = sub.value.id
            elif (
                isinstance(sub, ast.Call)
                and _dotted(sub.func) == "np.shape"
                and sub.args
                and isinstance(sub.args[0], ast.Name)
            ):
                name = sub.args[0].id
            elif (
                isinstance(sub, ast.Call)
                and _dotted(sub.func) == "isinstance"
                and len(sub.args) == 2
                and isinstance(sub.args[0], ast.Name)
            ):
                kinds = sub.args[1].elts if isinstance(sub.args[1], ast.Tuple) else [sub.args[1]]
                if all(_dotted(k) in _SCALAR_TYPES for k in kinds):
                    name = sub.args[0].id
            if name:
                tainted.discard(name)
                checked.add(name)

    def _assign(self, targets, value_tainted: bool, st) -> None:
        _, tainted, checked = st
        for target in targets:
            for n in ast.walk(target):
                if isinstance(n, ast.Name):
                    checked.discard(n.id)
                    (tainted.add if value_tainted else tainted.discard)(n.id)

    def _block(self, body, scopes, tainted, checked) -> None:
        st = (scopes, tainted, checked)
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions[node.name] = node
                self.function_scopes[node.name] = scopes
                for d in node.args.defaults:
                    self._scan(d, st)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                self._scan(node.value, st)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                hot = self._tainted(node.value, st) or (
                    isinstance(node, ast.AugAssign) and self._tainted(node.target, st)
                )
                self._assign(targets, hot, st)
                report = (
                    isinstance(node.value, ast.Call) and _dotted(node.value.func) == "adl.grading.evaluate_saved_model"
                )
                for target in targets:
                    if isinstance(target, ast.Name):
                        (self.reports.add if report else self.reports.discard)(target.id)
            elif isinstance(node, ast.For | ast.AsyncFor):
                self._scan(node.iter, st)
                if (
                    isinstance(node.iter, ast.Call)
                    and _dotted(node.iter.func) == "zip"
                    and isinstance(node.target, ast.Tuple)
                    and len(node.target.elts) == len(node.iter.args)
                ):
                    for target, source in zip(node.target.elts, node.iter.args, strict=True):
                        self._assign([target], self._tainted(source, st), st)
                else:
                    self._assign([node.target], self._tainted(node.iter, st), st)
                self._block(node.body, *st)
                self._block(node.orelse, *st)
            elif isinstance(node, ast.While | ast.If):
                self._scan(node.test, st)
                self._block(node.body, *st)
                self._block(node.orelse, *st)
            elif isinstance(node, ast.With | ast.AsyncWith):
                for item in node.items:
                    self._scan(item.context_expr, st)
                    if item.optional_vars is not None:
                        self._assign([item.optional_vars], self._tainted(item.context_expr, st), st)
                self._block(node.body, *st)
            elif isinstance(node, ast.Try):
                self._block(node.body, *st)
                for handler in node.handlers:
                    self._block(handler.body, *st)
                self._block(node.orelse, *st)
                self._block(node.finalbody, *st)
            elif isinstance(node, ast.Assert):
                parts = (
                    node.test.values
                    if isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.And)
                    else [node.test]
                )
                for part in parts:
                    self._scan(part, st)
                    self._shape_checks(part, st)
            elif isinstance(node, ast.Expr | ast.Return | ast.Raise):
                for child in ast.iter_child_nodes(node):
                    self._scan(child, st)


def shape_first_findings(source: str) -> list[tuple[int, str]]:
    """(line, what) for each comparison of a student value that is not preceded by a shape check."""
    return _ShapeFirstScan(source).run()


def _notebook_findings(notebook: pathlib.Path) -> list[str]:
    from autograder.notebook import read_source

    _, cells = read_source(notebook)
    out = []
    for cell in cells:
        if cell.autograded_test:
            out += [
                f"{notebook.parent.name} {cell.grade_id}, line {line}: {what}"
                for line, what in shape_first_findings(cell.source)
            ]
    return out


SOURCE_NOTEBOOKS = sorted((ROOT / "source").glob("*/*.ipynb"))


@pytest.mark.parametrize("notebook", SOURCE_NOTEBOOKS, ids=lambda p: p.parent.name)
def test_test_cells_check_shape_before_values(notebook):
    """numpy's comparisons broadcast: assert_allclose(np.array([]), 0.5) passes. Every comparison of a student
    value in a test cell (public or hidden) goes through adl.grading.check_close / check_equal, or follows a
    check of the value's shape."""
    findings = _notebook_findings(notebook)
    assert findings == [], "compare through adl.grading.check_close (shape and dtype first):\n" + "\n".join(findings)


_OLD_STYLE = textwrap.dedent("""\
    _value, _d1 = dual_eval(_f, _at, "x1")
    assert np.isclose(_value, 11.65, rtol=1e-9), "f(2, 5)"
    _out = np.asarray(conv2d(_x, _w))
    np.testing.assert_allclose(_out, _expected)
    assert recurrent_params("LSTM", 4, 32) == 4736
    _r = adl.grading.evaluate_saved_model("m.keras", _x)
    assert _r["input_shape"] == [None, 32, 32, 3]
    _acc = float(np.mean(np.asarray(_r["outputs"]).argmax(axis=1) == _y))
    for _row in size_table:
        assert _row["cut"] == "out_relu"


    def _same(out, ref):
        np.testing.assert_allclose(out[0], ref[0])


    _same(gan_train_step(1), _reference(1))
    """)
_SHAPE_FIRST = textwrap.dedent("""\
    _value, _d1 = dual_eval(_f, _at, "x1")
    adl.grading.check_close(_value, 11.65, rtol=1e-9, name="f(2, 5)")
    _out = np.asarray(conv2d(_x, _w))
    assert _out.shape == _expected.shape, "shape"
    np.testing.assert_allclose(_out, _expected)
    _p = float(binary_cross_entropy(_y, _p))
    assert np.isclose(_p, 0.16)
    assert isinstance(lecture_lstm_params, (int, np.integer)) and lecture_lstm_params % 4 == 0
    _counts = adl.grading.check_equal(count_params(), 18)
    assert set(grads) == {"x", "y"} and len(grads) == 2
    assert _pred.tolist() == [7]


    def _reference(seed):
        return np.zeros(seed) == 0


    _same = _reference(3) == _reference(3)
    """)


def test_the_scan_names_each_bare_comparison_of_a_student_value():
    assert shape_first_findings(_OLD_STYLE) == [
        (2, "np.isclose() of a student value whose shape was not checked first"),
        (4, "np.testing.assert_allclose() of a student value whose shape was not checked first"),
        (5, "== or != on a student value whose shape was not checked first"),
        (8, "== or != on a student value whose shape was not checked first"),
        (10, "== or != on a student value whose shape was not checked first"),
        (14, "np.testing.assert_allclose() of a student value whose shape was not checked first"),
    ]
    assert shape_first_findings(_SHAPE_FIRST) == []


def test_the_scan_reports_the_notebook_cell_and_line(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    meta = {"grade_id": "q1_dual", "grade": True, "solution": False, "locked": True, "points": 3, "schema_version": 3}
    nb.cells.append(nbformat.v4.new_code_cell(_OLD_STYLE, metadata={"nbgrader": meta}))
    (tmp_path / "hwx").mkdir()
    nbformat.write(nb, str(tmp_path / "hwx" / "hwx.ipynb"))
    findings = _notebook_findings(tmp_path / "hwx" / "hwx.ipynb")
    assert findings[0] == "hwx q1_dual, line 2: np.isclose() of a student value whose shape was not checked first"
    assert len(findings) == 6
