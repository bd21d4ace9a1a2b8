"""The copied script runs on Windows and macOS too: simulated here on Linux.

tests/platforms/windows and tests/platforms/macos each hold a sitecustomize.py that
takes away, at the start of every process, what that system's Python lacks (pread,
sendfile to a file, fcntl, SIGHUP, ...) and spawns the scan processes instead of
forking them. Each dump is carved plainly and under each simulation: the same files,
byte for byte, the same report, exit 0, no traceback. CI runs test_cli.py under each
too (RECOVERCR3_SIMULATE). What cannot be simulated: drive letters, NTFS's own rules
(the naming tests hold names to them), mandatory locks.
"""

import hashlib
import os
import subprocess
import sys

import pytest

import dumpkit
from conftest import CLI_PYTHON, SCRIPT, cli_env
from dumpkit import MtoolsCard, corpus_file

SYSTEMS = ["windows", "macos"]


def carve(dump, out, simulate, *options):
    p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", str(dump), "-o", str(out), "-v"]
                       + list(options), capture_output=True, text=True, timeout=300,
                       env=cli_env(simulate))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    return p.stderr


def tree(out):
    """{relpath: sha256} of what a run left, but for the page and the log (they say
    how long the run took)."""
    return {str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(out.rglob("*")) if path.is_file()
            and path.name not in ("index.html", "recovercr3.log")}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory, eos_r_cr3):
    """A card of every verdict (dumpkit.resume_card) and, with the FAT tools, a card
    whose names come back (--name-by original)."""
    root = tmp_path_factory.mktemp("platforms")
    found = [(dumpkit.resume_card(root / "every.img", eos_r_cr3), [])]
    try:
        card = MtoolsCard(root / "fat.img", folders=["DCIM", "DCIM/100CANON"])
    except (OSError, subprocess.CalledProcessError):
        return found
    for number, source in enumerate(["exiftool_Canon.jpg", "mei_sample.3gp",
                                     "mei_Canon_EOS_5D.jpg"], 1):
        card.copy("DCIM/100CANON/IMG_%04d.%s" % (number, source.rpartition(".")[2].upper()),
                  corpus_file(source))
    found.append((card.path, ["--name-by", "original"]))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulates on Linux")
@pytest.mark.parametrize("system", SYSTEMS)
def test_a_simulated_system_carves_every_file_as_linux_does(tmp_path, dumps, system):
    for index, (dump, options) in enumerate(dumps):
        plain, simulated = tmp_path / ("plain%d" % index), tmp_path / ("sim%d" % index)
        carve(dump, plain, "", *options)
        log = carve(dump, simulated, system, *options)
        assert tree(simulated) == tree(plain)
        assert len(tree(plain)) > 3
        assert "[DEBUG] scan processes: spawned" in log
        if system == "windows":
            assert "[DEBUG] reads at an offset: seek and read, under a lock" in log
            assert "[DEBUG] copies: read and written (no sendfile)" in log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulates on Linux")
def test_a_simulated_windows_run_goes_on_after_a_ctrl_c(tmp_path, dumps):
    # No fcntl: a report is not locked; the run cut short is gone on from all the same.
    dump, _ = dumps[0]
    out = tmp_path / "out"
    plain = tmp_path / "plain"
    carve(dump, plain, "")
    env = cli_env("windows")
    proc = subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-i", str(dump), "-o", str(out)],
                            stderr=subprocess.PIPE, text=True, env=env)
    while not proc.stderr.readline().startswith("[INFO] Saving"):
        pass
    proc.send_signal(2)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "Traceback" not in rest, rest
    carve(dump, out, "windows")
    reports = sorted(out.glob("recovercr3-report*.csv"), key=os.path.getmtime)
    assert reports[-1].read_bytes() == (plain / "recovercr3-report.csv").read_bytes()


HOLD_A_REPORT = """
import sys, time
import recovercr3 as r
report = r.Report(sys.argv[1])
r.write_state(sys.argv[1], [report.path])
for row in sys.argv[2:]:
    report.write_row(row.split(","))
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulates on Linux")
@pytest.mark.parametrize("system", ["", "windows"])
def test_a_report_another_run_is_writing_is_told_by_its_lock(tmp_path, system):
    # flock on POSIX, msvcrt.locking on Windows: a report without its last row is a
    # killed run's, whose files are kept, unless its run still holds the lock.
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    carve(dump, out, system)
    rows = (out / "recovercr3-report.csv").read_text().splitlines()[1:-1]
    env = cli_env(system, PYTHONPATH=os.pathsep.join(filter(None, [
        os.environ.get("PYTHONPATH", ""), str(SCRIPT.parent)])))
    holder = subprocess.Popen([CLI_PYTHON, "-c", HOLD_A_REPORT, str(out)] + rows,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline() == "held\n"
        log = carve(dump, out, system)
    finally:
        holder.kill()
        holder.wait()
    assert "recovercr3-report-2.csv: another run is still writing it" in log
    assert "Kept" not in log
