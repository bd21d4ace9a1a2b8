"""The report and the other outputs a user reads: clean cells, no formulas, no Python
reprs, each problem once; DFXML, --jobs and output directories refused with reasons."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

import recovercr3
from conftest import CLI_PYTHON, SCRIPT, recover, run_cli
from dumpkit import box, build_dump, corpus_file, ftyp, sha256


@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1+1", "'+1+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("Canon\x1b[31m EOS\r\nR", "Canon [31m EOS R"),
    ("\x00\x07EOS R\x7f", "EOS R"),
    (12345, "12345"),
])
def test_report_cells_are_clean_and_never_formulas(value, cell):
    assert recovercr3.report_cell(value) == cell


def test_a_hostile_model_reaches_the_report_neutralised(tmp_path, monkeypatch):
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, movie, 512)
    hostile = recovercr3.Meta("=cmd|' /C calc'!A0\x1b]0;owned\x07", "2020-01-01T00:00:00",
                              "@\n1")
    monkeypatch.setattr(recovercr3, "isobmff_meta", lambda kind, f: hostile)   # forked on
    out = recover(tmp_path / "card.img", tmp_path / "out", "--dfxml", tmp_path / "r.xml")
    row = out.rows[0]
    assert row["model"] == "'=cmd|' /C calc'!A0 ]0;owned"
    assert row["serial"] == "'@ 1"
    ET.parse(str(tmp_path / "r.xml"))                   # still well-formed XML


def test_box_names_are_text_and_problems_are_said_once(tmp_path):
    bad = ftyp(b"isom", b"isom") + box(b"moov", bytes(100)) + b"\0\0\0\x03\x01\x02\x03\x04"
    build_dump(tmp_path / "card.img", 512, bad, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.rows[0]["detail"] == ("the boxes break at +128: box name 0x01020304 is not "
                                     "four printable characters (fragmented or overwritten)")
    assert "b'" not in open(tmp_path / "out" / "recovercr3-report.csv").read()


def test_the_same_problem_from_two_checks_is_one_note():
    def twice(f):
        return "trak 1 lacks stco/co64, stsz or stsc"
    saved = dict(recovercr3.ISOBMFF_CHECKS)
    recovercr3.ISOBMFF_CHECKS["mp4"] = [twice, twice]
    try:
        assert recovercr3.run_checks("mp4", None) == ["trak 1 lacks stco/co64, stsz or stsc"]
    finally:
        recovercr3.ISOBMFF_CHECKS.clear()
        recovercr3.ISOBMFF_CHECKS.update(saved)


@pytest.fixture
def card(tmp_path):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"), 512)
    return tmp_path / "card.img"


def test_an_empty_dfxml_name_is_bad_usage(tmp_path, card):
    p = run_cli("-i", card, "-o", tmp_path / "out", "--dfxml", "")
    assert p.returncode == 2 and p.stderr.strip() == "[ERROR] --dfxml needs a file name"
    assert not (tmp_path / "out").exists()


def test_a_refused_dfxml_leaves_no_report_behind(tmp_path, card):
    (tmp_path / "r.xml").write_text("keep me")
    p = run_cli("-i", card, "-o", tmp_path / "out", "--dfxml", tmp_path / "r.xml")
    assert p.returncode == 2
    assert p.stderr.splitlines()[-1] == ("[ERROR] %s exists: recovercr3 does not overwrite "
                                         "files" % (tmp_path / "r.xml"))
    assert (tmp_path / "r.xml").read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_a_dfxml_that_cannot_be_written_leaves_no_report_behind(tmp_path, card):
    p = run_cli("-i", card, "-o", tmp_path / "out", "--dfxml", tmp_path / "no" / "r.xml")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.splitlines()[-1] == "[ERROR] cannot write %s: No such file or directory" % (
        tmp_path / "no" / "r.xml")
    assert not (tmp_path / "out").exists()


def test_a_dfxml_is_removed_when_the_outdir_is_refused(tmp_path, card):
    (tmp_path / "afile").write_text("x")
    p = run_cli("-i", card, "-o", tmp_path / "afile", "--dfxml", tmp_path / "r.xml")
    assert p.returncode == 2
    assert not (tmp_path / "r.xml").exists()


def test_jobs_are_capped_at_the_cpu_count_and_it_says_so(tmp_path, card):
    p = run_cli("-i", card, "-o", tmp_path / "out", "--jobs", "999")
    cpus = os.cpu_count()
    assert p.returncode == 0
    assert p.stderr.splitlines()[0] == (
        "[INFO] --jobs 999: this machine has %d CPU(s), so %d scan processes" % (cpus, cpus))


def test_an_image_still_being_written_on_the_output_file_system_is_refused(tmp_path, card):
    if not os.path.isdir("/proc/self/fdinfo"):
        pytest.skip("needs Linux /proc")
    writer = subprocess.Popen([CLI_PYTHON, "-c", "import sys, time; f = open(sys.argv[1], 'ab');"
                               "print('open', flush=True); time.sleep(60)", str(card)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        before = sha256(card.read_bytes())
        p = run_cli("-i", card, "-o", tmp_path / "out")
    finally:
        writer.kill()
        writer.wait()
    assert p.returncode == 2, p.stderr
    line = p.stderr.splitlines()[-1]
    assert line.startswith("[ERROR] %s is still being written by " % card)
    assert line.endswith("(pid %d), and %s is on the same file system: wait for the image to "
                         "be finished (or write elsewhere)" % (writer.pid, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert sha256(card.read_bytes()) == before


@pytest.fixture
def mounted_card(tmp_path):
    """A loop device holding an ext2 file system, mounted: a 'card' with an output dir on it."""
    if os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext2"):
        pytest.skip("needs root, losetup and mkfs.ext2")
    image = tmp_path / "card.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext2", "-q", "-F", str(image)], check=True, capture_output=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                          text=True)
    if loop.returncode:
        pytest.skip("losetup failed: %s" % loop.stderr.strip())
    device = loop.stdout.strip()
    point = tmp_path / "mnt"
    point.mkdir()
    mounted = subprocess.run(["mount", device, str(point)], capture_output=True, text=True)
    try:
        if mounted.returncode:
            pytest.skip("cannot mount: %s" % mounted.stderr.strip())
        yield device, point
    finally:
        if not mounted.returncode:
            subprocess.run(["umount", str(point)], capture_output=True)
        subprocess.run(["losetup", "--detach", device], capture_output=True)


def test_writing_onto_the_device_being_read_is_refused(tmp_path, mounted_card):
    device, point = mounted_card
    p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", device, "-o", str(point / "out")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines()[-1] == (
        "[ERROR] %s is on a file system of %s, the device being recovered: writing there "
        "would overwrite the very files to recover. Use another disk for --outdir"
        % (point / "out", device))
    assert not (point / "out").exists()


def test_every_written_file_has_its_sha256_in_the_report_and_dfxml(tmp_path):
    # complete, damaged (with the JPEG inside it written beside it) and truncated
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    cr3 = corpus_file("filetype_fixture.cr3")          # cut inside PRVW: damaged
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, jpeg, 512 * 3, cr3, 512 * 9, movie[:20000])
    out = recover(tmp_path / "card.img", tmp_path / "out", "--dfxml", tmp_path / "r.xml")
    statuses = {row["status"] for row in out.rows}
    assert {"complete", "truncated"} <= statuses and len(out.rows) >= 3
    for row in out.rows:
        assert row["sha256"] == sha256((tmp_path / "out" / row["file"]).read_bytes())
    ns = {"d": "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML",
          "r": "https://github.com/WojciechMula/recovercr3"}
    objects = ET.parse(str(tmp_path / "r.xml")).getroot().findall("d:fileobject", ns)
    by_name = {o.find("d:filename", ns).text: o for o in objects}
    for row in out.rows:
        fileobject = by_name[row["file"]]
        assert fileobject.find("d:hashdigest", ns).text == row["sha256"]
        assert fileobject.find("r:status", ns).text == row["status"]
        assert (fileobject.find("r:detail", ns).text or "") == row["detail"]


def test_a_dry_run_reports_no_sha256(tmp_path):
    import csv
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"), 512)
    assert recovercr3._main(["-q", "--input", str(tmp_path / "card.img"), "--outdir",
                             str(tmp_path / "out"), "--dry-run"]) == 0
    with open(str(tmp_path / "out" / "recovercr3-report.csv"), newline="") as f:
        assert [(row["status"], row["sha256"]) for row in csv.DictReader(f)] == [
            ("complete", ""), ("scan finished", "")]


def test_the_last_row_says_whether_the_whole_dump_was_searched(tmp_path, monkeypatch):
    import csv
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, movie, 512, movie, 512)
    size = (tmp_path / "card.img").stat().st_size
    recover(tmp_path / "card.img", tmp_path / "whole")
    with open(str(tmp_path / "whole" / "recovercr3-report.csv"), newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert (last["file"], last["offset"], last["size"], last["status"], last["detail"]) == (
        "", str(size), str(size), "scan finished", "the whole dump was searched ({:,d} B)".format(size))
    # a stop after the first file: the last row says where the search stopped
    real_save = recovercr3.OutputDir.save

    def stop_after_first(self, dump, carved, claim, checkpoint, digest=None):
        real_save(self, dump, carved, claim, checkpoint, digest)
        if carved.offset > 512:
            raise KeyboardInterrupt
    monkeypatch.setattr(recovercr3.OutputDir, "save", stop_after_first)
    out = recover(tmp_path / "card.img", tmp_path / "cut")
    assert out.rc == 130
    with open(str(tmp_path / "cut" / "recovercr3-report.csv"), newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert last["status"] == "interrupted" and last["file"] == ""
    assert "the search stopped at offset" in last["detail"]
    assert int(last["offset"]) < size
