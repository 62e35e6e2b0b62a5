"""Saved models, evaluated by the grader without trusting them.

A homework question about a trained model is graded on the file the student's notebook saved
(``model.save("hw3_cnn.keras")``): the test cell calls ``adl.grading.evaluate_saved_model(path, inputs)``.
In the student's notebook that loads the file right there. In the grader, :class:`ModelEvaluator` takes
its place, so that a crafted model file never gets near the grader's process:

1. The file must be a plain file name in the submission's folder (no path, no symlink: opened with
   ``O_NOFOLLOW``), a regular file of at most :data:`adl_helpers.grading.MAX_MODEL_BYTES`. It is copied into
   a fresh folder, with the inputs as ``.npy`` files.
2. A fresh Python process in its own sandbox (bubblewrap, an unprivileged user of its own, the resource
   limits; no network, no course folder) loads the copy with Keras' safe mode (no ``Lambda`` code, no
   unknown classes) and writes the outputs as ``.npy`` files and the rest as JSON. No student code runs
   there, and the student's kernel cannot see or reach it.
3. The grader reads the outputs with ``allow_pickle=False``; the test compares them with labels that
   never left the grader.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

import numpy as np

from autograder.sandbox import Limits, Sandbox

EVAL_SLOT_OFFSET = 500  # the evaluator of slot N runs as uid SLOT_UID_BASE + N + 500: not the kernel's user
MAX_OUTPUT_BYTES = 256 * 2**20

# Runs inside the sandbox with `python -I`: nothing but Keras loading the file and predicting.
EVALUATOR_CODE = r"""
import json, sys, traceback
import numpy as np
try:
    from adl_helpers import grading
    req = json.load(open("request.json"))
    batches = {name: np.load(f"input-{i}.npy", allow_pickle=False) for i, name in enumerate(req["names"])}
    model = grading.load_for_grading("model.keras")
    report = grading.model_report(model, batches, batch_size=req["batch_size"], single=False)
    for i, name in enumerate(req["names"]):
        np.save(f"output-{i}.npy", np.ascontiguousarray(report["outputs"][name]), allow_pickle=False)
    report.pop("outputs")
    json.dump({"ok": report}, open("report.json", "w"))
except BaseException as exc:
    json.dump({"error": [type(exc).__name__, str(exc)[:2000]]}, open("report.json", "w"))
"""


class ModelEvaluator:
    """``adl.grading.evaluate_saved_model`` as the grader runs it (installed by the worker for one job).

    Args:
        workdir: the submission's folder (the kernel's working directory).
        timeout: seconds one evaluation may take (TensorFlow's import included).
        slot: the grading slot; the evaluator runs as its own user for that slot.
        limits: resource limits of the evaluator process.
        sandbox: False to skip bubblewrap (the assignment's ``sandbox: false``).
        env: environment of the evaluator (PATH and TensorFlow's settings; HOME is its own folder).
    """

    def __init__(self, workdir: pathlib.Path, timeout: float, slot: int = 0, limits: Limits | None = None,
                 sandbox: bool = True, env: dict | None = None):
        self.workdir = pathlib.Path(workdir)
        self.timeout = timeout
        self.slot = slot
        self.limits = limits or Limits()
        self.sandbox = sandbox
        self.env = dict(env or {})
        self.calls = 0

    def __call__(self, path, inputs, *, batch_size=256) -> dict:
        from adl_helpers.grading import _check_inputs  # the same validation as in the student's notebook

        single = not isinstance(inputs, dict)
        batches = _check_inputs(inputs)
        self.calls += 1
        box = pathlib.Path(tempfile.mkdtemp(prefix="adl-eval-"))
        try:
            box.chmod(0o755)
            self._copy_model(os.fspath(path), box / "model.keras")
            names = list(batches)
            for i, name in enumerate(names):
                np.save(box / f"input-{i}.npy", batches[name], allow_pickle=False)
            (box / "request.json").write_text(json.dumps({"names": names, "batch_size": int(batch_size)}))
            report = self._run(box, names)
        finally:
            shutil.rmtree(box, ignore_errors=True)
        outputs = report.pop("outputs")
        report["outputs"] = outputs["x"] if single else outputs
        return report

    def _copy_model(self, path: str, target: pathlib.Path) -> None:
        name = pathlib.PurePosixPath(path)
        if name.is_absolute() or len(name.parts) != 1 or name.name in (".", ".."):
            raise ValueError(f"evaluate_saved_model: give the model as a file name in the notebook's folder, "
                             f"got {path!r}")
        from adl_helpers.grading import MAX_MODEL_BYTES

        dirfd = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fd = os.open(name.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"evaluate_saved_model: no model file {path!r}: the notebook did not save it (run the cell "
                    "that trains the model and saves it with model.save(...))") from None
            except OSError as exc:  # ELOOP: a symlink
                raise ValueError(f"evaluate_saved_model: {path!r} is not a regular file ({exc.strerror})") from None
        finally:
            os.close(dirfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ValueError(f"evaluate_saved_model: {path!r} is not a regular file")
        with os.fdopen(fd, "rb") as src:
            if st.st_size > MAX_MODEL_BYTES:
                raise ValueError(f"evaluate_saved_model: {path!r} is {st.st_size / 2**20:.0f} MiB, more than the "
                                 f"{MAX_MODEL_BYTES // 2**20} MiB a course model needs")
            with open(target, "wb") as dst:
                copied = shutil.copyfileobj(src, dst, 2**20) or dst.tell()
            if copied > MAX_MODEL_BYTES:  # grew while we read
                raise ValueError(f"evaluate_saved_model: {path!r} is larger than {MAX_MODEL_BYTES // 2**20} MiB")
        if not pathlib.PurePosixPath(path).suffix == ".keras":
            raise ValueError(f"evaluate_saved_model: {path!r} should be a .keras file (model.save('name.keras'))")

    def _run(self, box: pathlib.Path, names: list[str]) -> dict:
        sandbox = Sandbox(box, self.limits, slot=self.slot + EVAL_SLOT_OFFSET, enabled=self.sandbox)
        sandbox.prepare()
        env = {**self.env, "HOME": str(box), "TF_CPP_MIN_LOG_LEVEL": self.env.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        argv = sandbox.wrap([sys.executable, "-I", "-c", EVALUATOR_CODE])
        try:
            proc = subprocess.run(argv, cwd=box, env=env, capture_output=True, timeout=self.timeout,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"evaluate_saved_model: loading and running the model took more than "
                               f"{self.timeout:g} s") from None
        report = self._read_json(box / "report.json")
        if report is None:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise ValueError(f"evaluate_saved_model: the model could not be evaluated (exit status "
                             f"{proc.returncode}: {' | '.join(tail)[:500]})")
        if "error" in report:
            ename, message = report["error"]
            raise (FileNotFoundError if ename == "FileNotFoundError" else ValueError)(message)
        out = _checked_report(report["ok"])
        out["outputs"] = {name: self._read_array(box / f"output-{i}.npy") for i, name in enumerate(names)}
        return out

    @staticmethod
    def _open_regular(path: pathlib.Path, limit: int):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            os.close(fd)
            raise ValueError(f"evaluate_saved_model: the evaluator's {path.name} is not a regular file of at "
                             f"most {limit} bytes")
        return os.fdopen(fd, "rb")

    def _read_json(self, path: pathlib.Path) -> dict | None:
        try:
            with self._open_regular(path, 2**20) as fh:
                data = json.loads(fh.read())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and ("ok" in data or "error" in data) else None

    def _read_array(self, path: pathlib.Path) -> np.ndarray:
        with self._open_regular(path, MAX_OUTPUT_BYTES) as fh:
            arr = np.load(fh, allow_pickle=False)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"evaluate_saved_model: the model's output has dtype {arr.dtype}")
        return arr


def _checked_report(report) -> dict:
    """The evaluator's JSON, with the types the tests rely on (it is read, never trusted blindly)."""
    def shape(v):
        return v is None or (isinstance(v, list) and all(d is None or type(d) is int or shape(d) for d in v))

    ok = (isinstance(report, dict) and type(report.get("trainable_params")) is int
          and type(report.get("non_trainable_params")) is int and shape(report.get("input_shape"))
          and shape(report.get("output_shape")) and isinstance(report.get("layer_types"), list)
          and all(isinstance(t, str) for t in report["layer_types"]))
    if not ok:
        raise ValueError("evaluate_saved_model: the evaluator's report is malformed")
    return {k: report[k] for k in ("trainable_params", "non_trainable_params", "input_shape", "output_shape",
                                   "layer_types")}
