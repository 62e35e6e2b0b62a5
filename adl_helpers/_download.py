"""Private: find a data file in the cache or the mirror, or download it, always checking its sha256.

Every data file the course uses is described by a :class:`FileSpec` (folder, file name, canonical URL,
sha256). :func:`find_local` looks in the writable cache (``data_dir()/<folder>/<name>``) and then in the
read-only mirror (``mirror_dir()/<folder>/<name>``); :func:`download` streams the canonical URL into the
cache. A file is only ever used, or stored under its final name, after its sha256 matched.
:func:`offline` reads the ``$ADL_DATA_OFFLINE`` switch; while it is on, :func:`download` refuses to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.error
import urllib.request

from adl_helpers.settings import MIRROR_ENV, data_dir, mirror_dir

_CHUNK = 1 << 20  # bytes per read while hashing or downloading
_TIMEOUT = 60  # seconds without data before a download gives up
_USER_AGENT = "adl-course-kit/0.1 (Python urllib)"

OFFLINE_ENV = "ADL_DATA_OFFLINE"
_ON = frozenset({"1", "true", "yes"})
_OFF = frozenset({"", "0", "false", "no"})

# The function that opens a URL. A module attribute so that tests can replace it (they never touch the
# network); students get the standard library's opener.
_urlopen = urllib.request.urlopen


class DatasetUnavailableError(RuntimeError):
    """A data file could not be found, downloaded or read.

    The message names the file, its URL, the expected sha256, the cache path, and how to place the file
    by hand.
    """


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One data file: where it lives in the cache and mirror, where to download it, and its sha256.

    Args:
        folder: folder under the cache and the mirror, e.g. ``"mnist"``.
        name: file name, e.g. ``"t10k-labels-idx1-ubyte.gz"``.
        url: canonical download URL.
        sha256: sha256 of the file's bytes (lowercase hex).
        size: size in bytes, shown by the progress bar when the server does not send a length.
        text_sha256: for text files only: also accept a file whose text, with line endings and blank
            lines normalized (see :func:`text_sha256`), has this sha256.
    """

    folder: str
    name: str
    url: str
    sha256: str
    size: int | None = None
    text_sha256: str | None = None

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}"

    def cache_path(self) -> pathlib.Path:
        return data_dir() / self.folder / self.name

    def mirror_path(self) -> pathlib.Path | None:
        mirror = mirror_dir()
        return None if mirror is None else mirror / self.folder / self.name


def file_sha256(path: os.PathLike | str) -> str:
    """The sha256 (lowercase hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def text_sha256(path: os.PathLike | str) -> str:
    """The sha256 of a text file with ``\\r\\n`` read as ``\\n``, lines stripped and blank lines dropped."""
    with open(path, "rb") as f:
        lines = [line.strip() for line in f.read().splitlines()]
    return hashlib.sha256(b"\n".join(line for line in lines if line)).hexdigest()


def _verified(spec: FileSpec, path: pathlib.Path) -> tuple[bool, str]:
    """Whether ``path`` holds ``spec``'s file, and the sha256 of its bytes."""
    got = file_sha256(path)
    if got == spec.sha256:
        return True, got
    if spec.text_sha256 is not None and text_sha256(path) == spec.text_sha256:
        return True, got
    return False, got


def offline(caller: str) -> bool:
    """Whether ``$ADL_DATA_OFFLINE`` forbids downloads: on for 1/true/yes, off when unset, empty or 0/false/no.

    Case and surrounding spaces are ignored.

    Raises:
        ValueError: for any other value, naming it.
    """
    raw = os.environ.get(OFFLINE_ENV, "")
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(
        f"{caller}: {OFFLINE_ENV} must be 1, true or yes to work offline, or unset, empty, 0, false or no to "
        f"allow downloads, got {raw!r}"
    )


def by_hand(spec: FileSpec) -> str:
    """How to place ``spec``'s file by hand."""
    return (
        f"To place the file by hand: download {spec.url} with a browser and save it as "
        f"{spec.cache_path()}, or set {MIRROR_ENV} to a folder holding {spec.relpath}."
    )


def unavailable(spec: FileSpec, caller: str, reason: str) -> DatasetUnavailableError:
    """The error for a file that could not be had, with everything needed to fix it by hand."""
    return DatasetUnavailableError(
        f"{caller}: could not get {spec.name} ({reason}). URL: {spec.url}; expected sha256: "
        f"{spec.sha256}; cache path: {spec.cache_path()}. {by_hand(spec)}"
    )


def find_local(spec: FileSpec) -> pathlib.Path | None:
    """The verified local copy of ``spec``'s file: in the cache, else in the mirror, else ``None``.

    A cached file whose sha256 is wrong is reported and moved aside to ``<name>.corrupt`` (so it is
    fetched again); a mirror file whose sha256 is wrong is reported and skipped (the mirror is never
    written to).
    """
    cached = spec.cache_path()
    if cached.is_file():
        ok, got = _verified(spec, cached)
        if ok:
            return cached
        aside = cached.with_name(cached.name + ".corrupt")
        try:
            os.replace(cached, aside)
            what = f"moved it aside to {aside}"
        except FileNotFoundError:  # another process moved it first
            what = "it was already moved aside"
        print(
            f"adl_helpers: cached file {cached} has sha256 {got}, expected {spec.sha256}; "
            f"{what} and fetching {spec.name} again"
        )
    mirrored = spec.mirror_path()
    if mirrored is not None and mirrored.is_file():
        ok, got = _verified(spec, mirrored)
        if ok:
            return mirrored
        print(
            f"adl_helpers: mirror file {mirrored} has sha256 {got}, expected {spec.sha256}; ignoring it "
            f"(replace it in the mirror with a good copy)"
        )
    return None


def download(spec: FileSpec, caller: str) -> pathlib.Path:
    """Download ``spec``'s file into the cache and return its path.

    The bytes stream into a temporary file in the cache folder, with a progress bar, and are hashed on
    the way. Only when the sha256 matches is the temporary file renamed (atomically) to its final name,
    so a failed, interrupted or wrong download never leaves a file under that name; the temporary file
    is removed in every case, KeyboardInterrupt included.

    Raises:
        DatasetUnavailableError: when ``$ADL_DATA_OFFLINE`` is on (nothing is opened), or the download fails,
            or the sha256 does not match.
    """
    if offline(caller):  # the loaders never get here offline; this makes "never downloads" hold regardless
        raise unavailable(spec, caller, f"{OFFLINE_ENV}=1 forbids downloading")
    from tqdm.auto import tqdm  # deferred: keep `import adl_helpers` cheap

    dest = spec.cache_path()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=dest.parent)
    except OSError as err:
        raise unavailable(spec, caller, f"cannot write to the cache folder {dest.parent}: {err}") from err
    tmp = pathlib.Path(tmp_name)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                request = urllib.request.Request(spec.url, headers={"User-Agent": _USER_AGENT})
                with _urlopen(request, timeout=_TIMEOUT) as response:
                    length = response.headers.get("Content-Length") if response.headers else None
                    promised = int(length) if length and length.strip().isdigit() else None
                    received = 0
                    with tqdm(
                        total=promised or spec.size, unit="B", unit_scale=True, unit_divisor=1024, desc=spec.name
                    ) as bar:
                        while chunk := response.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            if promised is not None and received != promised:
                raise ConnectionError(f"the connection closed after {received:,} of {promised:,} bytes")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            detail = str(err) or "connection closed"
            raise unavailable(spec, caller, f"the download failed: {type(err).__name__}: {detail}") from err
        got = digest.hexdigest()
        if got != spec.sha256 and not (spec.text_sha256 and text_sha256(tmp) == spec.text_sha256):
            raise unavailable(
                spec, caller, f"the downloaded file has sha256 {got}, not the expected one, so it was discarded"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # nothing left after a successful rename
    return dest
