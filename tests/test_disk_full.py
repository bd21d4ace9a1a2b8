"""A full output disk, for real: a small tmpfs as --outdir (root only; skipped where
it cannot be mounted). At every fill level the run stops with one clear error, no
traceback, no .part file and no half-written row, and the report names exactly the
files on the disk."""

import csv
import lzma
import re
import resource
import struct
import subprocess
import zlib

import pytest

from conftest import CLI_PYTHON, SCRIPT
from dumpkit import build_dump, corpus_file, noise, sha256

PAGE = 4096


def run(dump, out, preexec_fn=None):
    return subprocess.run([CLI_PYTHON, str(SCRIPT), "-q", "-i", str(dump), "-o", str(out)],
                          capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn)


def is_sheet(path):
    """index.html, index-2.html, ...: the contact sheet, whole or not there."""
    return path.parent.name != "damaged" and re.match(r"index(-\d+)?\.html\Z", path.name)


def consistent(out):
    """The promises after any stop: rows whole, rows = files, no .part. The rows."""
    reports = list(out.glob("recovercr3-report*.csv"))
    assert len(reports) == 1
    text = reports[0].read_bytes()
    assert text.endswith(b"\n")                                     # no half row
    rows = list(csv.DictReader(text.decode("utf-8").splitlines()))
    assert all(r["status"] in ("complete", "truncated", "damaged", "not saved",
                               "scan finished", "interrupted") for r in rows)
    named = sorted(r["file"] for r in rows if r["file"])
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and p not in reports and not is_sheet(p)
                     and p.name not in ("recovercr3.log", ".recovercr3-state"))
    assert named == on_disk
    assert not list(out.rglob("*.part"))
    return [r for r in rows if r["status"] not in ("scan finished", "interrupted")]


@pytest.fixture(scope="module")
def many_small(tmp_path_factory):
    """80 small JPEGs, one per 4 sectors: each file takes a page of the tmpfs, and
    the report grows a page every ~45 rows."""
    jpeg = corpus_file("exiftool_Canon.jpg")            # 2,697 bytes
    path = tmp_path_factory.mktemp("card") / "card.img"
    build_dump(path, *([4096 - 512, jpeg, 4 * 512 - len(jpeg) % 512 + 512] * 80))
    return path, jpeg


@pytest.mark.parametrize("pages", range(20, 44))
def test_disk_full_at_every_moment(tmpfs, many_small, pages):
    dump, jpeg = many_small
    out = tmpfs(pages * PAGE)
    p = run(dump, out)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1 and errors[0].startswith("[ERROR] the output disk is full: the "
                                                     "scan stopped at offset")
    assert "Free some space, or use another disk, and run again" in errors[0]
    rows = consistent(out)
    saved = [r for r in rows if r["file"]]
    assert saved and all(sha256((out / r["file"]).read_bytes()) == sha256(jpeg) for r in saved)
    assert p.stderr.splitlines()[-1] == "[INFO] Restored %d file(s)" % len(saved)


def cut_7z_of(content):
    """A 7z cut before its end header whose LZMA stream holds content."""
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 26, "lc": 3, "lp": 0, "pb": 2}]
    stream = lzma.compress(content, format=lzma.FORMAT_RAW, filters=filters)
    fields = struct.pack("<QQI", len(stream) + 1000, 100, 0)
    start = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(fields)) + fields
    return start + stream


def test_disk_full_inside_a_7z_salvage(tmpfs, tmp_path):
    # The salvaged stream holds a 4 MB movie and fills the disk while it is carved.
    movie = corpus_file("gopro_karma.mp4")
    archive = cut_7z_of(movie + noise(100000))
    build_dump(tmp_path / "card.img", 4096, archive, 4096 - len(archive) % 512,
               corpus_file("mei_sample.3gp"), 512)
    out = tmpfs(len(archive) + len(movie) + 200 * PAGE)
    p = run(tmp_path / "card.img", out)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert sum(line.startswith("[ERROR]") for line in p.stderr.splitlines()) == 1
    assert "[ERROR] the output disk is full" in p.stderr
    assert not list(out.rglob("*.part"))


def test_file_too_large_inside_a_7z_salvage_costs_that_file_alone(tmp_path):
    small = corpus_file("mei_sample.3gp")
    archive = cut_7z_of(small + noise(1 << 20) + bytes(2 << 20))  # 1 MB packed, 3 MB out;
    # the limit is 2 MB (and 64 times the packed size, the salvage cap, is more)
    build_dump(tmp_path / "card.img", 4096, archive, 4096 - len(archive) % 512, small, 512)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    out = tmp_path / "out"
    p = run(tmp_path / "card.img", out, preexec_fn=limit_file_size)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "[ERROR] cannot write %s: File too large" % (
        out / "damaged" / "img1.7z.salvaged") in p.stderr
    rows = consistent(out)
    assert [r["file"] for r in rows] == ["damaged/img1.7z", "img2.3gp"]
    assert sha256((out / "img2.3gp").read_bytes()) == sha256(small)
