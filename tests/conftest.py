import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

import pytest

import dumpkit
import recovercr3

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "recovercr3.py"
# The CLI tests run the script under this interpreter (CI sets it to Python 3.8),
# and, with RECOVERCR3_SIMULATE=windows or macos, with that system's gaps put on at
# start-up (tests/platforms/NAME/sitecustomize.py).
CLI_PYTHON = os.environ.get("RECOVERCR3_PYTHON", sys.executable)
SIMULATE = os.environ.get("RECOVERCR3_SIMULATE", "")
PLATFORMS = PROJECT / "tests" / "platforms"


def cli_env(simulate=SIMULATE, **extra):
    """The environment of a CLI run: simulate's gaps on, when one is named."""
    env = dict(os.environ, **extra)
    if simulate:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PLATFORMS / simulate)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


class Outcome(NamedTuple):
    rc: int
    log: str
    rows: list          # the report's rows, as dicts
    outputs: list       # (name, sha256) of every carved file, in offset order

    def shas(self):
        return [sha for _, sha in self.outputs]


def reports(outdir):
    return set(Path(outdir).glob("recovercr3-report*.csv"))


def read_outcome(rc, log, outdir, old_reports=frozenset()):
    """The outcome of a run, from the report it wrote (not those of earlier runs)."""
    outdir = Path(outdir)
    new = reports(outdir) - set(old_reports)
    assert len(new) <= 1
    rows = []
    for report in new:
        with open(report, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    # a damaged file waits for the end of the scan to be put back together (its row
    # comes last): the tests read the rows in offset order
    # the last row says whether the whole dump was searched (test_report's business)
    rows = [row for row in rows if row["status"] not in (recovercr3.SCAN_FINISHED,
                                                          recovercr3.SCAN_INTERRUPTED)]
    rows.sort(key=lambda row: int(row["offset"]))
    outputs = [(r["file"], dumpkit.sha256((outdir / r["file"]).read_bytes()))
               for r in rows if r["file"]]          # a "not saved" row names no file
    return Outcome(rc, log, rows, outputs)


def recover(dump, outdir, *options):
    """Run recovercr3 in this process; returns an Outcome."""
    err = io.StringIO()
    old = reports(outdir)
    with contextlib.redirect_stderr(err):
        rc = recovercr3._main(["--input", str(dump), "--outdir", str(outdir)]
                              + [str(option) for option in options])
    return read_outcome(rc, err.getvalue(), outdir, old)


def run_cli(*args, timeout=300, **kwargs):
    """Run the script as a user would; returns the CompletedProcess (text mode)."""
    kwargs.setdefault("env", cli_env())
    return subprocess.run([CLI_PYTHON, str(SCRIPT)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def eos_r_cr3():
    return dumpkit.eos_r_cr3()


@pytest.fixture(scope="session")
def eos_m50_cr3():
    return dumpkit.eos_m50_cr3()


@contextlib.contextmanager
def failing_mount(tmp_path, backing, *bounds, delay=0.0):
    """backing served by FUSE as tmp_path/mnt/card.img, whose bytes [start, end) fail
    every read (each after delay seconds), for each pair of bounds
    (tests/failing_fuse.py); skips where FUSE cannot run."""
    pytest.importorskip("fuse", reason="needs fusepy (and libfuse 2)")
    unmount = shutil.which("fusermount") or shutil.which("fusermount3")
    if not os.path.exists("/dev/fuse") or not unmount:
        pytest.skip("needs /dev/fuse and fusermount")
    point = tmp_path / "mnt"
    point.mkdir()
    server = subprocess.Popen([sys.executable, str(PROJECT / "tests" / "failing_fuse.py"),
                               str(backing), str(point)] + [str(bound) for bound in bounds],
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, FAILING_FUSE_DELAY=str(delay)))
    try:
        for _ in range(200):
            if (point / "card.img").exists() or server.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"])
        if not (point / "card.img").exists():
            server.kill()
            pytest.skip("FUSE mount failed: %s" % server.communicate()[1].strip()[-200:])
        yield point / "card.img"
    finally:
        subprocess.run([unmount, "-u", str(point)], capture_output=True)
        server.wait(timeout=30)


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that many bytes; unmounted afterwards."""
    mounted = []

    def mount(size):
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / ("disk%d" % len(mounted))
        point.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs",
                            str(point)], capture_output=True, text=True)
        if p.returncode:
            pytest.skip("cannot mount a tmpfs: %s" % p.stderr.strip())
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page, png, width=1200, height=900):
    """Render page (a file) in headless Chromium to png; its decompressed pixel rows.
    Set RECOVERCR3_SCREENSHOTS to a folder to keep a copy there."""
    p = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--no-first-run",
                        "--hide-scrollbars", "--virtual-time-budget=5000",
                        "--user-data-dir=%s" % (Path(png).parent / "chromium-profile"),
                        "--window-size=%d,%d" % (width, height),
                        "--screenshot=%s" % png, Path(page).as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert Path(png).exists(), p.stderr[-500:]
    data = Path(png).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("RECOVERCR3_SCREENSHOTS"):
        shutil.copy(str(png), os.environ["RECOVERCR3_SCREENSHOTS"])
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)
