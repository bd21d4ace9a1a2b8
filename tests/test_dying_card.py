"""A dying card read the way it happens in life: through the kernel.

A FUSE file system serves a 64 MiB card whose two bad areas fail every read that
touches them (tests/failing_fuse.py): 64 KiB at a 4 KiB boundary in the middle of a
MiB, and 128 KiB across the boundary of two MiB. Neither is aligned to the careful
reader's blocks, so a read over one comes back short (the bytes before the error),
as a failing card's does, not with an error. The card is read as a plain file (no
--careful-read: the tool must find out for itself) and as a read-only loop device
made over that file (a real block device, read carefully from the start). Every
file away from the bad areas comes back byte for byte, every file over one is
damaged and says where, and the run ends with a full report.

A short-read seam (pread returning fewer bytes, where hypothesis chooses) tests
the careful reader alone.
"""

import errno
import os
import shutil
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import recovercr3 as r
from conftest import CLI_PYTHON, SCRIPT, failing_mount, read_outcome
from dumpkit import build_dump, corpus_file, sha256

MiB = 1 << 20
BAD = [(9 * MiB + 400 * 1024, 9 * MiB + 464 * 1024),      # 64 KiB inside a MiB
       (40 * MiB - 64 * 1024, 40 * MiB + 64 * 1024)]      # 128 KiB across two
NAMES = ["mei_Canon_EOS_5D.jpg", "mei_sample.3gp", "exiv2_Canon.HIF", "gopro_karma.mp4",
         "mei_Nikon_D70.jpg", "exiv2_sample_640x360.mov", "exiftool_Canon.jpg",
         "mei_Canon_EOS_1000D.jpg", "mei_Canon_PowerShot_G11.jpg",
         "exiv2_Free_Test_Data_500KB_WAV.wav"]
WHERE = [1 * MiB, 4 * MiB, 6 * MiB, 8 * MiB, 16 * MiB, 22 * MiB, 30 * MiB, 39 * MiB,
         50 * MiB, 60 * MiB]                    # the MP4 (8 MiB) and a JPEG (39 MiB) are hit


@pytest.fixture(scope="module")
def backing(tmp_path_factory):
    """The card's bytes: ten files of every family, on 4 KiB boundaries, noise between."""
    files = [corpus_file(name) for name in NAMES]
    parts, pos = [], 0
    for at, data in zip(WHERE, files):
        parts += [at - pos, data]
        pos = at + len(data)
    path = tmp_path_factory.mktemp("dying") / "backing.img"
    build_dump(path, *parts, 64 * MiB - pos, seed=25)
    return path, files


def over_bad(at, data):
    return [(start, end) for start, end in BAD if start < at + len(data) and end > at]


def check_run(p, dump, out, files):
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    bad_bytes = sum(end - start for start, end in BAD)
    assert ("[WARNING] {:,d} B of {} could not be read (2 area(s), ".format(bad_bytes, dump)
            in p.stderr), p.stderr
    outcome = read_outcome(0, p.stderr, out)
    rows = {int(row["offset"]): row for row in outcome.rows}
    assert sorted(rows) == WHERE, p.stderr
    for at, data in zip(WHERE, files):
        row = rows[at]
        copy = (out / row["file"]).read_bytes()
        holes = over_bad(at, data)
        if not holes:
            assert (row["status"], sha256(copy)) == ("complete", sha256(data)), row
            continue
        (start, end), = holes
        assert row["status"] == "damaged" and row["detail"].startswith(
            "unreadable sectors at +%d..+%d" % (start - at, end - at)), row
        assert copy == data[:start - at] + bytes(end - start) + data[end - at:]
    with open(str(out / "recovercr3-report.csv")) as f:
        assert f.read().splitlines()[-1].split(",")[4] == r.SCAN_FINISHED
    return outcome


@pytest.mark.parametrize("jobs", [["--jobs", "1"], []])
def test_a_failing_file_read_plainly_turns_careful_and_gives_every_file(tmp_path, backing,
                                                                      jobs):
    path, files = backing
    with failing_mount(tmp_path, path, *[bound for pair in BAD for bound in pair]) as dump:
        p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", str(dump), "-o",
                            str(tmp_path / "out")] + jobs,
                           capture_output=True, text=True, timeout=300)
    check_run(p, dump, tmp_path / "out", files)
    assert "(a bad sector, or a failing card or share): it is read carefully from there on" \
        in p.stderr
    assert p.stderr.count("it is read carefully from there on") == 1


@pytest.fixture
def loop_over(tmp_path):
    """loop_over(file) -> a read-only loop device over file; detached afterwards."""
    made = []

    def make(path):
        if os.geteuid() != 0 or not shutil.which("losetup"):
            pytest.skip("a loop device needs root and losetup")
        p = subprocess.run(["losetup", "--find", "--show", "--read-only", str(path)],
                           capture_output=True, text=True)
        if p.returncode:
            pytest.skip("losetup failed: %s" % p.stderr.strip())
        made.append(p.stdout.strip())
        return made[-1]

    yield make
    for device in made:
        subprocess.run(["losetup", "--detach", device], capture_output=True)


@pytest.mark.parametrize("jobs", [["--jobs", "1"], []])
def test_a_loop_device_over_a_failing_file_gives_every_file(tmp_path, backing, loop_over,
                                                           jobs):
    path, files = backing
    with failing_mount(tmp_path, path, *[bound for pair in BAD for bound in pair]) as dump:
        device = loop_over(dump)
        try:
            p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", device, "-o",
                                str(tmp_path / "out")] + jobs,
                               capture_output=True, text=True, timeout=300)
        finally:
            subprocess.run(["losetup", "--detach", device], capture_output=True)
    assert "Reading %s carefully (a block device)" % device in p.stderr
    check_run(p, device, tmp_path / "out", files)


# The careful reader alone, through a seam that reads as a dying card does: the bytes
# before the first bad sector of a read, then an error at the next read.

def short_reads(monkeypatch, bad, calls):
    real = os.pread

    def pread(fd, size, offset):
        calls.append((offset, size))
        for start, end in sorted(bad):
            if offset < end and offset + size > start:
                if offset >= start:
                    raise OSError(errno.EIO, "Input/output error")
                return real(fd, start - offset, offset)     # short: up to the bad one
        return real(fd, size, offset)
    monkeypatch.setattr(r, "pread", pread)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 4 * MiB // 512 - 1), st.integers(1, 300)),
                min_size=1, max_size=3),
       st.integers(0, 4 * MiB - 1), st.integers(1, 2 * MiB), st.booleans())
def test_a_short_read_is_a_bad_sector_never_shifted_bytes(tmp_path, monkeypatch, areas, offset,
                                                          size, careful):
    data = bytes(range(256)) * (4 * MiB // 256)
    path = tmp_path / "dump.img"
    if not path.exists():
        path.write_bytes(data)
    bad = [(sector * 512, min(sector * 512 + count * 512, len(data)))
           for sector, count in areas]
    calls = []
    monkeypatch.undo()
    short_reads(monkeypatch, bad, calls)
    told = []
    dump = r.Dump(str(path), careful=careful)
    dump.on_careful = told.append
    calls.clear()                                       # what opening it read
    try:
        got = dump.read(offset, size)
    finally:
        os.close(dump.fd)
    want = bytearray(data[offset:offset + size])
    unreadable = set()
    for start, end in bad:
        for sector in range(start, end, 512):
            unreadable.add(sector)
    touched = {sector for sector in unreadable
               if sector < offset + size and sector + 512 > offset}
    for sector in touched:
        low, high = max(sector, offset), min(sector + 512, offset + size)
        want[low - offset:high - offset] = bytes(high - low)
    assert got == bytes(want)                           # in place: nothing shifted
    assert dump.unreadable == touched
    assert dump.careful == (careful or bool(touched))
    assert len(told) == (0 if careful or not touched else 1)   # said once
    assert (dump.failed_reads >= 1) == bool(touched)
    read_twice = [call for call in calls if any(call[0] <= sector < call[0] + call[1]
                                                for sector in touched)]
    assert len(read_twice) <= 1 + 3 * len(touched)     # a bad sector: once a level


def test_a_bad_sector_is_not_read_again(tmp_path, monkeypatch):
    data = bytes(range(256)) * (4 * MiB // 256)
    (tmp_path / "dump.img").write_bytes(data)
    calls = []
    short_reads(monkeypatch, [(MiB + 4096, MiB + 8192)], calls)
    dump = r.Dump(str(tmp_path / "dump.img"), careful=True)
    try:
        first = dump.read(0, 2 * MiB)
        failed = dump.failed_reads
        calls.clear()
        again = dump.read(MiB, 4 * 4096)
    finally:
        os.close(dump.fd)
    assert first[MiB + 4096:MiB + 8192] == bytes(4096) and again == first[MiB:MiB + 16384]
    assert dump.failed_reads == failed                  # known: not read again
    assert all(not (offset < MiB + 8192 and offset + size > MiB + 4096)
               for offset, size in calls)


# A main process killed (SIGKILL, the OOM killer) leaves no scan process behind.

@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_no_scan_process_outlives_a_killed_main_process(tmp_path):
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    build_dump(tmp_path / "card.img", *([4096, jpeg, (-len(jpeg)) % 512] * 40), 4096)
    env = dict(os.environ, RECOVERCR3_TURBOJPEG="none")    # slow: it is still scanning
    proc = subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-q", "-i", str(tmp_path / "card.img"),
                             "-o", str(tmp_path / "out"), "--jobs", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    for _ in range(300):
        time.sleep(0.02)
        children = [int(pid) for task in os.listdir("/proc/%d/task" % proc.pid)
                    for pid in open("/proc/%d/task/%s/children" % (proc.pid, task)).read()
                    .split()]
        if len(children) >= 2:
            break
    assert len(children) >= 2 and proc.poll() is None
    time.sleep(0.3)                                     # well into the scan
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    alive = [pid for pid in children if os.path.exists("/proc/%d" % pid)
             and open("/proc/%d/stat" % pid).read().split()[2] != "Z"]
    assert alive == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_a_slow_bad_area_is_read_carefully_ends_at_once(tmp_path, backing, signum):
    # Each failing read takes 20 ms (a real reader's timeout is seconds): the bad area
    # of 8 MiB read a sector at a time would take minutes. The first stop signal ends
    # the careful reading at its next read, and the run says where it goes on from.
    path, _ = backing
    bad = (12 * MiB, 20 * MiB)
    with failing_mount(tmp_path, path, *bad, delay=0.02) as dump:
        proc = subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-i", str(dump), "-o",
                                 str(tmp_path / "out")], stderr=subprocess.PIPE, text=True)
        said = ""
        while "it is read carefully from there on" not in said:
            line = proc.stderr.readline()
            assert line, said
            said += line
        time.sleep(1)
        proc.send_signal(signum)
        try:                                # a read or two, not the area's 16,384 sectors
            rest = proc.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the stop signal did not end the careful reading")
    assert proc.returncode == 128 + signum and "Traceback" not in rest, rest
    assert "The same command run again goes on from offset" in rest
    assert not list((tmp_path / "out").rglob("*.part"))
