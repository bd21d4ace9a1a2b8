"""Runs at the same time into one directory: a name is claimed atomically, so both
save every file once, under names of their own, and their reports match the disk."""

import csv
import subprocess
import threading

import pytest

import dumpkit
import recovercr3
from conftest import CLI_PYTHON, SCRIPT, recover
from dumpkit import build_dump, sha256


@pytest.fixture
def card(tmp_path):
    return dumpkit.three_file_card(tmp_path / "card.img")


def test_two_runs_into_one_directory_both_save_everything(tmp_path, card):
    dump, files = card
    out = tmp_path / "out"
    many = tmp_path / "many.img"
    data = dump.read_bytes()
    build_dump(many, *([data, 4096 + (-len(data)) % 512] * 8))      # JPEGs on sector starts
    procs = [subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-q", "-i", str(many), "-o", str(out)],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    reports = sorted(out.glob("recovercr3-report*.csv"))
    assert len(reports) == 2
    names = []
    for report in reports:
        with open(report, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["status"] for r in rows] == ["complete"] * 24 + ["scan finished"]
        rows = rows[:-1]
        assert [sha256((out / r["file"]).read_bytes()) for r in rows] == [
            sha256(f) for f in files] * 8
        names += [r["file"] for r in rows]
    assert len(set(names)) == 48                                  # every file saved once
    on_disk = sorted(p.name for p in out.iterdir()
                     if not p.name.startswith(("recovercr3", ".recovercr3", "index")))
    assert on_disk == sorted(names)                               # nothing else, no .part


def test_claims_hold_against_a_racing_claimer(tmp_path):
    # Threads claiming names in one directory at once never get the same one.
    outdirs = [recovercr3.OutputDir(tmp_path / "out") for _ in range(4)]
    carved = recovercr3.Carved(0, 1, "jpg", "jpg", "complete", "", [])
    taken = []

    def claim_many(outdir):
        for _ in range(50):
            taken.append(outdir.claim(outdir.names_for(carved)).name)

    threads = [threading.Thread(target=claim_many, args=(o,)) for o in outdirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == len(set(taken)) == 200
    for outdir in outdirs:
        outdir.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        "recovercr3-report%s.csv" % ("" if n == 1 else "-%d" % n) for n in range(1, 5))


@pytest.mark.skipif(recovercr3.fcntl is None, reason="report locks need fcntl (POSIX)")
def test_a_report_another_run_is_writing_is_not_gone_on_from(tmp_path, card):
    # A report without its last row is a killed run's, whose files a second run
    # keeps - unless the run is alive: it holds its report's lock while it writes.
    dump, files = card
    out = tmp_path / "out"
    recover(dump, out)
    with open(out / "recovercr3-report.csv", newline="") as f:
        rows = list(csv.reader(f))[1:-1]            # the files, not the last row
    alive = recovercr3.Report(out)                  # recovercr3-report-2.csv, locked
    recovercr3.write_state(out, [alive.path])       # named, as a run names its own
    for row in rows:
        alive.write_row(row)
    try:
        again = recover(dump, out)
    finally:
        alive.close()
    assert ("%s: another run is still writing it, so every file found is saved anew" % (
        out / "recovercr3-report-2.csv")) in again.log
    assert "Kept" not in again.log
    assert again.shas() == [sha256(f) for f in files]
