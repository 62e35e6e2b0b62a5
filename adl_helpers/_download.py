"""Private: find a data file in the cache or the mirror, or download it, always checking its sha256.

Every data file the course uses is described by a :class:`FileSpec` (folder, file name, sources, sha256).
A :class:`Source` is a URL that serves the file itself, or a zip archive holding it as a named member.
:func:`find_local` looks in the writable cache (``data_dir()/<folder>/<name>``) and then in the read-only
mirror (``mirror_dir()/<folder>/<name>``); :func:`download` tries the sources in order, streaming each into
the cache folder, until one gives the file with the right sha256. A source that is down, serves something
that is not the file, or a zip without it, is reported in one line and the next one is tried. A file is
only ever used, or stored under its final name, after its sha256 matched. :func:`offline` reads the
``$ADL_DATA_OFFLINE`` switch; while it is on, :func:`download` refuses to run.
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
import zipfile
import zlib

from adl_helpers.settings import MIRROR_ENV, data_dir, mirror_dir

_CHUNK = 1 << 20  # bytes per read while hashing or downloading
_TIMEOUT = 60  # seconds without data before a download gives up
_SIZE_MAX = 1 << 30  # the most bytes a copy of a file whose spec gives no size may have (_size_limit)
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
class Source:
    """One place to download a data file from.

    Args:
        url: the URL to download.
        member: ``None`` when the URL serves the file itself; else the name of the file inside the zip
            archive the URL serves (the file is taken out of it; the archive is not kept).

    Example:
        >>> Source("https://example.org/data.zip", member="data.txt").describe()
        'data.txt in the zip https://example.org/data.zip'
    """

    url: str
    member: str | None = None

    def describe(self) -> str:
        return self.url if self.member is None else f"{self.member} in the zip {self.url}"


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One data file: where it lives in the cache and mirror, where to download it, and its sha256.

    Args:
        folder: folder under the cache and the mirror, e.g. ``"mnist"``.
        name: file name, e.g. ``"t10k-labels-idx1-ubyte.gz"``.
        sources: where to download it, a non-empty tuple of :class:`Source`, tried in order: the primary
            source first, then its fallbacks.
        sha256: sha256 of the file's bytes (lowercase hex).
        size: size in bytes, shown by the progress bar when the server does not send a length. A file taken
            out of a zip may have at most ``2 * size`` bytes and 1 MiB (1 GiB without a size).
        text_sha256: for text files only: also accept a file whose text, with line endings and blank
            lines normalized (see :func:`text_sha256`), has this sha256.

    Raises:
        ValueError: ``sources`` is empty or holds something that is not a :class:`Source`.
    """

    folder: str
    name: str
    sources: tuple[Source, ...]
    sha256: str
    size: int | None = None
    text_sha256: str | None = None

    def __post_init__(self):
        if (
            not isinstance(self.sources, tuple)
            or not self.sources
            or not all(isinstance(source, Source) for source in self.sources)
        ):
            raise ValueError(
                f"FileSpec {self.folder}/{self.name}: sources must be a non-empty tuple of Source, got {self.sources!r}"
            )

    @property
    def url(self) -> str:
        """The primary source's URL."""
        return self.sources[0].url

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


def _size_limit(spec: FileSpec) -> int:
    """The most bytes a copy of ``spec``'s file may have: twice its size and 1 MiB (1 GiB without a size)."""
    return _SIZE_MAX if spec.size is None else 2 * spec.size + (1 << 20)


def _matches(spec: FileSpec, path: pathlib.Path, got: str) -> bool:
    """Whether ``path``, whose bytes have sha256 ``got``, holds ``spec``'s file."""
    if got == spec.sha256:
        return True
    if spec.text_sha256 is None or os.path.getsize(path) > _size_limit(spec):  # never read a huge file whole
        return False
    return text_sha256(path) == spec.text_sha256


def _verified(spec: FileSpec, path: pathlib.Path) -> tuple[bool, str]:
    """Whether ``path`` holds ``spec``'s file, and the sha256 of its bytes."""
    got = file_sha256(path)
    return _matches(spec, path, got), got


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


def _by_hand_step(source: Source) -> str:
    if source.member is None:
        return f"download {source.url} with a browser"
    return f"download {source.url} with a browser and take {source.member} out of the zip"


def by_hand(spec: FileSpec) -> str:
    """How to place ``spec``'s file by hand."""
    primary, *fallbacks = spec.sources
    otherwise = "".join(f" (if that fails, {_by_hand_step(source)} instead)" for source in fallbacks)
    return (
        f"To place the file by hand: {_by_hand_step(primary)}{otherwise} and save it as {spec.cache_path()}, "
        f"or set {MIRROR_ENV} to a folder holding {spec.relpath}."
    )


def unavailable(spec: FileSpec, caller: str, reason: str) -> DatasetUnavailableError:
    """The error for a file that could not be had, with everything needed to fix it by hand."""
    if len(spec.sources) == 1:
        urls = f"URL: {spec.url}"
    else:
        urls = "URLs, tried in order: " + ", ".join(f"({i}) {s.url}" for i, s in enumerate(spec.sources, 1))
    return DatasetUnavailableError(
        f"{caller}: could not get {spec.name} ({reason}). {urls}; expected sha256: "
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

    Tries ``spec.sources`` in order. Each download streams into a temporary file in the cache folder, with
    a progress bar; from a zip, the member is then copied out (a bounded read) into another temporary
    file. Only when the file's sha256 matches is its temporary file renamed (atomically) to the final
    name, so a failed, interrupted or wrong download never leaves a file under that name; the temporary
    files are removed in every case, KeyboardInterrupt included. A source that fails is reported in one
    line, and the next one is tried.

    Raises:
        DatasetUnavailableError: when ``$ADL_DATA_OFFLINE`` is on (nothing is opened), or the cache folder
            cannot be written, or every source failed (each one's reason is given).
    """
    if offline(caller):  # the loaders never get here offline; this makes "never downloads" hold regardless
        raise unavailable(spec, caller, f"{OFFLINE_ENV}=1 forbids downloading")
    dest = spec.cache_path()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise unavailable(spec, caller, f"cannot write to the cache folder {dest.parent}: {err}") from err
    reasons: list[str] = []
    for i, source in enumerate(spec.sources):
        try:
            _fetch(spec, source, dest)
            return dest
        except _SourceFailed as failed:
            reasons.append(str(failed))
            last = failed
            if i + 1 < len(spec.sources):
                print(
                    f"adl_helpers: could not get {spec.name} from {source.describe()} ({failed}); "
                    f"trying {spec.sources[i + 1].describe()}"
                )
    # chained to the last failure's own cause (a URLError, a BadZipFile...), not to the internal _SourceFailed
    if len(reasons) == 1:
        raise unavailable(spec, caller, reasons[0]) from last.__cause__
    listed = "; ".join(f"({i}) {reason}" for i, reason in enumerate(reasons, 1))
    raise unavailable(spec, caller, f"all {len(reasons)} sources failed: {listed}") from last.__cause__


class _SourceFailed(Exception):
    """One source did not give the file; the message says why (the next source may)."""


def _temporary(spec: FileSpec, dest: pathlib.Path, suffix: str) -> pathlib.Path:
    """A new empty file in the cache folder, named so that it is never mistaken for ``spec``'s file."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=suffix, dir=dest.parent)
    except OSError as err:
        raise _SourceFailed(f"cannot write to the cache folder {dest.parent}: {err}") from err
    os.close(fd)
    return pathlib.Path(name)


def _fetch(spec: FileSpec, source: Source, dest: pathlib.Path) -> None:
    """Download ``source`` and store ``spec``'s verified file at ``dest``, or raise :class:`_SourceFailed`."""
    tmp = _temporary(spec, dest, ".part")
    archive = None
    try:
        if source.member is None:
            got = _stream(spec, source, tmp)
            what = "the downloaded file"
        else:
            archive = _temporary(spec, dest, ".zip.part")
            _stream(spec, source, archive)
            got = _extract(spec, source, archive, tmp)
            what = f"{source.member} in the downloaded zip"
        if not _matches(spec, tmp, got):
            raise _SourceFailed(f"{what} has sha256 {got}, not the expected one, so it was discarded")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # nothing left after a successful rename
        if archive is not None:
            archive.unlink(missing_ok=True)


def _stream(spec: FileSpec, source: Source, path: pathlib.Path) -> str:
    """Stream ``source.url`` into ``path`` with a progress bar; return the sha256 of the bytes."""
    from tqdm.auto import tqdm  # deferred: keep `import adl_helpers` cheap

    whole_file = source.member is None
    digest = hashlib.sha256()
    try:
        with open(path, "wb") as out:
            request = urllib.request.Request(source.url, headers={"User-Agent": _USER_AGENT})
            with _urlopen(request, timeout=_TIMEOUT) as response:
                length = response.headers.get("Content-Length") if response.headers else None
                promised = int(length) if length and length.strip().isdigit() else None
                received = 0
                with tqdm(
                    total=promised or (spec.size if whole_file else None),
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=spec.name if whole_file else source.url.rsplit("/", 1)[-1],
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
        raise _SourceFailed(f"the download failed: {type(err).__name__}: {detail}") from err
    return digest.hexdigest()


def _extract(spec: FileSpec, source: Source, archive: pathlib.Path, out_path: pathlib.Path) -> str:
    """Copy ``source.member`` out of the zip ``archive`` into ``out_path`` (a bounded read); return its sha256.

    Raises:
        _SourceFailed: the download is not a readable zip, has no such member, or the member is larger
            than the bound or cannot be decompressed.
    """
    member = source.member
    limit = _size_limit(spec)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise _SourceFailed(f"the download is not a readable zip archive ({type(err).__name__}: {err})") from err
    with zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            held = zf.namelist()
            listed = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise _SourceFailed(f"the downloaded zip has no {member}; it holds {listed or 'nothing'}") from None
        if info.file_size > limit:
            raise _SourceFailed(
                f"{member} in the downloaded zip inflates to {info.file_size:,} bytes, over the "
                f"{limit:,}-byte limit for this file"
            )
        digest = hashlib.sha256()
        size = 0
        try:
            with zf.open(info) as src, open(out_path, "wb") as out:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:  # bounded, whatever the header claims
                        raise _SourceFailed(
                            f"{member} in the downloaded zip inflates past the {limit:,}-byte "
                            f"limit for this file (its header understates it)"
                        )
                    out.write(chunk)
                    digest.update(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError) as err:
            raise _SourceFailed(
                f"cannot take {member} out of the downloaded zip ({type(err).__name__}: {err})"
            ) from err
    return digest.hexdigest()
