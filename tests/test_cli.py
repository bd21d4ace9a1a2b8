"""The command line as a user meets it: options, log lines, exit codes, failures."""

import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

import recovercr3
from conftest import CLI_PYTHON, PROJECT, SCRIPT, read_outcome, recover, run_cli
import dumpkit
from dumpkit import build_dump, corpus_file, sha256


@pytest.fixture
def card(tmp_path):
    """A small dump with a 3GP and an MP4; returns (path, [files])."""
    files = [corpus_file("mei_sample.3gp"), corpus_file("gopro_karma.mp4")]
    build_dump(tmp_path / "card.img", 1000, files[0], 512, files[1], 700)
    return tmp_path / "card.img", files


def test_log_lines_are_upstreams(tmp_path, card):
    dump, _ = card
    p = run_cli("--input", dump, "--outdir", tmp_path / "out")
    assert p.returncode == 0 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert lines[:3] + lines[-1:] == [
        "[INFO] Processing %s" % dump,
        "[INFO] Saving %s, size 28,561 B" % (tmp_path / "out" / "img1.3gp"),
        "[INFO] Saving %s, size 4,134,647 B" % (tmp_path / "out" / "img2.mp4"),
        "[INFO] Restored 2 file(s)",
    ]
    # between them, only the summary: per type and verdict, then what was written
    assert lines[3:-1] == [
        "[INFO] 3GP 1 complete; MP4 1 complete",
        "[INFO] Wrote 4,163,208 B (0.0 GB) in {0}: look first at {0}/index.html, then in "
        "truncated/ and damaged/ (the report says why each is there)".format(tmp_path / "out")]


def test_short_options_and_nested_outdir_created(tmp_path, card):
    dump, files = card
    out = tmp_path / "a" / "b"
    p = run_cli("-i", dump, "-o", out)
    assert p.returncode == 0
    assert read_outcome(p.returncode, p.stderr, out).shas() == [sha256(f) for f in files]


def test_verbose_prints_each_box_as_upstream(tmp_path, card):
    dump, _ = card
    p = run_cli("-i", dump, "-o", tmp_path / "out", "-v")
    lines = p.stderr.splitlines()
    assert "[DEBUG] found ftyp at offset 1000" in lines
    i = lines.index("[DEBUG] found ftyp at offset 30073")
    assert lines[i + 1:i + 4] == ["[DEBUG] atom name = b'ftyp', size = 20",
                                  "[DEBUG] atom name = b'mdat', size = 4115964",
                                  "[DEBUG] atom name = b'moov', size = 18663"]


def test_version():
    p = run_cli("--version")
    assert (p.returncode, p.stdout.strip()) == (0, "recovercr3 " + recovercr3.__version__)


def test_runs_as_a_module(tmp_path, card):
    dump, _ = card
    p = subprocess.run([CLI_PYTHON, "-m", "recovercr3", "-i", str(dump), "-o", str(tmp_path / "o")],
                       cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr.endswith("[INFO] Restored 2 file(s)\n")


def test_input_is_never_modified(tmp_path, card):
    dump, _ = card
    os.chmod(dump, 0o444)
    before = (hashlib.sha256(dump.read_bytes()).hexdigest(), os.stat(dump).st_mtime_ns)
    assert run_cli("-i", dump, "-o", tmp_path / "out").returncode == 0
    assert (hashlib.sha256(dump.read_bytes()).hexdigest(), os.stat(dump).st_mtime_ns) == before


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.img", "cannot read {}: No such file or directory"),
    (lambda d: d, "{} is a directory, not a dump"),
    (lambda d: (d / "empty.img").write_bytes(b"") or d / "empty.img",
     "{} is empty: nothing to recover"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make, message):
    dump = make(tmp_path)
    p = run_cli("-i", dump, "-o", tmp_path / "out")
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["[ERROR] " + message.format(dump)]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("outdir, reason", [
    ("afile", "it is a file, not a directory"),
    ("afile/sub", "a part of it is a file, not a directory"),
])
def test_unusable_outdir_is_one_line_and_exit_2(tmp_path, card, outdir, reason):
    dump, _ = card
    (tmp_path / "afile").write_bytes(b"x")
    p = run_cli("-i", dump, "-o", tmp_path / outdir)
    assert p.returncode == 2
    assert p.stderr.splitlines()[-1] == "[ERROR] cannot write to %s: %s" % (
        tmp_path / outdir, reason)
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("options, message", [
    (["--maxchunks", "0"], "must be a whole number greater than zero"),
    (["--maxchunks", "x"], "must be a whole number greater than zero"),
    (["--lastchunk", "md"], "exactly four printable characters"),
    (["--lastchunk", "md\u00e5t"], "exactly four printable characters"),
    (["--lastchunk", "mdat", "--maxchunks", "3"], "not allowed with argument"),
    (["--types", "cr3,png"], "unknown type 'png'"),
    (["--types", ","], "name at least one type"),
])
def test_bad_options_exit_2(tmp_path, card, options, message):
    dump, _ = card
    p = run_cli("-i", dump, "-o", tmp_path / "out", *options)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


def is_output(fd, outdir):
    """True when fd is a file in outdir (not a pipe of the scan processes)."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd).startswith(str(outdir))
    except OSError:
        return False


def sending(write):
    """An os.sendfile that goes through write, so that tests can make it fail."""
    def sendfile(out_fd, in_fd, offset, count):
        return write(out_fd, os.pread(in_fd, count, offset))
    return sendfile


def test_disk_full_stops_cleanly(tmp_path, card, monkeypatch):
    dump, files = card
    real_write = os.write
    written = {"bytes": 0}

    def filling_write(fd, data):         # the report keeps room for its rows
        if is_output(fd, tmp_path / "out") and not is_output(fd, tmp_path / "out/recovercr3"):
            written["bytes"] += len(data)
            if written["bytes"] > 1 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(recovercr3.os, "write", filling_write)
    monkeypatch.setattr(recovercr3.os, "sendfile", sending(filling_write))
    out = recover(dump, tmp_path / "out")
    assert out.rc == 1
    assert ("[ERROR] the output disk is full: the scan stopped at offset 30,073 of 4,165,420 B "
            "with 1 file(s) found but not written (see %s). Free some space, or use another "
            "disk, and run again" % (tmp_path / "out" / "recovercr3-report.csv")) in out.log
    assert out.log.splitlines()[-1] == "[INFO] Restored 1 file(s)"
    assert out.shas() == [sha256(files[0])]
    assert [(r["file"], r["status"], r["detail"]) for r in out.rows] == [
        ("img1.3gp", "complete", ""),
        ("", "not saved", "not saved: the output disk is full; complete")]
    # the contact sheet could not be written either: said, and nothing of it left
    assert "[WARNING] the contact sheet is not written: No space left on device" in out.log
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".recovercr3-state", "img1.3gp", "recovercr3-report.csv", "recovercr3.log"]


@pytest.mark.parametrize("how", ["first Ctrl-C", "second Ctrl-C"])
def test_interrupt_in_the_middle_of_a_file_leaves_no_part_file(tmp_path, monkeypatch,
                                                              eos_r_cr3, how):
    # The first Ctrl-C is a SIGINT that asks for a stop before the next chunk is
    # written; a second one raises KeyboardInterrupt wherever the program is.
    dump = tmp_path / "card.img"
    build_dump(dump, 1000, corpus_file("mei_sample.3gp"), 512, eos_r_cr3, 700)
    real_write = os.write

    def interrupted_write(fd, data):
        if is_output(fd, tmp_path / "out") and len(data) >= recovercr3.COPY_CHUNK:
            if how == "first Ctrl-C":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt
        return real_write(fd, data)

    monkeypatch.setattr(recovercr3.os, "write", interrupted_write)
    monkeypatch.setattr(recovercr3.os, "sendfile", sending(interrupted_write))
    out = recover(dump, tmp_path / "out")
    assert out.rc == 130
    assert out.log.splitlines()[-6:] == [
        "[WARNING] Interrupted at offset 30,073 of 29,409,431 B",
        "[WARNING] 1 not saved: the meaning column of %s says, for each, what is missing "
        "and what can still be used" % (tmp_path / "out" / "recovercr3-report.csv"),
        "[INFO] 3GP 1 complete",
        "[INFO] Wrote 28,561 B (0.0 GB) in {0}: look first at {0}/index.html, then in "
        "truncated/ and damaged/ (the report says why each is there)".format(tmp_path / "out"),
        "[INFO] The same command run again goes on from offset 30,073, keeping what is "
        "saved (--restart starts over)",
        "[INFO] Restored 1 file(s)"]
    assert [(r["file"], r["status"], r["detail"]) for r in out.rows] == [
        ("img1.3gp", "complete", ""),
        ("", "not saved", "not saved: the run stopped before it was written; complete")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".recovercr3-state", "img1.3gp", "index.html", "recovercr3-report.csv", "recovercr3.log"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_on_a_real_process(tmp_path, eos_r_cr3):
    build_dump(tmp_path / "card.img", *([eos_r_cr3, 4096] * 8))
    out = tmp_path / "out"
    proc = subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-i", str(tmp_path / "card.img"),
                             "-o", str(out)], stderr=subprocess.PIPE, text=True)
    lines = [proc.stderr.readline(), proc.stderr.readline()]
    assert lines[1].startswith("[INFO] Saving")
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read().splitlines()
    assert proc.wait(timeout=60) == 130
    assert any(line.startswith("[WARNING] Interrupted at offset") for line in rest)
    saved = read_outcome(130, "", out)
    assert rest[-1] == "[INFO] Restored %d file(s)" % len(saved.outputs)
    assert saved.shas() == [sha256(eos_r_cr3)] * len(saved.outputs)
    assert [r["status"] for r in saved.rows if not r["file"]] == ["not saved"] * (
        len(saved.rows) - len(saved.outputs))
    assert not list(out.glob("*.part"))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_file_too_large_for_the_output_is_skipped_with_an_error(tmp_path, card):
    dump, files = card                       # a 28 KB 3GP and a 4 MB MP4; limit: 1 MB
    build_dump(dump, 1000, files[0], 512, files[1], 700, files[0])

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    p = run_cli("-i", dump, "-o", tmp_path / "out", preexec_fn=limit_file_size)
    assert p.returncode == 1
    assert "[ERROR] %s not saved: too large for the output file system" % (
        tmp_path / "out" / "img2.mp4") in p.stderr
    saved = read_outcome(1, p.stderr, tmp_path / "out")
    assert [r["file"] for r in saved.rows] == ["img1.3gp", "", "img3.3gp"]
    assert saved.rows[1]["detail"].startswith("not saved: too large for the output file system")
    assert saved.shas() == [sha256(files[0])] * 2
    assert not list((tmp_path / "out").glob("*.part"))
    assert p.stderr.splitlines()[-1] == "[INFO] Restored 2 file(s)"


MEASURE_CHILD_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)   # KiB on Linux
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB: Linux")
def test_memory_stays_flat_on_a_dump_larger_than_it(tmp_path):
    # 320 MB dump: a small movie every 10 MB (so every scan window has a hit) and a
    # 100 MB movie. Peak RSS must stay far below the dump's size.
    small = corpus_file("mei_sample.3gp")
    big = dumpkit.ftyp(b"mp42") + dumpkit.box(b"mdat", dumpkit.noise(100 << 20)) + \
        dumpkit.box(b"moov", bytes(64))
    build_dump(tmp_path / "card.img", *([10 << 20, small] * 20 + [big, 1 << 20]))
    p = subprocess.run([sys.executable, "-c", MEASURE_CHILD_RSS, CLI_PYTHON, str(SCRIPT),
                        "-i", str(tmp_path / "card.img"), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, check=True)
    peak_mb = int(p.stdout) / 1024
    assert peak_mb < 120, "peak RSS %.0f MB on a 320 MB dump" % peak_mb
    saved = read_outcome(0, "", tmp_path / "out")
    assert saved.shas() == [sha256(small)] * 20 + [sha256(big)]


@pytest.fixture
def block_device(tmp_path):
    """A loop device over an 8 MiB dump; skips where loop devices cannot be set up."""
    if shutil.which("losetup") is None or os.geteuid() != 0:
        pytest.skip("needs losetup and root")
    image = tmp_path / "card.img"
    files = [corpus_file("mei_sample.3gp"), corpus_file("gopro_karma.mp4")]
    build_dump(image, 4096, files[0], 777, files[1], (8 << 20) - 4096 - 777 - sum(map(len, files)))
    p = subprocess.run(["losetup", "--find", "--show", "--read-only", str(image)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("losetup failed: %s" % p.stderr.strip())
    device = p.stdout.strip()
    try:
        yield device, files
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)


def test_block_device_is_read_to_its_end(tmp_path, block_device):
    device, files = block_device            # st_size of a block device is 0
    p = run_cli("-i", device, "-o", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    assert read_outcome(0, "", tmp_path / "out").shas() == [sha256(f) for f in files]
