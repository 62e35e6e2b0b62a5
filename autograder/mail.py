"""Feedback by email: each student's feedback page sent as an attachment through the course's SMTP server.

``adl-grade send-feedback <assignment>`` sends each ``feedback/<student>/<assignment>/feedback.html`` as
configured by the ``email:`` section of ``assignments.yml`` (:func:`mail_settings`); a dry run writes ``.eml``
files instead. A ledger, ``build/mail/<assignment>/sent.json``, records each page sent by its SHA-256: the same
feedback is never sent twice, a new page (a resubmission, a regrade, ``--final``) is.

The trust boundary: the student id is a folder name the student chose. It is in no header and not in the
message's text. It picks a recipient only as an exact row of the instructor's address list, or through
``address_template`` when it is a plain name (ASCII letters, digits, ``. _ -``: no ``@``, comma, quote, ``+``,
space or line break); every address is parsed (``email.headerregistry.Address``) and must come back as written,
and the envelope recipient is given to the server, one per message. Not enforced: that the id names the right
person (the LMS's word, at ingest).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import email.errors
import email.policy
import email.utils
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import re
import smtplib
import ssl
import string
from collections.abc import Iterator
from email.headerregistry import Address
from email.message import EmailMessage

from autograder.course import Course, CourseError
from autograder.files import remove_tree, write_json
from autograder.ingest import printable

log = logging.getLogger(__name__)

SECURITY = {"starttls": 587, "ssl": 465, "none": 25}  # email.security and its default port
KEYS = "host port security sender username password_env addresses address_template subject ca_file".split()
SUBJECT = "{course} {assignment}: your feedback"
PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a student id that address_template may use
LOOPBACK = ("localhost", "127.0.0.1", "::1")
# the feedback page's "Generated <time> by adl-grade" line: writing the same feedback again is the same page
STAMP = re.compile(rb"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC by adl-grade")
HELP = "see 'Feedback by email' in autograder/README.md"


@dataclasses.dataclass(frozen=True)
class MailSettings:
    """The ``email:`` section of the course's settings file, checked (see :func:`mail_settings`)."""

    host: str
    port: int
    sender: str  # "Name <address>" or an address
    security: str = "starttls"  # starttls | ssl | none
    username: str | None = None
    password_env: str | None = None  # the NAME of the environment variable holding the password
    addresses: pathlib.Path | None = None  # a CSV of student_id,email
    address_template: str | None = None  # e.g. "{student}@students.example.edu"
    subject: str = SUBJECT
    ca_file: pathlib.Path | None = None  # the certificate authority to trust instead of the system's
    timeout: float = 60.0  # seconds the server may take to answer


def mail_settings(course: Course) -> MailSettings:
    """The course's ``email:`` section, checked: CourseError names the wrong key and how to fix it."""
    raw = course.settings_doc.get("email")
    keys = "host, sender, and addresses (a CSV of student_id,email) or address_template ({student}@example.edu)"
    if raw is None:
        raise CourseError(f"{course.settings_file} has no 'email:' section: add one with {keys}; {HELP}")
    where = f"{course.settings_file}: email"

    def need(ok: object, key: str, what: str) -> None:
        if not ok:
            got = raw.get(key) if isinstance(raw, dict) and key else raw
            shown = "" if key == "password" else f", got {got!r}"  # never echo a password
            raise CourseError(f"{where}{'.' if key else ''}{key} {what}{shown} ({HELP})")

    need(isinstance(raw, dict), "", "must be a mapping (host: ..., sender: ...)")
    need("password" not in raw, "password", "must not be here: name an environment variable in password_env")
    need(set(raw) <= set(KEYS), "", f"has unknown keys {sorted(set(raw) - set(KEYS))}; known: {KEYS}")
    for key in ("host", "sender"):
        need(key in raw, key, "must be given: the SMTP server (smtp.example.edu) and the From address")
    for key in sorted(set(raw) - {"port"}):
        need(isinstance(raw[key], str) and raw[key].strip() and raw[key].isprintable(), key, "must be one line of text")
    security = raw.get("security", "starttls")
    need(security in SECURITY, "security", f"must be one of {sorted(SECURITY)}")
    port = raw.get("port", SECURITY[security])
    need(type(port) is int and 0 < port < 65536, "port", "must be a port number (587 for starttls, 465 for ssl)")
    need(_sender(raw["sender"]), "sender", "must be one ASCII address, e.g. 'ADL course <adl@example.edu>'")
    need(("username" in raw) == ("password_env" in raw), "password_env", "goes with username: give both or neither")
    clear = "username" in raw and security == "none" and raw["host"] not in LOOPBACK
    need(not clear, "security", "none would send the password unencrypted: use starttls or ssl")
    template = raw.get("address_template")
    fits = template is None or (_fields(template) == {"student"} and plain_address(template.format(student="s1")))
    need(fits, "address_template", "must be an address with {student} and no other field, e.g. {student}@example.edu")
    need("addresses" in raw or template, "addresses", "or address_template (or both) must be given")
    need(_fields(raw.get("subject", SUBJECT)) <= {"course", "assignment"}, "subject", "may use {course}, {assignment}")
    for key in ("addresses", "ca_file"):
        need(key not in raw or (course.root / raw[key]).is_file(), key, f"must be a file in {course.root}")
    values = {k: raw[k] for k in ("username", "password_env", "address_template", "subject") if k in raw}
    files = {k: course.root / raw[k] for k in ("addresses", "ca_file") if k in raw}
    return MailSettings(raw["host"].strip(), port, raw["sender"], security, **values, **files)


def _fields(template: str) -> set[str]:
    """The fields of a ``str.format`` template (with a conversion or a format spec: a name no caller accepts)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return {"(not a template)"}
    return {f"{n}!{c}:{s}" if c or s else n for _, n, s, c in parsed if n is not None}


def _sender(text: str) -> Address | None:
    """The one address of ``sender`` ("Name <address>" or an address), or None if it is not exactly one."""
    header = email.policy.default.header_factory("From", text)
    if header.defects or len(header.addresses) != 1 or not str(header).isascii():
        return None
    return header.addresses[0] if plain_address(header.addresses[0].addr_spec) else None


def plain_address(text: object) -> str | None:
    """``text`` if it is one plain ASCII address (``local@domain.tld``) and nothing else, else None.

    Example:
        >>> plain_address("ana@example.edu"), plain_address("ana@example.edu, eve@example.org")
        ('ana@example.edu', None)
    """
    if not isinstance(text, str) or not text.isascii() or not text.isprintable() or '"' in text:
        return None
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError, email.errors.MessageError):
        return None
    if parsed.addr_spec != text or "." not in parsed.domain or "[" in parsed.domain:
        return None
    return text


def address_book(settings: MailSettings) -> dict[str, str]:
    """The ``addresses`` CSV as {student_id: address}; CourseError naming the row that is wrong."""
    if settings.addresses is None:
        return {}
    book: dict[str, str] = {}
    path = settings.addresses
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"student_id", "email"} <= set(reader.fieldnames or []):
                raise CourseError(f"{path}: the first row must name the columns student_id and email")
            for row in reader:
                student, address = (row.get("student_id") or "").strip(), (row.get("email") or "").strip()
                if not plain_address(address):
                    raise CourseError(f"{path}, line {reader.line_num}: {address!r} is not a plain ASCII address")
                if book.setdefault(student, address) != address:
                    raise CourseError(f"{path}, line {reader.line_num}: {student!r} has two addresses")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CourseError(f"cannot read the addresses file {path} (a UTF-8 CSV of student_id,email): {exc}") from None
    return book


def recipient(student: str, book: dict[str, str], settings: MailSettings) -> tuple[str | None, str]:
    """The address to send ``student``'s feedback to, or None and the reason there is none."""
    if student in book:
        return book[student], ""
    if settings.address_template is None:
        return None, f"no address: add a row for this student to {settings.addresses}"
    if not PLAIN_ID.fullmatch(student):
        return None, "the id is not a plain name (ASCII letters, digits, . _ -): give it a row in the addresses CSV"
    address = plain_address(settings.address_template.format(student=student))
    return (address, "") if address else (None, "address_template does not make a plain address of this id")


def feedback_digest(page: bytes) -> str:
    """The SHA-256 of a feedback page without its "Generated <time>" line: writing the same feedback again
    (``adl-grade feedback`` run twice) gives the same digest, a different page a different one."""
    return "sha256:" + hashlib.sha256(STAMP.sub(b"Generated by adl-grade", page)).hexdigest()


def build_message(course: Course, settings: MailSettings, assignment: str, to: str, page: bytes) -> EmailMessage:
    """The message: a short plain-text body and the page as an HTML attachment. Nothing of the student's
    (not even the id) is in its headers or its text; the page is attached byte for byte (base64)."""
    sender = _sender(settings.sender)
    assert sender is not None, "mail_settings checked it"
    filename = f"{assignment}-feedback.html"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = Address(addr_spec=to)
    msg["Subject"] = settings.subject.format(course=course.course_id, assignment=assignment)
    msg["Date"] = email.utils.format_datetime(datetime.datetime.now(datetime.UTC))
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(f"Your feedback on {assignment} ({course.course_id}) is attached: {filename}, a web page.\n")
    msg.add_attachment(page, maintype="text", subtype="html", filename=filename)
    return msg


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One message sent (or, in a dry run, written to ``eml``)."""

    student: str
    to: str
    subject: str
    eml: pathlib.Path | None = None


@dataclasses.dataclass
class SendReport:
    """What :func:`send_feedback` did: ``sent`` (in a dry run: would send), ``already_sent`` (the same page
    was sent before), ``skipped`` and ``failed`` as (student, reason)."""

    assignment: str
    dry_run: bool = False
    sent: list[Delivery] = dataclasses.field(default_factory=list)
    already_sent: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def read_ledger(path: pathlib.Path) -> dict[str, list[dict]]:
    """The ledger ``build/mail/<assignment>/sent.json``: {student: [{digest, to, time, message_id}, ...]}."""
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as exc:
        ledger = exc
    if not isinstance(ledger, dict) or not all(isinstance(v, list) for v in ledger.values()):
        what = f"the record of feedback sent {path} is damaged ({printable(ledger, 200)})"
        raise CourseError(f"{what}: restore it from a backup (without it, everyone's feedback is sent again)")
    return ledger


@contextlib.contextmanager
def _locked(folder: pathlib.Path) -> Iterator[None]:
    """One sender per assignment at a time: two at once would both send what neither has recorded yet."""
    with (folder / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CourseError(f"another adl-grade send-feedback {folder.name} is running; wait for it") from None
        yield


def connect(settings: MailSettings) -> smtplib.SMTP:
    """A connection to the server, encrypted as ``security`` says and logged in; CourseError says why not."""
    password = os.environ.get(settings.password_env or "")
    if settings.username is not None and not password:
        raise CourseError(f"set the environment variable {settings.password_env} to the SMTP password")
    where, stage = f"the SMTP server {settings.host}:{settings.port} (security: {settings.security})", "connect to"
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
        host, port, timeout = settings.host, settings.port, settings.timeout
        if settings.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=context, timeout=timeout)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        try:
            if settings.security == "starttls":
                stage = "start TLS with"
                smtp.starttls(context=context)
            if settings.username is not None:
                stage = f"log in as {settings.username} at"
                smtp.login(settings.username, password or "")
        except BaseException:
            smtp.close()
            raise
    except smtplib.SMTPAuthenticationError as exc:
        hint = f"check email.username and the password in ${settings.password_env}"
        raise CourseError(f"{where} refused the login of {settings.username!r} ({_said(exc)}): {hint}") from None
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        hint = "check email.host, email.port and email.security"
        if isinstance(exc, ssl.SSLError):
            hint = "if its certificate comes from your institution's own authority, name that in email.ca_file"
        raise CourseError(f"cannot {stage} {where}: {_said(exc)}; {hint}") from None
    return smtp


def _said(exc: BaseException) -> str:
    """What the server said (or the system's error), one printable line."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return printable(f"{exc.smtp_code} {' '.join(text.split())}", limit=300)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(_said(smtplib.SMTPResponseException(c, m)) for c, m in exc.recipients.values())
    return printable(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}", limit=300)


def send_feedback(
    course: Course, assignment: str, students: list[str] | None = None, dry_run: bool = False, resend: bool = False
) -> SendReport:
    """Email each student their feedback page on ``assignment`` (:func:`build_message`).

    Args:
        course: the course; its settings file has the ``email:`` section (:func:`mail_settings`).
        assignment: the assignment whose feedback pages (``adl-grade feedback``) are sent.
        students: only these students (default: everyone with a feedback page).
        dry_run: connect to nothing, send and record nothing; write each message to
            ``build/mail/<assignment>/outbox/<student>.eml`` instead.
        resend: send pages that were sent before as well.

    Returns:
        A :class:`SendReport`. A message the server refused is in ``failed`` and not recorded; the others go on.
        Configuration, connection and login problems raise CourseError before anything is sent.
    """
    if assignment not in course.assignments():
        raise CourseError(f"unknown assignment {assignment!r}; the course has {course.assignments()}")
    settings, report = mail_settings(course), SendReport(assignment, dry_run)
    found = sorted(course.feedback.glob(f"*/{assignment}/feedback.html"))
    pages = {p.parent.parent.name: p for p in found if p.is_file()}
    if students is None and not pages:
        raise CourseError(f"no feedback pages of {assignment} in {course.feedback}: run adl-grade feedback first")
    chosen = list(pages) if students is None else list(dict.fromkeys(students))
    missing = f"no feedback page: run adl-grade feedback {assignment} first"
    report.skipped += [(s, missing) for s in chosen if s not in pages]
    pages = {s: pages[s] for s in chosen if s in pages}
    folder = course.build / "mail" / assignment
    if dry_run:
        remove_tree(folder / "outbox")
        (folder / "outbox").mkdir(parents=True)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext() if dry_run else _locked(folder):
        _send_all(course, settings, pages, report, resend)
    return report


def _send_all(course: Course, settings: MailSettings, pages: dict, report: SendReport, resend: bool) -> None:
    """Send (or, with ``report.dry_run``, write) each page, recording each message the server accepted."""
    book = address_book(settings)
    folder = course.build / "mail" / report.assignment
    ledger = read_ledger(folder / "sent.json")
    smtp: smtplib.SMTP | None = None
    lost = ""  # why the connection is gone, once it is
    try:
        for student, path in pages.items():
            to, why = recipient(student, book, settings)
            if to is None:
                report.skipped.append((student, why))
                continue
            page = path.read_bytes()
            digest = feedback_digest(page)
            if not resend and any(e.get("digest") == digest for e in ledger.get(student, []) if isinstance(e, dict)):
                report.already_sent.append(student)
                continue
            msg = build_message(course, settings, report.assignment, to, page)
            if report.dry_run:
                hashed = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:16]
                # a plain id never starts with "_": a hashed name cannot be a plain id's file
                eml = folder / "outbox" / f"{student if PLAIN_ID.fullmatch(student) else '_id-' + hashed}.eml"
                eml.write_bytes(bytes(msg))
                report.sent.append(Delivery(student, to, str(msg["Subject"]), eml))
                continue
            if lost:
                report.failed.append((student, f"not sent: {lost}"))
                continue
            smtp = smtp or connect(settings)
            try:
                smtp.send_message(msg, from_addr=msg["From"].addresses[0].addr_spec, to_addrs=[to])
            except (smtplib.SMTPException, OSError) as exc:  # SMTPException is an OSError
                refused = isinstance(exc, smtplib.SMTPException) and not isinstance(exc, smtplib.SMTPServerDisconnected)
                lost = "" if refused else f"the connection to the server was lost ({_said(exc)}); run the command again"
                said = _said(exc)
                report.failed.append((student, f"{to}: the server refused it: {said}" if refused else f"{to}: {lost}"))
                continue
            entry = {"digest": digest, "to": to, "time": msg["Date"], "message_id": msg["Message-ID"]}
            ledger.setdefault(student, []).append(entry)
            write_json(folder / "sent.json", ledger)
            report.sent.append(Delivery(student, to, str(msg["Subject"])))
            log.info("sent the feedback of %s on %s to %s", printable(student), report.assignment, to)
    finally:
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()


def format_report(report: SendReport) -> list[str]:
    """The report as lines for the terminal; every student id through ``printable``."""
    verb = "would send" if report.dry_run else "sent"
    lines = [f"{verb} feedback on {report.assignment} to {len(report.sent)} student(s)"]
    lines += [f"  {printable(d.student)} -> {d.to}: {printable(d.subject)}" for d in report.sent]
    if report.dry_run and report.sent and report.sent[0].eml is not None:
        lines.append(f"  (nothing sent or recorded; the messages are in {report.sent[0].eml.parent})")
    if report.already_sent:
        names = ", ".join(printable(s) for s in report.already_sent)
        lines.append(f"  already sent (the same feedback page), not again: {names} (--resend sends them again)")
    lines += [f"  skipped {printable(s)}: {printable(why, limit=400)}" for s, why in report.skipped]
    lines += [f"  FAILED {printable(s)}: {printable(why, limit=400)}" for s, why in report.failed]
    return lines
