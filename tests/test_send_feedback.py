"""adl-grade send-feedback (autograder/mail.py): each student's feedback page by email, against a real SMTP
server (aiosmtpd) on 127.0.0.1; never twice for the same page; hostile student ids pick no recipient and
reach no header; a refused recipient, a refused connection, a refused login and a malformed configuration."""

from __future__ import annotations

import dataclasses
import doctest
import email
import email.policy
import fcntl
import json
import pathlib
import shutil
import ssl
import subprocess

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from helpers import free_port, scratch_course

from autograder import mail, reports, scoring
from autograder.course import COURSE_SETTINGS, SETTINGS_FILE, Course, CourseError, load_course, read_settings_file
from autograder.notebook import read_source

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = "{student}@students.example.edu"


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts and refuses the recipients in ``refuse``."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage, bool]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg, session.ssl is not None))
        return "250 OK"

    def to(self) -> list[str]:
        return [r for rcpts, _, _ in self.messages for r in rcpts]


@pytest.fixture(scope="module")
def server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def inbox(server) -> Inbox:
    server.handler.messages.clear()
    server.handler.refuse.clear()
    return server.handler


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for 127.0.0.1 (its own authority: email.ca_file) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _settings(port: int, **more) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "ADL course <adl@example.edu>",
        "address_template": TEMPLATE,
        **more,
    }


def _course(tmp_path: pathlib.Path, email_section: object) -> Course:
    """A course whose feedback goes under ``tmp_path`` (sources read from the checkout: nothing is graded)."""
    return Course(
        root=tmp_path,
        course_id="adl",
        source=ROOT / "source",
        release=tmp_path / "release",
        submitted=tmp_path / "submitted",
        autograded=tmp_path / "autograded",
        feedback=tmp_path / "feedback",
        db_url="sqlite://",
        settings_file=tmp_path / COURSE_SETTINGS,
        settings_doc={**read_settings_file(SETTINGS_FILE), "email": email_section},
    )


def _page(course: Course, student: str, points: float = 2.0) -> bytes:
    """Write ``student``'s hw1 feedback page as ``adl-grade feedback --final`` does; its bytes."""
    _, trusted = read_source(ROOT / "source" / "hw1" / "hw1.ipynb")
    tests = [c for c in trusted if c.autograded_test]
    questions = [
        scoring.QuestionResult(c.grade_id, points if i == 0 else 0.0, c.points, "passed" if i == 0 else "failed")
        for i, c in enumerate(tests)
    ]
    result = scoring.Result(student, "hw1", questions, [], 1.0, "k")
    return reports.write_feedback(course, result, final=True).read_bytes()


def _raw_page(course: Course, student: str, data: bytes = b"<p>feedback</p>") -> bytes:
    """A feedback page for a student id that write_feedback's folder cannot be made from by a Result alone."""
    path = course.feedback / student / "hw1" / "feedback.html"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return data


def _attachment(msg) -> tuple[str, bytes]:
    (part,) = list(msg.iter_attachments())
    return part.get_filename(), part.get_payload(decode=True)


def test_each_student_gets_their_own_page_once(tmp_path, monkeypatch, server, inbox):
    """Through load_course and assignments.yml: an address from the CSV, one from the template; the same page
    (written again a minute later) is not sent again, a new page is, and --resend sends everything."""
    scratch_course(tmp_path, ["hw1"], monkeypatch)
    (tmp_path / "addresses.csv").write_text("student_id,email\nana,ana.lima@uni.example.edu\n")
    doc = yaml.safe_load(SETTINGS_FILE.read_text())
    doc["email"] = _settings(server.port, addresses="addresses.csv", subject="[{course}] {assignment} feedback")
    (tmp_path / COURSE_SETTINGS).write_text(yaml.safe_dump(doc))
    course = load_course(tmp_path)
    pages = {"ana": _page(course, "ana"), "ben": _page(course, "ben", 0.0)}

    report = mail.send_feedback(course, "hw1")
    assert [(d.student, d.to) for d in report.sent] == [
        ("ana", "ana.lima@uni.example.edu"),
        ("ben", "ben@students.example.edu"),
    ]
    assert report.failed == report.skipped == [] and inbox.to() == [d.to for d in report.sent]
    for (rcpts, msg, _), student in zip(inbox.messages, ["ana", "ben"], strict=True):
        assert msg["To"] == rcpts[0] and msg["From"] == "ADL course <adl@example.edu>"
        assert msg["Subject"] == "[adl] hw1 feedback"
        assert _attachment(msg) == ("hw1-feedback.html", pages[student])
        body = msg.get_body(("plain",)).get_content()
        assert "hw1" in body and "adl" in body and student not in body and "hidden" not in body

    again = mail.send_feedback(course, "hw1")
    assert again.sent == [] and again.already_sent == ["ana", "ben"] and len(inbox.messages) == 2
    page = course.feedback / "ana" / "hw1" / "feedback.html"
    page.write_bytes(mail.STAMP.sub(b"Generated 2031-01-02 03:04 UTC by adl-grade", page.read_bytes()))
    _page(course, "ben", 2.0)  # ben resubmitted: a new page
    third = mail.send_feedback(course, "hw1")
    assert [d.student for d in third.sent] == ["ben"] and third.already_sent == ["ana"]
    ledger = json.loads((course.build / "mail" / "hw1" / "sent.json").read_text())
    assert [len(ledger["ana"]), len(ledger["ben"])] == [1, 2]
    assert ledger["ben"][1]["message_id"] == inbox.messages[2][1]["Message-ID"]
    assert [d.student for d in mail.send_feedback(course, "hw1", resend=True).sent] == ["ana", "ben"]


def test_a_dry_run_connects_to_nothing_and_records_nothing(tmp_path):
    course = _course(tmp_path, _settings(free_port()))  # nothing listens there
    page = _page(course, "ana")
    _page(course, "ben")
    report = mail.send_feedback(course, "hw1", students=["ana", "zoe", "ana"], dry_run=True)
    assert [(d.student, d.to) for d in report.sent] == [("ana", "ana@students.example.edu")]
    assert report.skipped == [("zoe", "no feedback page: run adl-grade feedback hw1 first")]
    assert not (course.build / "mail" / "hw1" / "sent.json").exists()
    eml = course.build / "mail" / "hw1" / "outbox" / "ana.eml"
    assert report.sent[0].eml == eml and sorted(eml.parent.iterdir()) == [eml]
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ana@students.example.edu" and _attachment(msg)[1] == page
    lines = mail.format_report(report)
    assert lines[:2] == [
        "would send feedback on hw1 to 1 student(s)",
        "  ana -> ana@students.example.edu: adl hw1: your feedback",
    ]
    assert "nothing sent or recorded" in lines[2] and "skipped zoe" in lines[3]

    with pytest.raises(CourseError, match=r"cannot connect to the SMTP server 127\.0\.0\.1:\d+ .*Connection refused"):
        mail.send_feedback(course, "hw1")  # the real thing: the connection is refused
    assert not (course.build / "mail" / "hw1" / "sent.json").exists()


HOSTILE = [
    "eve@evil.example.org",
    "x,bob",
    "ana\r\nBcc: eve@evil.example.org",
    "b\u00e9a",
    "bob+hw1",
    '"ana"',
    "ana ",
    "\x1b[2Jana",
    "-" * 70,
]


def test_a_hostile_student_id_picks_no_recipient_and_reaches_no_header(tmp_path, server, inbox):
    (tmp_path / "addresses.csv").write_text('student_id,email\n"we,ird",weird@uni.example.edu\n')
    course = _course(tmp_path, _settings(server.port, addresses="addresses.csv"))
    for student in [*HOSTILE, "we,ird", "ana"]:
        _raw_page(course, student)
    report = mail.send_feedback(course, "hw1")
    assert sorted(d.student for d in report.sent) == ["ana", "we,ird"]  # an exact row of the CSV is the instructor's
    assert sorted(inbox.to()) == ["ana@students.example.edu", "weird@uni.example.edu"]
    assert sorted(s for s, _ in report.skipped) == sorted(HOSTILE)
    assert all("not a plain name" in why for _, why in report.skipped)
    for _, msg, _ in inbox.messages:
        assert list(msg.keys()) == ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version",
                                    "Content-Type"]  # fmt: skip
        assert "evil" not in msg.as_string() and "we,ird" not in msg.as_string()
    text = "\n".join(mail.format_report(report))
    assert "\r" not in text and "\x1b" not in text and "\\x1b[2Jana" in text and "ana\\x0d\\x0aBcc" in text
    assert len(text.splitlines()) == 1 + 2 + len(HOSTILE)
    ledger = json.loads((course.build / "mail" / "hw1" / "sent.json").read_text())
    assert sorted(ledger) == ["ana", "we,ird"]
    dry = mail.send_feedback(course, "hw1", dry_run=True, resend=True)  # a file name of its own, not the id
    names = sorted(p.name for p in (course.build / "mail" / "hw1" / "outbox").iterdir())
    assert "ana.eml" in names and all(n == "ana.eml" or n.startswith("_id-") for n in names)  # never a plain id's
    assert {d.eml.name for d in dry.sent if d.eml} >= {"ana.eml"} and all(
        "," not in d.eml.name for d in dry.sent if d.eml
    )


def test_a_refused_recipient_is_not_recorded_and_the_others_go_on(tmp_path, server, inbox):
    course = _course(tmp_path, _settings(server.port))
    for student in ("ana", "ben", "cy"):
        _page(course, student)
    inbox.refuse.add("ben@students.example.edu")
    report = mail.send_feedback(course, "hw1")
    assert [d.student for d in report.sent] == ["ana", "cy"] and inbox.to() == [
        "ana@students.example.edu",
        "cy@students.example.edu",
    ]
    assert report.failed == [("ben", "ben@students.example.edu: the server refused it: 550 5.1.1 no such mailbox here")]
    assert "  FAILED ben: ben@students.example.edu: the server refused it: 550" in "\n".join(mail.format_report(report))
    inbox.refuse.clear()
    retry = mail.send_feedback(course, "hw1")
    assert [d.student for d in retry.sent] == ["ben"] and retry.already_sent == ["ana", "cy"]


def _tls_server(certificate, inbox: Inbox, password: bytes) -> Controller:
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data == (b"grader", password)
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
        authenticator=authenticator, auth_required=True,
    )  # fmt: skip
    controller.start()
    return controller


def test_login_over_starttls_and_a_refused_login(tmp_path, monkeypatch, certificate):
    inbox = Inbox()
    controller = _tls_server(certificate, inbox, b"s3cret")
    shutil.copy(certificate[0], tmp_path / "ca.pem")
    try:
        raw = _settings(controller.port, security="starttls", username="grader", password_env="ADL_TEST_SMTP")
        course = _course(tmp_path, {**raw, "ca_file": "ca.pem"})
        _page(course, "ana")
        monkeypatch.delenv("ADL_TEST_SMTP", raising=False)
        with pytest.raises(CourseError, match="set the environment variable ADL_TEST_SMTP"):
            mail.send_feedback(course, "hw1")
        monkeypatch.setenv("ADL_TEST_SMTP", "wrong")
        with pytest.raises(CourseError, match=r"refused the login of 'grader' \(535 .*\$ADL_TEST_SMTP"):
            mail.send_feedback(course, "hw1")
        with pytest.raises(CourseError, match=r"cannot start TLS with .*certificate verify failed.*ca_file"):
            mail.send_feedback(dataclasses.replace(course, settings_doc={"email": raw}), "hw1")  # the system's CAs
        assert inbox.messages == [] and not (course.build / "mail" / "hw1" / "sent.json").exists()
        monkeypatch.setenv("ADL_TEST_SMTP", "s3cret")
        assert [d.student for d in mail.send_feedback(course, "hw1").sent] == ["ana"]
        assert inbox.to() == ["ana@students.example.edu"] and inbox.messages[0][2]  # over TLS
    finally:
        controller.stop()


VALID = _settings(25, security="starttls")


@pytest.mark.parametrize(
    ("section", "says"),
    [
        (None, "has no 'email:' section: add one with host, sender, and addresses"),
        ("smtp.example.edu", "email must be a mapping"),
        ({**VALID, "password": "hunter2"}, "email.password must not be here: name an environment variable"),
        ({**VALID, "hots": "x"}, r"unknown keys \['hots'\]"),
        ({k: v for k, v in VALID.items() if k != "host"}, "email.host must be given"),
        ({**VALID, "security": "tls"}, r"email.security must be one of \['none', 'ssl', 'starttls'\], got 'tls'"),
        ({**VALID, "port": "587"}, "email.port must be a port number"),
        ({**VALID, "port": 70000}, "email.port must be a port number"),
        ({**VALID, "sender": "the course"}, "email.sender must be one ASCII address"),
        ({**VALID, "sender": "a@example.edu, b@example.edu"}, "email.sender must be one ASCII address"),
        ({**VALID, "sender": "adl@example.edu\nBcc: x@example.org"}, "email.sender must be one line of text"),
        ({**VALID, "username": "grader"}, "email.password_env goes with username"),
        ({**VALID, "host": "smtp.example.edu", "security": "none", "username": "g", "password_env": "P"},
         "email.security none would send the password unencrypted"),
        ({**VALID, "address_template": "{name}@example.edu"}, "email.address_template must be an address"),
        ({**VALID, "address_template": "{student.__class__}@x.edu"}, "email.address_template must be an address"),
        ({**VALID, "address_template": "{student}"}, "email.address_template must be an address"),
        ({**VALID, "address_template": "{student}@a.edu, boss@a.edu"}, "email.address_template must be an"),
        ({k: v for k, v in VALID.items() if k != "address_template"}, "email.addresses or address_template"),
        ({**VALID, "subject": "{student}: feedback"}, "email.subject may use {course}, {assignment}"),
        ({**VALID, "subject": "a\r\nBcc: x@example.org"}, "email.subject must be one line of text"),
        ({**VALID, "addresses": "nowhere.csv"}, "email.addresses must be a file in"),
        ({**VALID, "ca_file": "nowhere.pem"}, "email.ca_file must be a file in"),
    ],
)  # fmt: skip
def test_a_malformed_email_section_is_named(tmp_path, section, says):
    with pytest.raises(CourseError, match=says) as caught:
        mail.mail_settings(_course(tmp_path, section))
    assert "hunter2" not in str(caught.value)


def test_the_addresses_file_and_a_student_without_an_address(tmp_path, server, inbox):
    csv = tmp_path / "addresses.csv"
    raw = {k: v for k, v in _settings(server.port, addresses="addresses.csv").items() if k != "address_template"}
    course = _course(tmp_path, raw)
    _page(course, "ana")
    _page(course, "ben")
    for text, says in [
        ("id,mail\nana,a@x.edu\n", "the first row must name the columns student_id and email"),
        ('student_id,email\nana,a@x.edu\nben,"ben@x.edu, eve@evil.org"\n', "line 3: 'ben@x.edu, eve@evil.org' is not"),
        ("student_id,email\nana,a@x.edu\nana,b@x.edu\n", "line 3: 'ana' has two addresses"),
        ("student_id,email\nana,\xe9@x.edu\n", "line 2: '\xe9@x.edu' is not a plain ASCII address"),
    ]:
        csv.write_text(text)
        with pytest.raises(CourseError, match=f"{csv}.*{says}"):
            mail.send_feedback(course, "hw1")
    csv.write_text("student_id,email\nana,ana@uni.example.edu\n")
    report = mail.send_feedback(course, "hw1")
    assert [d.to for d in report.sent] == inbox.to() == ["ana@uni.example.edu"]
    assert report.skipped == [("ben", f"no address: add a row for this student to {csv}")]


def test_a_damaged_ledger_an_unknown_assignment_and_a_second_sender_are_refused(tmp_path, server, inbox):
    course = _course(tmp_path, _settings(server.port))
    with pytest.raises(CourseError, match="no feedback pages of hw1 .*run adl-grade feedback first"):
        mail.send_feedback(course, "hw1")
    _page(course, "ana")
    with pytest.raises(CourseError, match="unknown assignment 'hw99'"):
        mail.send_feedback(course, "hw99")
    folder = course.build / "mail" / "hw1"
    folder.mkdir(parents=True)
    with (folder / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(CourseError, match="another adl-grade send-feedback hw1 is running"):
            mail.send_feedback(course, "hw1")
    (folder / "sent.json").write_text("{not json")
    with pytest.raises(CourseError, match="sent.json is damaged .*restore it from a backup"):
        mail.send_feedback(course, "hw1")
    assert inbox.messages == []


def test_the_digest_leaves_out_only_the_time_the_page_was_written(tmp_path):
    course = _course(tmp_path, None)
    page = _page(course, "ana")
    assert len(mail.STAMP.findall(page)) == 1  # the template still writes the line this module leaves out
    later = mail.STAMP.sub(b"Generated 2031-12-31 23:59 UTC by adl-grade", page)
    assert later != page and mail.feedback_digest(later) == mail.feedback_digest(page)
    assert mail.feedback_digest(_page(course, "ana", 0.0)) != mail.feedback_digest(page)


def test_the_examples_in_the_docstrings():
    assert doctest.testmod(mail).attempted > 0 and doctest.testmod(mail).failed == 0


@pytest.mark.parametrize(
    "text",
    ["ana(comment)@uni.example.edu", " ana@uni.example.edu", "ana@uni.example.edu>", "ana@uni.example.edu, eve@x.org",
     '"a b"@uni.example.edu', "ana@[10.0.0.1]", "ana@localhost", "\u00e1na@uni.example.edu", "ana@", "@uni.example.edu",
     "ana@@uni.example.edu", "ana@uni.example.edu\r\nBcc: eve@x.org", "a..b@uni.example.edu", 42],
)  # fmt: skip
def test_only_one_plain_address_is_an_address(text):
    assert mail.plain_address(text) is None
    assert mail.plain_address("ana.lima-2@uni.example.edu") == "ana.lima-2@uni.example.edu"
