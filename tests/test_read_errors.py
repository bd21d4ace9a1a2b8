"""A dump that cannot be read to its end - a bad sector under the memory map, a file
that shrinks - ends the run with one clear error, the summary and a report of every
file found before it: never a hang, never a silent death. (Read carefully, as a block
device always is, a bad sector is zeros instead: tests/test_careful_read.py.)

The seam: a child process patches the scan processes' region function before the
run (they are forked from it), to die of a real SIGBUS at a chosen region - by
sending it, or by truncating the dump so that the map's next page really faults.
A FUSE file system whose middle fails every read (tests/failing_fuse.py), and a
device-mapper "error" target, give a real EIO under the map where they work.
"""

import multiprocessing
import os
import shutil
import subprocess
import sys

import pytest

import recovercr3 as r
from conftest import CLI_PYTHON, PROJECT, failing_mount, read_outcome
from dumpkit import build_dump, corpus_file, sha256

FAILING_RUN = """
import os, signal, sys
sys.path.insert(0, {project!r})
import recovercr3
real = recovercr3._scan_region

def failing(region):
    if region[0] >= {at}:
        {action}
    return real(region)

recovercr3._scan_region = failing
sys.exit(recovercr3._main(sys.argv[1:]))
"""
SIGBUS = "os.kill(os.getpid(), signal.SIGBUS)"
SHRINK = "os.truncate({dump!r}, {at})"

pytestmark = pytest.mark.skipif(multiprocessing.get_start_method() != "fork",
                                reason="the seam reaches the scan processes by fork")


@pytest.fixture
def card(tmp_path, eos_r_cr3):
    """Four regions; files in the first two, files in the last two."""
    movie = corpus_file("gopro_karma.mp4")
    build_dump(tmp_path / "card.img", 4096, eos_r_cr3, 4096, movie,
               2 * r.SCAN_REGION - len(eos_r_cr3) - len(movie) - 8192 + 512, movie,
               r.SCAN_REGION, movie, r.SCAN_REGION - len(movie) - 1024)
    return tmp_path / "card.img", [eos_r_cr3, movie]


def failing_run(tmp_path, dump, action, at, *options):
    code = FAILING_RUN.format(project=str(PROJECT), at=at,
                              action=action.format(dump=str(dump), at=at))
    return subprocess.run([CLI_PYTHON, "-c", code, "-i", str(dump), "-o", str(tmp_path / "out")]
                          + list(options), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_scan_process_dying_of_sigbus_ends_the_run_cleanly(tmp_path, card, jobs):
    dump, (cr3, movie) = card
    at = 3 * r.SCAN_REGION
    p = failing_run(tmp_path, dump, SIGBUS, at, "--jobs", jobs)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert ("[ERROR] a scan process died while it searched offsets {:,d} to {:,d} of {}, which "
            "read without error (was it killed, or out of memory?); the scan stopped at offset "
            "{:,d} of {:,d} B".format(at, at + r.SCAN_REGION, dump, at,
                                      os.path.getsize(dump))) in lines
    assert lines[-1] == "[INFO] Restored 3 file(s)"
    out = read_outcome(1, p.stderr, tmp_path / "out")
    assert out.shas() == [sha256(cr3), sha256(movie), sha256(movie)]
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == [
        ".recovercr3-state", "img1.cr3", "img2.mp4", "img3.mp4", "index.html", "recovercr3-report.csv",
        "recovercr3.log"]


@pytest.mark.parametrize("careful", [[], ["--careful-read"]], ids=["mapped", "careful"])
def test_a_dump_that_shrinks_during_the_run(tmp_path, card, careful):
    dump, (cr3, movie) = card
    size = os.path.getsize(dump)
    at = 3 * r.SCAN_REGION
    p = failing_run(tmp_path, dump, SHRINK, at, "--jobs", "1", *careful)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert ("[WARNING] {} shrank from {:,d} to {:,d} B while it was read: a dump must not "
            "change during a run; the scan ends at offset {:,d}, its new end".format(
                dump, size, at, at)) in p.stderr
    assert "[ERROR]" not in p.stderr
    out = read_outcome(1, p.stderr, tmp_path / "out")
    assert out.shas() == [sha256(cr3), sha256(movie), sha256(movie)]


def test_a_read_error_while_copying_is_read_carefully_and_costs_that_file_alone(
        tmp_path, card, monkeypatch):
    # The main process's reads fail over the CR3 (the scan processes read it whole):
    # the copy reads it carefully, sector by sector, and saves what it is, zeros,
    # as damaged; every other file is whole, and the run ends with a full report.
    dump, (cr3, movie) = card
    real_pread = os.pread

    def failing_pread(fd, size, offset):
        if 4096 <= offset < 4096 + len(cr3):
            raise OSError(5, "Input/output error")
        return real_pread(fd, size, offset)

    def failing_preadv(fd, buffers, offset):        # copies read into one buffer
        if 4096 <= offset < 4096 + len(cr3):
            raise OSError(5, "Input/output error")
        return real_preadv(fd, buffers, offset)

    real_preadv = getattr(os, "preadv", None)
    monkeypatch.setattr(r, "pread", failing_pread)
    if real_preadv is not None:
        monkeypatch.setattr(r.os, "preadv", failing_preadv)
    monkeypatch.setattr(r.os, "sendfile", lambda out, fd, offset, count: os.write(
        out, failing_pread(fd, count, offset)))
    from conftest import recover
    out = recover(dump, tmp_path / "out")
    assert out.rc == 0, out.log
    assert out.log.count("(a bad sector, or a failing card or share): it is read carefully "
                         "from there on") == 1
    # the CR3, and the thumbnail its scan process saw whole, are what the copy read
    assert [(row["type"], row["status"]) for row in out.rows] == [
        ("cr3", "damaged"), ("jpg", "damaged"), ("mp4", "complete"), ("mp4", "complete"),
        ("mp4", "complete")]
    assert out.rows[0]["detail"].startswith("unreadable sectors at +0..+%d;" % len(cr3))
    assert out.shas() == [sha256(bytes(len(cr3))), out.shas()[1]] + [sha256(movie)] * 3
    assert set((tmp_path / "out" / out.rows[1]["file"]).read_bytes()) == {0}


@pytest.fixture
def erroring_device(tmp_path):
    """/dev/mapper/...: 20 MiB of a dump, 1 MiB that fails every read, 13 MiB more."""
    if os.geteuid() != 0 or not shutil.which("dmsetup") or not shutil.which("losetup"):
        pytest.skip("needs root, dmsetup and losetup")
    image = tmp_path / "card.img"
    movie = corpus_file("gopro_karma.mp4")
    build_dump(image, 4096, movie, (34 << 20) - 4096 - len(movie))
    loop = subprocess.run(["losetup", "--find", "--show", "--read-only", str(image)],
                          capture_output=True, text=True)
    if loop.returncode:
        pytest.skip("losetup failed: %s" % loop.stderr.strip())
    device = loop.stdout.strip()
    name = "recovercr3-test-%d" % os.getpid()
    table = "0 40960 linear %s 0\n40960 2048 error\n43008 26624 linear %s 43008\n" % (
        device, device)
    made = subprocess.run(["dmsetup", "create", name, "--readonly"], input=table,
                          capture_output=True, text=True)
    try:
        if made.returncode:
            pytest.skip("dmsetup failed: %s" % made.stderr.strip())
        yield "/dev/mapper/" + name, movie
    finally:
        if not made.returncode:
            subprocess.run(["dmsetup", "remove", name], capture_output=True)
        subprocess.run(["losetup", "--detach", device], capture_output=True)


def test_a_device_with_a_bad_area_is_read_around_it(tmp_path, erroring_device):
    # A block device is read carefully: its bad MiB is zeros, the scan goes on.
    device, movie = erroring_device
    p = subprocess.run([sys.executable, str(PROJECT / "recovercr3.py"), "-i", device,
                        "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "Reading %s carefully (a block device)" % device in p.stderr
    assert "[WARNING] 1,048,576 B of %s could not be read (1 area(s)" % device in p.stderr
    assert read_outcome(0, p.stderr, tmp_path / "out").shas() == [sha256(movie)]


@pytest.fixture
def failing_file(tmp_path):
    """A dump served by FUSE: 20 MiB that read, 1 MiB that fails every read, 13 MiB more."""
    backing = tmp_path / "backing.img"
    movie = corpus_file("gopro_karma.mp4")
    build_dump(backing, 4096, movie, (34 << 20) - 4096 - len(movie))
    with failing_mount(tmp_path, backing, 20 << 20, 21 << 20) as dump:
        yield dump, movie


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_file_with_a_bad_area_is_read_carefully_from_there_on(tmp_path, failing_file, jobs):
    # A plain file (no --careful-read) whose scan process died over a bad MiB: read
    # carefully from there on, the bad MiB is zeros and the run ends whole (exit 0).
    dump, movie = failing_file
    p = subprocess.run([CLI_PYTHON, str(PROJECT / "recovercr3.py"), "-i", str(dump), "-o",
                        str(tmp_path / "out"), "--jobs", jobs],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert ("[WARNING] {} cannot be read at offset {:,d} (a bad sector, or a failing card or "
            "share): it is read carefully from there on".format(dump, 20 << 20)) in p.stderr
    assert "[WARNING] 1,048,576 B of %s could not be read (1 area(s)" % dump in p.stderr
    assert read_outcome(0, p.stderr, tmp_path / "out").shas() == [sha256(movie)]
