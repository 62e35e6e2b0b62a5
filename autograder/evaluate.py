"""Saved models, evaluated by the grader without trusting them.

A homework question about a trained model is graded on the file the student's notebook saved
(``model.save("hw3_cnn.keras")``): the test cell calls ``adl.grading.evaluate_saved_model(path, inputs)``.
In the student's notebook that loads the file right there. In the grader, :class:`ModelEvaluator` takes
its place, so that a crafted model file never gets near the grader's process:

1. The file must be a plain file name in the submission's folder (no path, no symlink: opened with
   ``O_NOFOLLOW``), a regular file of at most :data:`adl_helpers.grading.MAX_MODEL_BYTES`. It is copied into
   a fresh folder, with the inputs as ``.npy`` files.
2. A Python process in its own sandbox (bubblewrap, an unprivileged user of its own, the resource
   limits; no network, no course folder) loads the copy with Keras' safe mode (no ``Lambda`` code, no
   unknown classes) and writes the outputs as ``.npy`` files and the rest as JSON. No student code runs
   there, and the student's kernel cannot see or reach it. One such process serves the whole job (one
   submission; with bubblewrap, a child of the worker's template, :mod:`autograder.forkserver`, which has
   imported TensorFlow once): it loads each model file (by content) once, and answers every
   evaluation of it (a public check and a hidden test, say). All its files come from one student.
3. The grader reads the outputs with ``allow_pickle=False``; the test compares them with labels that
   never left the grader.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import stat
import sys
import tempfile

import numpy as np

from autograder import forkserver
from autograder.processes import LineProcess
from autograder.sandbox import Limits, Sandbox

MAX_OUTPUT_BYTES = 256 * 2**20

# Runs inside the sandbox with `python -I`: imports Keras once; ``serve`` answers one request per line of ``inp``
# (a folder name under requests/ holding the inputs and the model file's name under models/) with a line on
# ``out``, loading each model on its first request; nothing else runs there. EVALUATOR_CODE is a process of its
# own per submission; autograder.forkserver's template runs SERVE_CODE once and forks a child per submission.
SERVE_CODE = r"""
import json, sys
import numpy as np
from adl_helpers import grading
import keras


def serve(inp, out):
    def answer(line):
        out.write(line + "\n")
        out.flush()

    answer("ready")
    models = {}
    for line in inp:
        d = "requests/" + line.strip()
        try:
            req = json.load(open(d + "/request.json"))
            if req["model"] not in models:
                folder = "models/" + req["model"] + "/"
                try:
                    models[req["model"]] = grading.load_for_grading(folder + req["name"])
                except BaseException as exc:  # the message names the student's file, not the copy
                    raise type(exc)(str(exc).replace(folder, "")) from None
            batches = {n: np.load(f"{d}/input-{i}.npy", allow_pickle=False) for i, n in enumerate(req["names"])}
            report = grading.model_report(models[req["model"]], batches, batch_size=req["batch_size"], single=False)
            for i, name in enumerate(req["names"]):
                np.save(f"{d}/output-{i}.npy", np.ascontiguousarray(report["outputs"][name]), allow_pickle=False)
            report.pop("outputs")
            json.dump({"ok": report}, open(d + "/report.json", "w"))
        except BaseException as exc:
            json.dump({"error": [type(exc).__name__, str(exc)[:2000]]}, open(d + "/report.json", "w"))
        answer("done")
"""
EVALUATOR_CODE = SERVE_CODE + "\nserve(sys.stdin, sys.stdout)\n"


class ModelEvaluator:
    """``adl.grading.evaluate_saved_model`` as the grader runs it (installed by the worker for one job).

    One sandboxed process per job (started on the first evaluation, started again if it died) loads each
    model file (by content) once and answers every evaluation of it; :meth:`close` ends it.

    Args:
        workdir: the submission's folder (the kernel's working directory).
        timeout: seconds one evaluation may take (the first one includes TensorFlow's import).
        slot: the grading slot (autograder.uids); the evaluator runs as the slot's evaluator user, not its kernel's.
        limits: resource limits of the evaluator process.
        sandbox: False to skip bubblewrap (the assignment's ``sandbox: false``).
        env: environment of the evaluator (PATH and TensorFlow's settings; HOME is its own folder).
        scratch: where the evaluator's folder is made (the job's own grading folder, so that a killed grader
            leaves no student file behind in a shared place); default: the system's temporary folder.
    """

    def __init__(
        self,
        workdir: pathlib.Path,
        timeout: float,
        slot: int = 0,
        limits: Limits | None = None,
        sandbox: bool = True,
        env: dict | None = None,
        scratch: pathlib.Path | None = None,
    ):
        self.workdir = pathlib.Path(workdir)
        self.scratch = scratch
        self.timeout = timeout
        self.slot = slot
        self.limits = limits or Limits()
        self.sandbox = sandbox
        self.env = dict(env or {})
        self.calls = 0
        self.loads = 0  # model files sent to an evaluator process (each is loaded there once)
        self.starts = 0  # evaluator processes started
        self._proc: LineProcess | forkserver.Child | None = None
        self._box: pathlib.Path | None = None  # the process's folder: models/, requests/
        self._template: forkserver.Template | None = None  # the worker's template, while this job holds it
        self._models: set[str] = set()  # sha256 of the model files the running process holds

    def __call__(self, path, inputs, *, batch_size=256) -> dict:
        from adl_helpers.grading import model_inputs  # the same validation as in the student's notebook

        single = not isinstance(inputs, dict)
        batches = model_inputs(inputs)
        self.calls += 1
        data = self._read_model(os.fspath(path))
        file_name = pathlib.PurePosixPath(os.fspath(path)).name  # _read_model made sure it is a plain file name
        digest = hashlib.sha256(data).hexdigest()
        proc, box = self._process()
        if digest not in self._models:
            folder = box / "models" / digest
            folder.mkdir(mode=0o755, exist_ok=True)
            (folder / file_name).write_bytes(data)
            self._give(folder)
            self._models.add(digest)
            self.loads += 1
        req = box / "requests" / str(self.calls)
        req.mkdir(mode=0o755)
        names = list(batches)
        for i, name in enumerate(names):
            np.save(req / f"input-{i}.npy", batches[name], allow_pickle=False)
        (req / "request.json").write_text(
            json.dumps({"names": names, "batch_size": int(batch_size), "model": digest, "name": file_name})
        )
        self._give(req)
        try:
            line = self._exchange(proc, str(self.calls))
            if line != "done":
                raise ValueError(f"evaluate_saved_model: the evaluator stopped ({line or 'no answer'})")
            report = self._read_json(req / "report.json")
            if report is None:
                raise ValueError("evaluate_saved_model: the evaluator gave no report")
            if "error" in report:
                self._models.discard(digest)  # a model that did not load is tried again on its next use
                raise ValueError(report["error"][1])
            out = _checked_report(report["ok"])
            outputs = {name: self._read_array(req / f"output-{i}.npy") for i, name in enumerate(names)}
        finally:
            shutil.rmtree(req, ignore_errors=True)
        out["outputs"] = outputs["x"] if single else outputs
        return out

    @property
    def sandbox_uid(self) -> int | None:
        return self._sandbox(self.workdir).uid

    def _sandbox(self, box: pathlib.Path) -> Sandbox:
        """The sandbox of an evaluator process working in ``box``: its own user, not the kernel's."""
        return Sandbox(box, self.limits, slot=self.slot, evaluator=True, enabled=self.sandbox)

    def probe(self) -> str | None:
        """None if an evaluator process can start here (its user reaches Python and the helper package); else
        why not. The grader asks once before grading (see ``Sandbox.probe``)."""
        box = pathlib.Path(tempfile.mkdtemp(prefix="adl-eval-"))
        try:
            box.chmod(0o755)
            return self._sandbox(box).probe([sys.executable, "-I", "-c", "from adl_helpers import grading"])
        finally:
            shutil.rmtree(box, ignore_errors=True)

    def _read_model(self, path: str) -> bytes:
        """The model file's bytes: a plain file name in the submission's folder, a regular file, not too big."""
        name = pathlib.PurePosixPath(path)
        if name.is_absolute() or len(name.parts) != 1 or name.name in (".", ".."):
            raise ValueError(
                f"evaluate_saved_model: give the model as a file name in the notebook's folder, got {path!r}"
            )
        from adl_helpers.grading import MAX_MODEL_BYTES

        dirfd = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fd = os.open(name.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"evaluate_saved_model: no model file {path!r}: the notebook did not save it (run the cell "
                    "that trains the model and saves it with model.save(...))"
                ) from None
            except OSError as exc:  # ELOOP: a symlink
                raise ValueError(f"evaluate_saved_model: {path!r} is not a regular file ({exc.strerror})") from None
        finally:
            os.close(dirfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ValueError(f"evaluate_saved_model: {path!r} is not a regular file")
        with os.fdopen(fd, "rb") as src:
            data = src.read(MAX_MODEL_BYTES + 1)
        if len(data) > MAX_MODEL_BYTES:
            raise ValueError(
                f"evaluate_saved_model: {path!r} is larger than the {MAX_MODEL_BYTES // 2**20} MiB a course model needs"
            )
        if name.suffix != ".keras":
            raise ValueError(f"evaluate_saved_model: {path!r} should be a .keras file (model.save('name.keras'))")
        return data

    def _process(self) -> tuple[LineProcess | forkserver.Child, pathlib.Path]:
        """The job's running evaluator (started on first use, or again if it died: a model that crashed it):
        a child of this worker's template (:mod:`autograder.forkserver`) with bubblewrap, else a process of its own."""
        if self._proc is not None and self._box is not None and self._proc.alive():
            return self._proc, self._box
        self.close()
        sandbox = self._sandbox(self.workdir)
        if sandbox.isolated:
            return self._fork(sandbox)
        box = pathlib.Path(tempfile.mkdtemp(prefix="adl-eval-", dir=self.scratch))
        box.chmod(0o755)
        (box / "models").mkdir(mode=0o755)
        (box / "requests").mkdir(mode=0o755)
        sandbox = self._sandbox(box)
        sandbox.prepare()
        env = {**self.env, "HOME": str(box), "TF_CPP_MIN_LOG_LEVEL": self.env.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        # Only its three pipes (and, for bubblewrap, the seccomp filter) are inherited: never the worker's log.
        try:
            proc = LineProcess(
                sandbox.wrap([sys.executable, "-I", "-c", EVALUATOR_CODE]), cwd=box, env=env, pass_fds=sandbox.pass_fds
            )
        finally:
            sandbox.release()
        self._proc, self._box = proc, box
        return self._ready(proc, box)

    def _fork(self, sandbox: Sandbox) -> tuple[forkserver.Child, pathlib.Path]:
        """A fresh child of this worker's template, in a folder of its own, for this job."""
        env = {**self.env, "TF_CPP_MIN_LOG_LEVEL": self.env.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        try:
            template = self._template or forkserver.acquire(SERVE_CODE, env, self.limits, self.timeout)
        except forkserver.TemplateError as exc:
            raise ValueError(f"evaluate_saved_model: {exc}") from None
        self._template = template
        try:
            child = template.fork(sandbox.uid, sandbox.limits_now())
        except forkserver.TemplateError as exc:
            self._drop_template()
            raise ValueError(f"evaluate_saved_model: {exc}") from None
        (child.folder / "models").mkdir(mode=0o755)
        (child.folder / "requests").mkdir(mode=0o755)
        self._give(child.folder)
        self._proc, self._box = child, child.folder
        return self._ready(child, child.folder)

    def _ready(self, proc, box: pathlib.Path):
        self.starts += 1
        line = self._exchange(proc, None)
        if line != "ready":
            self.close()
            raise ValueError(f"evaluate_saved_model: the evaluator did not start ({line or 'no answer'})")
        return proc, box

    def _give(self, path: pathlib.Path) -> None:
        """Hand a file or folder the grader wrote over to the evaluator's user."""
        if self.sandbox_uid is not None:
            for p in [path, *path.iterdir()] if path.is_dir() else [path]:
                os.chown(p, self.sandbox_uid, self.sandbox_uid)

    def _exchange(self, proc, request: str | None) -> str | None:
        """Send one request line (None: just wait) and read the answer line, within the time limit."""
        try:
            return proc.ask(request, self.timeout)
        except TimeoutError:
            self._drop_template()  # the child is stuck: the template goes with it
            self.close()
            raise TimeoutError(
                f"evaluate_saved_model: loading and running the model took more than {self.timeout:g} s"
            ) from None

    def close(self) -> None:
        """End the job's evaluator and remove its folder; give the template back for the next job."""
        if isinstance(self._proc, forkserver.Child):
            if not self._proc.end(timeout=30):
                self._drop_template()
        elif self._proc is not None:
            self._proc.kill()
        if self._box is not None:
            shutil.rmtree(self._box, ignore_errors=True)
        self._proc, self._box, self._models = None, None, set()
        if self._template is not None:
            forkserver.release(self._template)
            self._template = None

    def _drop_template(self) -> None:
        if self._template is not None:
            self._template.close()
            self._template = None

    @staticmethod
    def _open_regular(path: pathlib.Path, limit: int):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            os.close(fd)
            raise ValueError(
                f"evaluate_saved_model: the evaluator's {path.name} is not a regular file of at most {limit} bytes"
            )
        return os.fdopen(fd, "rb")

    def _read_json(self, path: pathlib.Path) -> dict | None:
        try:
            with self._open_regular(path, 2**20) as fh:
                data = json.loads(fh.read())
        except (OSError, ValueError):
            return None
        ok = isinstance(data, dict) and (
            "ok" in data or (isinstance(data.get("error"), list) and len(data["error"]) == 2)
        )
        return data if ok else None

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

    ok = (
        isinstance(report, dict)
        and type(report.get("trainable_params")) is int
        and type(report.get("non_trainable_params")) is int
        and shape(report.get("input_shape"))
        and shape(report.get("output_shape"))
        and isinstance(report.get("layer_types"), list)
        and all(isinstance(t, str) for t in report["layer_types"])
    )
    if not ok:
        raise ValueError("evaluate_saved_model: the evaluator's report is malformed")
    return {
        k: report[k] for k in ("trainable_params", "non_trainable_params", "input_shape", "output_shape", "layer_types")
    }
