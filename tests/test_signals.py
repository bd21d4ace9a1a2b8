"""Real signals at every stage: SIGINT, SIGTERM and SIGHUP stop cleanly, leave no
.part file, and the report names exactly the files on disk; a closed stderr does not
stop the recovery."""

import csv
import os
import signal
import subprocess
import time

import pytest

from conftest import CLI_PYTHON, PROJECT, SCRIPT
from dumpkit import build_dump, corpus_file, sha256


def start(dump, out, *options):
    return subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-i", str(dump), "-o", str(out)]
                            + list(options), stderr=subprocess.PIPE, text=True)


def report_matches_disk(out):
    """Every row of every report names a file that is there; every file is in a row."""
    rows = []
    for report in out.glob("recovercr3-report*.csv"):
        with open(report, newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    named = sorted(r["file"] for r in rows if r["file"])
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and not p.name.startswith(("recovercr3-report", "index", ".recovercr3"))
                     and p.name != "recovercr3.log")
    assert named == on_disk
    assert not list(out.rglob("*.part"))
    return [r for r in rows if r["status"] not in ("scan finished", "interrupted")]


@pytest.fixture(scope="module")
def big_card(tmp_path_factory, eos_r_cr3):
    path = tmp_path_factory.mktemp("card") / "card.img"
    build_dump(path, *([eos_r_cr3, 4096] * 16))     # 470 MB: over a second to recover
    return path


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)])
def test_a_stop_signal_while_saving_stops_cleanly(tmp_path, big_card, eos_r_cr3, signum, code):
    out = tmp_path / "out"
    proc = start(big_card, out)
    lines = [proc.stderr.readline(), proc.stderr.readline()]
    assert lines[1].startswith("[INFO] Saving")
    proc.send_signal(signum)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == code
    assert "Traceback" not in rest
    assert "[WARNING] Interrupted at offset" in rest
    rows = report_matches_disk(out)
    saved = [r for r in rows if r["file"]]
    assert all(sha256((out / r["file"]).read_bytes()) == sha256(eos_r_cr3) for r in saved)


def wait_until_its_own_code_runs(proc):
    """Until the script's first statements have run: they catch SIGHUP (Python's own
    start-up - site, compiling the script - is before them, and not the script's)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open("/proc/%d/status" % proc.pid) as f:
            caught = next(line for line in f if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & 1 << (signal.SIGHUP - 1):
            return
        time.sleep(0.001)
    raise AssertionError("the script never started")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("delay", [0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3])
def test_ctrl_c_at_any_moment_of_start_up(tmp_path, big_card, delay):
    out = tmp_path / "out"
    proc = start(big_card, out)
    wait_until_its_own_code_runs(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err            # the stop was honoured
    assert "Traceback" not in err
    if out.exists():
        report_matches_disk(out)


SECOND_CTRL_C_IN_SALVAGE = """
import os, signal, sys
sys.path.insert(0, {project!r})
import recovercr3
real = recovercr3.salvage_7z

def salvage_and_press_ctrl_c_twice(dump, start, end, fd, checkpoint):
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGINT)        # raises KeyboardInterrupt here
    return real(dump, start, end, fd, checkpoint)

recovercr3.salvage_7z = salvage_and_press_ctrl_c_twice
sys.exit(recovercr3._main(sys.argv[1:]))
"""


def test_a_second_ctrl_c_during_a_7z_salvage(tmp_path):
    archive = corpus_file("filetype_fixture.7z")
    build_dump(tmp_path / "card.img", 4096, archive[:len(archive) - 40], 4096,
               corpus_file("mei_sample.3gp"), 512)
    out = tmp_path / "out"
    p = subprocess.run([CLI_PYTHON, "-c", SECOND_CTRL_C_IN_SALVAGE.format(project=str(PROJECT)),
                        "-i", str(tmp_path / "card.img"), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 130 and "Traceback" not in p.stderr
    assert not list(out.rglob("*.part"))
    assert [r["file"] for r in report_matches_disk(out)] == ["damaged/img1.7z"]


def test_a_closed_stderr_does_not_stop_the_recovery(tmp_path):
    # recovercr3 ... 2>&1 | head -1: after the first line, every log line fails.
    files = [corpus_file("mei_sample.3gp"), corpus_file("gopro_karma.mp4")] * 3
    parts = []
    for data in files:
        parts += [4096, data]
    build_dump(tmp_path / "card.img", *parts)
    out = tmp_path / "out"
    p = subprocess.run("%s %s -i %s -o %s 2>&1 | head -1" % (CLI_PYTHON, SCRIPT,
                                                            tmp_path / "card.img", out),
                       shell=True, capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("[INFO] Processing")
    rows = report_matches_disk(out)
    assert [sha256((out / r["file"]).read_bytes()) for r in rows] == [sha256(f) for f in files]
