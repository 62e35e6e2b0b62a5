"""The job the pipeline hands a worker: its JSON form round-trips, and a file that is out of step is refused
with the field named."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from autograder import job as job_module
from autograder.job import EVALUATOR_ENV_KEEP, KERNEL_ENV_KEEP, Job, JobError, SandboxSpec


def _job(**changes) -> Job:
    fields = dict(
        workdir="/g/home",
        notebook="/g/private/hw1.ipynb",
        executed="/c/hw1.ipynb",
        result="/c/run.json",
        cell_timeout=60,
        notebook_timeout=600.0,
        env={"PATH": "/usr/bin", "HOME": "/g/home"},
        sandbox=SandboxSpec(
            slot=3, memory=5 * 2**30, processes=256, disk=2**29, files=10_000, tmp_size=2**28, readonly=("/data",)
        ),
        control="/g/control",
        grader_env={"ADL_PROFILE": "smoke"},
        grader_memory=3 * 2**30,
        scratch="/g",
        log="/c/logs/ana.log",
    )
    return Job(**{**fields, **changes})


@pytest.mark.parametrize("job", [_job(), _job(sandbox=None, control=None, grader_memory=None, log=None)])
def test_json_round_trip(tmp_path, job):
    job.write(tmp_path / "job.json")
    assert Job.read(tmp_path / "job.json") == job
    assert Job.from_json(json.loads(json.dumps(job.to_json()))) == job


def test_defaults_fill_what_a_minimal_job_leaves_out():
    minimal = {
        "workdir": "/w",
        "notebook": "/n",
        "executed": "/e",
        "result": "/r",
        "cell_timeout": 4,
        "notebook_timeout": 300,
        "env": {},
        "sandbox": {"slot": 8},
    }
    job = Job.from_json(minimal)
    assert job.sandbox == SandboxSpec(slot=8) and job.sandbox.enabled and job.output_limit == 2**20


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"cell_timeout": "60"}, "job.cell_timeout"),
        ({"cell_timeout": True}, "job.cell_timeout"),
        ({"env": {"PATH": 1}}, "job.env"),
        ({"env": ["PATH"]}, "job.env"),
        ({"workdir": None}, "job.workdir"),
        ({"grader_memory": 1.5}, "job.grader_memory"),
        ({"sandbox": {"slot": "3"}}, "job.sandbox.slot"),
        ({"sandbox": {"slot": 3, "readonly": "/data"}}, "job.sandbox.readonly"),
        ({"sandbox": {"slot": 3, "uid": 20000}}, "unknown field 'uid'"),
        ({"sandbox": {}}, "'slot' is missing"),
        ({"sandbox": [3]}, "job.sandbox"),
        ({"surprise": 1}, "unknown field 'surprise'"),
    ],
)
def test_a_field_out_of_step_is_refused_by_name(change, named):
    data = {**_job().to_json(), **change}
    with pytest.raises(JobError, match=named.replace("(", r"\(")):
        Job.from_json(data)


@pytest.mark.parametrize("missing", ["workdir", "notebook", "executed", "result", "cell_timeout", "env"])
def test_a_missing_field_is_named(missing):
    data = _job().to_json()
    del data[missing]
    with pytest.raises(JobError, match=f"'{missing}' is missing"):
        Job.from_json(data)


@pytest.mark.parametrize("text", ["", "[1, 2]", "{not json", "null"])
def test_an_unreadable_job_file_is_a_job_error(tmp_path, text):
    (tmp_path / "job.json").write_text(text)
    with pytest.raises(JobError, match="job"):
        Job.read(tmp_path / "job.json")
    with pytest.raises(JobError, match="cannot read"):
        Job.read(tmp_path / "missing.json")


def test_the_evaluator_gets_a_subset_of_the_kernels_environment():
    assert set(EVALUATOR_ENV_KEEP) <= set(KERNEL_ENV_KEEP)
    env = {"PATH": "/usr/bin", "HOME": "/g/home", "ADL_DATA_MIRROR": "/data", "TF_CPP_MIN_LOG_LEVEL": "2"}
    assert _job(env=env).evaluator_env() == {"PATH": "/usr/bin", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_the_kernel_keeps_nothing_of_the_graders_but_the_allow_list(monkeypatch, tmp_path):
    monkeypatch.setenv("ADL_GRADEBOOK_URL", "postgresql://secret@db/grades")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "k")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("ADL_DATA_MIRROR", str(tmp_path / "no such folder"))
    env = job_module.kernel_env("smoke", tmp_path)
    assert "ADL_GRADEBOOK_URL" not in env and "AWS_SECRET_ACCESS_KEY" not in env and "ADL_DATA_MIRROR" not in env
    assert env["LANG"] == "C.UTF-8" and env["HOME"] == str(tmp_path) and env["ADL_PROFILE"] == "smoke"
    assert set(env) - set(KERNEL_ENV_KEEP) == {
        "HOME",
        "ADL_PROFILE",
        "ADL_DATA_DIR",
        "MPLBACKEND",
        "MPLCONFIGDIR",
        "PYTHONDONTWRITEBYTECODE",
    }


def test_every_default_fits_its_field():
    """The defaults are what the checks accept: a job that leaves a field out reads the same as one that spells
    the default out."""
    for cls in (Job, SandboxSpec):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            if default is not dataclasses.MISSING:
                assert job_module._fits(list(default) if isinstance(default, tuple) else default, hints[field.name]), (
                    f"{cls.__name__}.{field.name}"
                )
