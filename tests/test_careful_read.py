"""Careful reading (--careful-read, and always for a block device): a sector that
cannot be read is zeros, the scan goes on, and every file over such a sector is
damaged and says where.

The seam is the reader itself: recovercr3.pread (os.pread, where there is one)
fails (EIO) on chosen sectors, in the process that reads, so the scan processes see
those sectors as what the reader gave (zeros), through their guarded map - the
carving is the real one.
"""

import errno
import os
import shutil
import subprocess
import sys

import pytest

import recovercr3 as r
from conftest import PROJECT, failing_mount, read_outcome, recover
from dumpkit import CAMERA_FOLDERS, MtoolsCard, build_dump, corpus_file, sha256


def aligned(data):
    return -len(data) % 512 + 4096


@pytest.fixture
def card(tmp_path):
    """A JPEG, a movie, a JPEG; sector-aligned."""
    first, movie, second = (corpus_file("mei_Canon_PowerShot_G11.jpg"),
                            corpus_file("gopro_karma.mp4"), corpus_file("mei_Nikon_D70.jpg"))
    at = build_dump(tmp_path / "card.img", 4096, first, aligned(first), movie, aligned(movie),
                    second, 4096)
    return tmp_path / "card.img", at, (first, movie, second)


def failing_reads(monkeypatch, bad):
    """pread fails with EIO on any read that touches a sector in bad."""
    real = os.pread

    def pread(fd, size, offset):
        first = offset - offset % 512
        if any(sector in bad for sector in range(first, offset + size, 512)):
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, size, offset)
    monkeypatch.setattr(r, "pread", pread)      # the reads at an offset


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_files_before_across_and_after_unreadable_sectors(tmp_path, card, monkeypatch, jobs):
    dump, at, (first, movie, second) = card
    inside = at[1] + (1 << 20)                          # 3 sectors in the movie's mdat
    between = at[2] - 1024                              # and one in nobody's bytes
    failing_reads(monkeypatch, {inside, inside + 512, inside + 1024, between})
    out = recover(dump, tmp_path / "out", "--careful-read", "--jobs", jobs)
    assert out.rc == 0, out.log
    rows = {int(row["offset"]): row for row in out.rows}
    assert sorted(rows) == at                           # every file, in one full report
    assert [rows[a]["status"] for a in at] == ["complete", "damaged", "complete"]
    assert rows[at[1]]["detail"].startswith("unreadable sectors at +%d..+%d" % (
        inside - at[1], inside - at[1] + 1536))
    holed = movie[:inside - at[1]] + bytes(1536) + movie[inside - at[1] + 1536:]
    assert out.shas() == [sha256(first), sha256(holed), sha256(second)]
    assert ("[WARNING] 2,048 B of %s could not be read (2 area(s), " % dump) in out.log
    assert "Reading %s carefully: a sector that cannot be read is zeros" % dump in out.log


def test_careful_reading_of_a_healthy_dump_changes_nothing(tmp_path, card):
    dump, at, files = card
    out = recover(dump, tmp_path / "out", "--careful-read")
    assert out.rc == 0 and [row["status"] for row in out.rows] == ["complete"] * 3
    assert out.shas() == [sha256(data) for data in files]
    assert "could not be read" not in out.log


def test_a_block_device_is_read_carefully(tmp_path, card):
    if os.geteuid() != 0 or not shutil.which("losetup"):
        pytest.skip("needs root and losetup")
    dump, at, files = card
    loop = subprocess.run(["losetup", "--find", "--show", "--read-only", str(dump)],
                          capture_output=True, text=True)
    if loop.returncode:
        pytest.skip("losetup failed: %s" % loop.stderr.strip())
    device = loop.stdout.strip()
    try:
        p = subprocess.run([sys.executable, str(PROJECT / "recovercr3.py"), "-i", device,
                            "-o", str(tmp_path / "out")], capture_output=True, text=True,
                           timeout=120)
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True)
    assert p.returncode == 0, p.stderr
    assert "Reading %s carefully (a block device)" % device in p.stderr
    assert read_outcome(0, p.stderr, tmp_path / "out").shas() == [sha256(d) for d in files]


def test_the_pages_of_unreadable_sectors_are_guarded_in_the_map(tmp_path):
    # What makes the scan processes safe: a guarded page reads as what was given.
    path = tmp_path / "dump.img"
    path.write_bytes(bytes(range(256)) * 64)            # 16 KiB
    import mmap
    with open(str(path), "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    guard = r.PageGuard(buf)
    if guard.libc is None:
        pytest.skip("no ctypes or MAP_FIXED here")
    page = mmap.PAGESIZE
    given = b"\xaa" * 512 + bytes(page - 512)
    guard.apply({page: given})
    assert buf[page:2 * page] == given
    assert buf[:page] == (bytes(range(256)) * 64)[:page]        # the others untouched
    buf.madvise(mmap.MADV_DONTNEED, 0, 2 * page)
    guard.refill(0, 2 * page)
    assert buf[page:2 * page] == given


@pytest.fixture
def failing_card(tmp_path):
    """A card served by FUSE whose 20th MiB fails every read (a real EIO, under the
    map too): a movie before it, a JPEG across its start, a movie after it."""
    movie, jpeg = corpus_file("gopro_karma.mp4"), corpus_file("mei_Canon_EOS_5D.jpg")
    bad = (20 << 20, 21 << 20)
    jpeg_at = bad[0] - (1 << 19)
    backing = tmp_path / "backing.img"
    at = build_dump(backing, 4096, movie, jpeg_at - 4096 - len(movie), jpeg,
                    (22 << 20) - jpeg_at - len(jpeg), movie, 4 << 20)
    with failing_mount(tmp_path, backing, *bad) as dump:
        yield dump, at, (movie, jpeg), bad


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_really_failing_file_read_carefully_gives_every_file(tmp_path, failing_card, jobs):
    dump, at, (movie, jpeg), bad = failing_card
    p = subprocess.run([sys.executable, str(PROJECT / "recovercr3.py"), "-i", str(dump),
                        "-o", str(tmp_path / "out"), "--careful-read", "--jobs", jobs],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert ("[WARNING] 1,048,576 B of %s could not be read (1 area(s), " % dump) in p.stderr
    out = read_outcome(0, p.stderr, tmp_path / "out")
    rows = {int(row["offset"]): row for row in out.rows}
    assert [rows[a]["status"] for a in at] == ["complete", "damaged", "complete"]
    assert rows[at[1]]["detail"].startswith("unreadable sectors at +%d..+%d" % (
        bad[0] - at[1], bad[1] - at[1]))
    holed = jpeg[:bad[0] - at[1]] + bytes(bad[1] - bad[0]) + jpeg[bad[1] - at[1]:]
    assert [sha256((tmp_path / "out" / rows[a]["file"]).read_bytes()) for a in at] == [
        sha256(movie), sha256(holed), sha256(movie)]


def test_read_carefully_the_folders_are_found_in_the_scans_own_pass(tmp_path):
    # The folders are sieved in the scan's own pass: the names are those of a run
    # that reads the card twice (every folder here lies before its files).
    if not all(shutil.which(tool) for tool in ("mkfs.vfat", "mcopy", "mmd", "mdel")):
        pytest.skip("dosfstools or mtools not installed")
    card = MtoolsCard(tmp_path / "card.img", folders=CAMERA_FOLDERS)
    files = {"DCIM/100CANON/IMG_0001.JPG": corpus_file("mei_Canon_PowerShot_G11.jpg"),
             "DCIM/100CANON/MVI_0002.MP4": corpus_file("gopro_karma.mp4")}
    for path, data in files.items():
        card.copy(path, data)
    once = recover(card.path, tmp_path / "once", "--careful-read", "--name-by", "original")
    twice = recover(card.path, tmp_path / "twice", "--name-by", "original")
    assert [row["original_name"] for row in once.rows] == list(files)
    assert [row["file"] for row in once.rows] == [row["file"] for row in twice.rows]
    assert once.shas() == twice.shas() == [sha256(data) for data in files.values()]
    assert "its folders are read as the scan goes" in once.log
