"""Tests for adl_helpers._download's sources: several URLs per file (primary, then fallbacks) and files taken
out of a zip, through the real registry entries of banknote (UCI's zip, then UCI's old folder) and
Fashion-MNIST (Keras' HTTPS copy, then Zalando's plain-HTTP one).

Every download comes from a loopback HTTP server on 127.0.0.1 (test_datasets' ``http_origin``): a test
moves the registry entry's URLs onto it, keeping their paths, zip member names and, where it serves the
real bytes, their sha256. No test touches the network.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import urllib.parse
import zipfile

import numpy as np
import pytest
import test_datasets
from test_datasets import (
    MNIST_KEYS,
    REAL_MIRROR,
    assert_idx_result,
    banknote_csv,
    files_under,
    idx_dataset,
    idx_gz,
    one_line,
    sha256,
)

from adl_helpers import _download, datasets
from adl_helpers._download import DatasetUnavailableError, FileSpec, Source

env = test_datasets.env  # test_datasets' fixtures: the data world (cache, mirror, opener log) ...
http_origin = test_datasets.http_origin  # ... and the loopback HTTP server

BANKNOTE = "banknote/data_banknote_authentication.txt"
MEMBER = "data_banknote_authentication.txt"
UCI_ZIP = "https://archive.ics.uci.edu/static/public/267/banknote+authentication.zip"
UCI_OLD = "https://archive.ics.uci.edu/ml/machine-learning-databases/00267/data_banknote_authentication.txt"
ZIP_PATH = urllib.parse.urlsplit(UCI_ZIP).path  # the routes on the loopback server keep UCI's paths
OLD_PATH = urllib.parse.urlsplit(UCI_OLD).path
UCI_SHA256 = "d0539aaed2139ba7a587b3e34fb345ce503ff7d5d33dbf9912d8e195ce425cb9"  # UCI's own bytes (CRLF)
LF_SHA256 = "564ac22b61d87388b1662adee2867e5d382aae78afb0bf5d6745c1a843174b8e"  # the shared mirror's LF copy

KERAS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
ZALANDO = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

REAL_UCI = None if REAL_MIRROR is None else REAL_MIRROR / "banknote" / "uci" / MEMBER
NEEDS_UCI_BYTES = pytest.mark.skipif(
    REAL_UCI is None or not REAL_UCI.is_file(),
    reason="the real UCI banknote bytes are read from the shared mirror's banknote/uci/ folder, and "
    "ADL_DATA_MIRROR does not name a folder holding them (CI always sets ADL_DATA_MIRROR=/work/shared/datasets)",
)

CRLF = banknote_csv().replace(b"\n", b"\r\n") + b"\r\n"  # generated rows, written as UCI writes its file
LF = banknote_csv()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def corrupt_member_data(archive: bytes) -> bytes:
    """The zip with bytes in the middle of its first member's compressed data overwritten (the directory is intact)."""
    info = zipfile.ZipFile(io.BytesIO(archive)).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode())  # writestr adds no extra field
    middle = start + info.compress_size // 2
    return archive[:middle] + bytes(b ^ 0xFF for b in archive[middle : middle + 8]) + archive[middle + 8 :]


@pytest.fixture
def dead_base():
    """The base URL of a loopback port that nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def local_spec(env, key: str, *bases: str, **changes) -> FileSpec:
    """Register the registry's own spec for ``key`` with each source's URL moved to the matching loopback base
    (same path, same zip member), and ``changes`` (e.g. the hashes of generated data)."""
    spec = datasets._FILES[key]
    sources = tuple(
        Source(base + urllib.parse.urlsplit(source.url).path, source.member)
        for base, source in zip(bases, spec.sources, strict=True)
    )
    moved = dataclasses.replace(spec, sources=sources, **changes)
    env.monkeypatch.setitem(datasets._FILES, key, moved)
    return moved


def generated_banknote(env, *bases: str) -> FileSpec:
    """The banknote spec on the loopback server, for the generated rows: CRLF bytes, or the same text as LF."""
    return local_spec(env, BANKNOTE, *bases, sha256=sha256(CRLF), size=len(CRLF), text_sha256=sha256(LF))


def break_source(routes, base: str, dead_base: str, path: str, how: str) -> str:
    """Make the source at ``path`` fail ``how``; return the base URL to give it."""
    if how == "refused":
        return dead_base
    routes[path] = {"404": 404, "500": 500}[how]
    return base


# ----------------------------------------------------------------------------------------------------
# The registry


def test_banknote_sources_are_ucis_zip_then_its_old_folder():
    spec = datasets._FILES[BANKNOTE]

    assert spec.sources == (Source(UCI_ZIP, member=MEMBER), Source(UCI_OLD))
    assert spec.url == UCI_ZIP
    assert (spec.sha256, spec.size, spec.text_sha256) == (UCI_SHA256, 46_400, LF_SHA256)


def test_fashion_mnist_sources_are_https_first_then_zalandos_with_the_same_hashes():
    for key in (key.replace("mnist/", "fashion_mnist/") for key in MNIST_KEYS.values()):
        name = key.split("/")[1]
        spec = datasets._FILES[key]
        assert spec.sources == (Source(KERAS + name), Source(ZALANDO + name)), key
        assert spec.url.startswith("https://")
    assert datasets._FILES["fashion_mnist/train-images-idx3-ubyte.gz"].sha256 == (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    )


@pytest.mark.parametrize("sources", [(), "https://example.org/data.txt", ("https://example.org/data.txt",)])
def test_file_spec_needs_a_tuple_of_sources(sources):
    with pytest.raises(ValueError) as info:
        FileSpec("banknote", MEMBER, sources, UCI_SHA256)
    assert str(info.value) == (
        f"FileSpec banknote/{MEMBER}: sources must be a non-empty tuple of Source, got {sources!r}"
    )


# ----------------------------------------------------------------------------------------------------
# Banknote: UCI's zip, then the old folder


@NEEDS_UCI_BYTES
def test_real_uci_bytes_are_taken_out_of_the_zip_verified_and_cached(env, http_origin, capsys):
    base, routes = http_origin
    real = REAL_UCI.read_bytes()
    assert sha256(real) == UCI_SHA256 and len(real) == 46_400 and real.count(b"\r\n") == 1_371
    routes[ZIP_PATH] = (zip_bytes({MEMBER: real}), None)
    spec = local_spec(env, BANKNOTE, base, base)  # the real hashes and member name; only the host differs

    x, y = datasets.load_banknote(profile="full")

    assert x.shape == (1372, 4) and x.dtype == np.float32 and np.bincount(y).tolist() == [762, 610]
    np.testing.assert_allclose(x[0], [3.6216, 8.6661, -2.8073, -0.44699], rtol=1e-6)
    assert env.opened == [spec.url]  # the zip worked: the old folder was never asked
    assert files_under(env.cache) == [BANKNOTE]  # the file itself; neither the zip nor a temporary file
    assert env.cached(BANKNOTE).read_bytes() == real
    assert capsys.readouterr().out == ""

    env.offline = True
    x_again, _ = datasets.load_banknote(profile="full")  # the cached file is verified and used
    np.testing.assert_array_equal(x_again, x)
    assert env.opened == [spec.url]


@NEEDS_UCI_BYTES
def test_real_lf_copy_from_the_old_folder_is_accepted_when_the_zip_is_down(env, http_origin, capsys):
    base, routes = http_origin
    lf_copy = (REAL_MIRROR / BANKNOTE).read_bytes()
    assert sha256(lf_copy) == LF_SHA256
    routes[ZIP_PATH] = 503
    routes[OLD_PATH] = (lf_copy, None)
    local_spec(env, BANKNOTE, base, base)

    x, y = datasets.load_banknote(profile="full")

    assert x.shape == (1372, 4) and np.bincount(y).tolist() == [762, 610]
    assert env.cached(BANKNOTE).read_bytes() == lf_copy  # the verified file, as it came
    assert one_line(capsys).startswith(f"adl_helpers: could not get {MEMBER} from {MEMBER} in the zip {base}")


@pytest.mark.parametrize("how", ["refused", "404", "500"])
def test_zip_source_down_falls_back_to_the_old_folder(env, http_origin, dead_base, capsys, how):
    base, routes = http_origin
    routes[OLD_PATH] = (CRLF, None)
    spec = generated_banknote(env, break_source(routes, base, dead_base, ZIP_PATH, how), base)

    x, y = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4) and y.tolist() == [0, 0, 1]
    assert env.opened == [source.url for source in spec.sources]
    assert env.cached(BANKNOTE).read_bytes() == CRLF
    assert files_under(env.cache) == [BANKNOTE]
    why = {"refused": "Connection refused", "404": "HTTP Error 404", "500": "HTTP Error 500"}[how]
    line = one_line(capsys)
    assert line.startswith(
        f"adl_helpers: could not get {MEMBER} from {MEMBER} in the zip {spec.url} (the download failed: "
    )
    assert why in line and line.endswith(f"; trying {spec.sources[1].url}")


def test_generated_zip_is_read_when_it_holds_other_files_too(env, http_origin, capsys):
    base, routes = http_origin
    routes[ZIP_PATH] = (zip_bytes({"README.txt": b"about the data", MEMBER: CRLF}), None)
    spec = generated_banknote(env, base, base)

    x, _ = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4)
    assert env.opened == [spec.url]
    assert env.cached(BANKNOTE).read_bytes() == CRLF
    assert capsys.readouterr().out == ""


def test_zip_with_the_wrong_file_is_discarded_and_the_old_folder_tried(env, http_origin, capsys):
    base, routes = http_origin
    wrong = CRLF.replace(b"-1.3971", b"-1.3972")  # a proxy's stale or altered copy
    routes[ZIP_PATH] = (zip_bytes({MEMBER: wrong}), None)
    routes[OLD_PATH] = (CRLF, None)
    spec = generated_banknote(env, base, base)

    x, _ = datasets.load_banknote(profile="full")

    np.testing.assert_allclose(x[2, 0], -1.3971, rtol=1e-6)
    assert env.cached(BANKNOTE).read_bytes() == CRLF
    assert one_line(capsys) == (
        f"adl_helpers: could not get {MEMBER} from {MEMBER} in the zip {spec.url} ({MEMBER} in the downloaded "
        f"zip has sha256 {sha256(wrong)}, not the expected one, so it was discarded); trying {spec.sources[1].url}"
    )


def test_every_source_serving_the_wrong_file_raises_naming_the_real_hash(env, http_origin, capsys):
    base, routes = http_origin
    page = b"<html><body>Please log in to the proxy</body></html>"
    routes[ZIP_PATH] = (page, None)
    routes[OLD_PATH] = (page, None)
    spec = local_spec(env, BANKNOTE, base, base)  # the real hashes

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_banknote(profile="full")

    text = str(info.value)
    cache_path = env.cached(BANKNOTE)
    assert text.startswith(
        f"load_banknote: could not get {MEMBER} (all 2 sources failed: (1) the download is "
        "not a readable zip archive (BadZipFile: File is not a zip file); (2) the downloaded "
        f"file has sha256 {sha256(page)}, not the expected one, so it was discarded). "
    )
    for needle in (
        f"URLs, tried in order: (1) {spec.url}, (2) {spec.sources[1].url}",
        f"expected sha256: {UCI_SHA256}",
        f"cache path: {cache_path}",
        f"To place the file by hand: download {spec.url} with a browser and take {MEMBER} out of "
        f"the zip (if that fails, download {spec.sources[1].url} with a browser instead) and save it "
        f"as {cache_path}, or set ADL_DATA_MIRROR to a folder holding {BANKNOTE}.",
    ):
        assert needle in text, needle
    assert LF_SHA256 not in text  # the one hash to check a copy against is the real file's
    assert files_under(env.cache) == []  # nothing kept: no file, no zip, no temporary file
    assert one_line(capsys).endswith(f"; trying {spec.sources[1].url}")


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (
            zip_bytes({"banknote/data.csv": CRLF, "README.txt": b"x"}),
            f"the downloaded zip has no {MEMBER}; it holds banknote/data.csv, README.txt",
        ),
        (zip_bytes({}), f"the downloaded zip has no {MEMBER}; it holds nothing"),
        (
            zip_bytes({MEMBER: CRLF})[:40],
            "the download is not a readable zip archive (BadZipFile: File is not a zip file)",
        ),
        (corrupt_member_data(zip_bytes({MEMBER: CRLF * 50})), f"cannot take {MEMBER} out of the downloaded zip ("),
    ],
    ids=["member missing", "empty zip", "truncated zip", "corrupt member"],
)
def test_unusable_zip_is_explained_and_the_old_folder_tried(env, http_origin, capsys, archive, reason):
    base, routes = http_origin
    routes[ZIP_PATH] = (archive, None)
    routes[OLD_PATH] = (CRLF, None)
    spec = generated_banknote(env, base, base)

    x, _ = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4)
    assert env.opened == [source.url for source in spec.sources]
    assert f"in the zip {spec.url} ({reason}" in one_line(capsys)
    assert files_under(env.cache) == [BANKNOTE]


def test_unusable_zip_with_the_old_folder_gone_raises_with_both_reasons(env, http_origin):
    base, routes = http_origin
    routes[ZIP_PATH] = (zip_bytes({"other.txt": CRLF}), None)  # the old folder answers 404
    generated_banknote(env, base, base)

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_banknote(profile="full")

    text = str(info.value)
    assert (
        f"(all 2 sources failed: (1) the downloaded zip has no {MEMBER}; it holds other.txt; (2) the download "
        "failed: HTTPError: HTTP Error 404: Not Found)"
    ) in text
    assert f"expected sha256: {sha256(CRLF)}" in text
    assert files_under(env.cache) == []


def test_member_larger_than_the_bound_is_refused_unread(env, http_origin, capsys):
    base, routes = http_origin
    huge = CRLF * (3 * 2**20 // len(CRLF))  # 3 MiB that deflates to a few kB
    routes[ZIP_PATH] = (zip_bytes({MEMBER: huge}), None)
    routes[OLD_PATH] = (CRLF, None)
    spec = generated_banknote(env, base, base)
    limit = 2 * spec.size + 2**20

    datasets.load_banknote(profile="full")

    assert (
        f"({MEMBER} in the downloaded zip inflates to {len(huge):,} bytes, over the {limit:,}-byte limit for this file)"
    ) in one_line(capsys)
    assert env.cached(BANKNOTE).read_bytes() == CRLF


def test_mirror_lf_copy_is_accepted_and_a_wrong_one_reported_with_the_real_hash(env, capsys):
    one_row = b"1,2,3,4,0\r\n"
    env.use_mirror({BANKNOTE: one_row})
    env.offline = True

    x, _ = datasets.load_banknote(profile="smoke")  # the registry's real spec: nothing is downloaded

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"adl_helpers: mirror file {env.tmp / 'mirror' / BANKNOTE} has sha256 "
        f"{sha256(one_row)}, expected {UCI_SHA256}; ignoring it"
    )
    assert "stand-in" in lines[1] and x.shape == (1372, 4)
    assert env.opened == []


def test_generated_mirror_lf_copy_is_accepted_in_place(env, capsys):
    generated_banknote(env, "http://127.0.0.1:9", "http://127.0.0.1:9")
    env.use_mirror({BANKNOTE: LF})
    env.offline = True

    x, y = datasets.load_banknote(profile="full")

    assert x.shape == (3, 4) and y.tolist() == [0, 0, 1]
    assert env.opened == [] and files_under(env.cache) == []
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------------------------------
# Fashion-MNIST: Keras' HTTPS copy, then Zalando's


def serve_fashion(env, routes, base: str, first_base: str, first: str | None):
    """Generated idx files under both sources' paths on the loopback server; the first source's copies
    behave as ``first`` says (None: served; "wrong": another file; "404", "500": that error); registered with
    their hashes. Returns the arrays and the files' bytes by key."""
    arrays = idx_dataset(seed=11)
    blobs = {}
    for part, key in MNIST_KEYS.items():
        key = key.replace("mnist/", "fashion_mnist/")
        blobs[key] = idx_gz(arrays[part])
        spec = local_spec(env, key, first_base, base, sha256=sha256(blobs[key]), size=len(blobs[key]))
        keras_path, zalando_path = (urllib.parse.urlsplit(source.url).path for source in spec.sources)
        routes[zalando_path] = (blobs[key], None)
        if first is None:
            routes[keras_path] = (blobs[key], None)
        elif first == "wrong":
            routes[keras_path] = (idx_gz(np.zeros((2, 28, 28), np.uint8)), None)
        else:
            routes[keras_path] = int(first)
    return arrays, blobs


@pytest.mark.parametrize("how", ["refused", "404", "500", "wrong"])
def test_fashion_mnist_first_source_failing_uses_the_second(env, http_origin, dead_base, capsys, how):
    base, routes = http_origin
    first_base = dead_base if how == "refused" else base
    arrays, blobs = serve_fashion(env, routes, base, first_base, None if how == "refused" else how)

    assert_idx_result(datasets.load_fashion_mnist(profile="full"), arrays)

    specs = [datasets._FILES[key] for key in blobs]
    assert env.opened == [source.url for spec in specs for source in spec.sources]  # each file: first, then second
    assert all(spec.sources[0].url.startswith(first_base + "/tensorflow/tf-keras-datasets/") for spec in specs)
    for key, data in blobs.items():
        assert env.cached(key).read_bytes() == data
    assert files_under(env.cache) == sorted(blobs)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("; trying " + base + "/" in line for line in lines)
    if how == "wrong":
        assert "has sha256" in lines[0] and "not the expected one, so it was discarded" in lines[0]


def test_fashion_mnist_uses_only_the_first_source_when_it_works(env, http_origin, capsys):
    base, routes = http_origin
    arrays, blobs = serve_fashion(env, routes, base, base, None)

    assert_idx_result(datasets.load_fashion_mnist(profile="full"), arrays)

    assert env.opened == [datasets._FILES[key].url for key in blobs]
    assert all("/tensorflow/tf-keras-datasets/" in url for url in env.opened)
    assert capsys.readouterr().out == ""


def test_fashion_mnist_both_sources_down_raises_listing_both(env, dead_base):
    key = "fashion_mnist/train-images-idx3-ubyte.gz"
    for other in MNIST_KEYS.values():
        other = other.replace("mnist/", "fashion_mnist/")
        local_spec(env, other, dead_base, dead_base)

    with pytest.raises(DatasetUnavailableError) as info:
        datasets.load_fashion_mnist(profile="full")

    text = str(info.value)
    spec = datasets._FILES[key]
    assert text.startswith(
        "load_fashion_mnist: could not get train-images-idx3-ubyte.gz (all 2 sources failed: "
        "(1) the download failed: URLError: "
    )
    assert "Connection refused" in text
    assert f"URLs, tried in order: (1) {spec.url}, (2) {spec.sources[1].url}" in text
    assert f"expected sha256: {spec.sha256}" in text
    assert files_under(env.cache) == []


def test_interrupted_zip_download_leaves_nothing(env, monkeypatch):
    generated_banknote(env, "http://127.0.0.1:9", "http://127.0.0.1:9")

    class Interrupted(io.BytesIO):
        headers = {"Content-Length": "1000"}

        def read(self, size=-1):
            raise KeyboardInterrupt

    monkeypatch.setattr(_download, "_urlopen", lambda request, timeout=None: Interrupted())

    with pytest.raises(KeyboardInterrupt):
        datasets.load_banknote(profile="full")

    assert files_under(env.cache) == []  # neither the zip's nor the file's temporary file
