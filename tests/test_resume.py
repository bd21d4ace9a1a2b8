"""A second run into the same output directory goes on from the first.

After a run that searched the whole dump, it writes only what that run did not save;
after a run cut short (Ctrl-C, a full disk, a killed process), it goes on from where
that run's report stops being final, and the report it leaves equals, byte for byte,
that of a run that was never stopped. The dump: tests/dumpkit.resume_card (every
verdict, a file put back together at the end, pictures taken out of broken CR3s).
"""

import csv
import os
import signal
import subprocess

import pytest

import dumpkit
import recovercr3
from conftest import CLI_PYTHON, PROJECT, SCRIPT, chromium, recover, run_cli, screenshot
from dumpkit import CAMERA_FOLDERS, MtoolsCard, build_dump, corpus_file, sha256

# Ctrl-C, for real (a SIGINT to the process), once the report has this many rows
CTRL_C_AFTER_ROWS = """
import os, signal, sys
sys.path.insert(0, {project!r})
import recovercr3
real = recovercr3.OutputDir.record
rows = []

def record_then_press_ctrl_c(self, *args, **kwargs):
    real(self, *args, **kwargs)
    rows.append(1)
    if len(rows) == {rows}:
        os.kill(os.getpid(), signal.{signal})

recovercr3.OutputDir.record = record_then_press_ctrl_c
sys.exit(recovercr3._main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def card(tmp_path_factory, eos_r_cr3):
    return dumpkit.resume_card(tmp_path_factory.mktemp("card") / "card.img", eos_r_cr3)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, card):
    """The output of a run never stopped: its report's bytes, its rows, its tiles."""
    out = tmp_path_factory.mktemp("whole") / "out"
    assert run_cli("-i", card, "-o", out).returncode == 0
    report = (out / "recovercr3-report.csv").read_bytes()
    return report, rows_of(out / "recovercr3-report.csv"), tiles(out / "index.html")


def tiles(page):
    """The contact sheet's tiles (after its head, which says how long the run took)."""
    text = page.read_text(encoding="utf-8")
    return text[text.index("<main>"):]


def rows_of(report):
    with open(str(report), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def newest_report(out):
    return out / recovercr3.newest_report(out).rpartition("/")[2]


def files_on_disk(out):
    """{relpath: (inode, sha256)} of the carved files in out."""
    return {str(p.relative_to(out)): (p.stat().st_ino, sha256(p.read_bytes()))
            for p in sorted(out.rglob("*")) if p.is_file()
            and not p.name.startswith(("recovercr3-report", "index", "recovercr3.log", ".recovercr3"))}


def ctrl_c_after(card, out, rows, signal_name="SIGINT"):
    """Run into out, stopped by signal_name once the report has rows rows: its log."""
    p = subprocess.run([CLI_PYTHON, "-c", CTRL_C_AFTER_ROWS.format(
        project=str(PROJECT), rows=rows, signal=signal_name), "-i", str(card), "-o", str(out)],
        capture_output=True, text=True, timeout=300)
    code = 130 if signal_name == "SIGINT" else -getattr(signal, signal_name)
    assert p.returncode == code and "Traceback" not in p.stderr, p.stderr
    return p.stderr


def saving_lines(log):
    return sum(line.startswith("[INFO] Saving ") for line in log.splitlines())


def check_matches_disk(out, rows):
    files = files_on_disk(out)
    assert sorted(files) == sorted(row["file"] for row in rows if row["file"])
    assert all(files[row["file"]][1] == row["sha256"] for row in rows if row["file"])
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("rows", [1, 3, 6, 9, 11])
def test_a_run_cut_short_by_ctrl_c_goes_on_to_the_report_of_a_whole_run(
        tmp_path, card, whole, rows):
    # 1: after the first file; 3: before the broken CR3 whose picture is taken out;
    # 6: after the MP4 in two pieces is put aside; 9 and 11: once the search is over,
    # while the files put aside are put together.
    out = tmp_path / "out"
    cut_log = ctrl_c_after(card, out, rows)
    cut = rows_of(out / "recovercr3-report.csv")
    assert cut[-1]["status"] == recovercr3.SCAN_INTERRUPTED
    assert "the search stopped at offset" in cut[-1]["detail"]
    check_matches_disk(out, cut)
    before = files_on_disk(out)
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "going on from offset" in again.stderr
    assert newest_report(out).read_bytes() == whole[0]      # as if never stopped
    # index.html is the page of every file, thumbnails and all, and the only one
    assert tiles(out / "index.html") == whole[2]
    assert sorted(p.name for p in out.glob("index*")) == ["index.html"]
    final = rows_of(newest_report(out))
    check_matches_disk(out, final)
    # Every file the first run wrote is still the same file (moved at most to the
    # folder of its final verdict), except one whose verdict it could not give for
    # good and whose bytes changed: the MP4 in two pieces, first saved as its damaged
    # first piece, is put together and takes that copy's place; so does the CR3 cut
    # short, put together by a guess (its rest taken from the broken CR3's copy).
    inodes = {inode: sha for inode, sha in files_on_disk(out).values()}
    replaced = [name for name, (inode, sha) in before.items() if inodes.get(inode) != sha]
    assert all(name.endswith(("img7.mp4", "img4.cr3")) for name in replaced), replaced
    assert saving_lines(cut_log) + saving_lines(again.stderr) == \
        sum(1 for row in whole[1] if row["file"]) + len(replaced)


def test_the_resume_point_is_the_state_files_and_the_report_may_say_it_in_any_words(
        tmp_path, card, whole):
    # The point a run cut short resumes from, and the number its names reached, are
    # in the state file beside the report's name; the report's last row says them for
    # the reader. Reworded (or translated), it resumes all the same.
    out = tmp_path / "out"
    ctrl_c_after(card, out, 6)
    report = out / "recovercr3-report.csv"
    lines = (out / recovercr3.STATE_NAME).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "recovercr3 state 2"
    name, offset, counter = lines[1].split("\t")
    assert name == report.name and int(offset) > 0 and int(counter) > 0
    text = report.read_text(encoding="utf-8")
    assert "goes on from offset" in text
    report.write_text(text.replace("goes on from offset", "resumes at byte")
                      .replace("naming from number", "with names from"), encoding="utf-8")
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "going on from offset {:,d}".format(int(offset)) in again.stderr
    assert newest_report(out).read_bytes() == whole[0]


def test_an_old_state_without_points_resumes_from_its_reports_last_row(tmp_path, card, whole):
    # recovercr3 before the state's version 2 wrote report names alone, and the point
    # in the report's last row: such an output directory resumes as it did.
    out = tmp_path / "out"
    ctrl_c_after(card, out, 6)
    state = out / recovercr3.STATE_NAME
    name, offset, _ = state.read_text(encoding="utf-8").splitlines()[1].split("\t")
    state.write_text("recovercr3 state 1\n%s\n" % name, encoding="utf-8")
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "going on from offset {:,d}".format(int(offset)) in again.stderr
    assert newest_report(out).read_bytes() == whole[0]


def test_a_run_cut_short_twice_goes_on_again(tmp_path, card, whole):
    out = tmp_path / "out"
    ctrl_c_after(card, out, 2)
    ctrl_c_after(card, out, 2)               # its first two rows are the first run's
    second = rows_of(out / "recovercr3-report-2.csv")
    assert second[-1]["status"] == recovercr3.SCAN_INTERRUPTED
    assert int(second[-1]["offset"]) > int(rows_of(out / "recovercr3-report.csv")[-1]["offset"])
    assert run_cli("-i", card, "-o", out).returncode == 0
    assert (out / "recovercr3-report-3.csv").read_bytes() == whole[0]
    check_matches_disk(out, rows_of(out / "recovercr3-report-3.csv"))


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("rows", [1, 5, 9])
def test_a_repeated_run_cut_short_leaves_nothing_to_save_twice(tmp_path, card, whole, rows,
                                                               signal_name):
    # A repeat of a whole run keeps every file. Cut short (Ctrl-C, or killed), its report
    # stops where it was cut, and the next run went on from that report alone: every
    # file after that point was saved a second time (issue 26). The state file names
    # the report of the whole run too, and the next run keeps those files as well.
    out = tmp_path / "out"
    assert run_cli("-i", card, "-o", out).returncode == 0
    before = files_on_disk(out)
    ctrl_c_after(card, out, rows, signal_name)
    assert files_on_disk(out) == before
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert saving_lines(again.stderr) == 0, again.stderr
    assert files_on_disk(out) == before         # the same files, inode and bytes
    assert newest_report(out).read_bytes() == whole[0]
    assert recovercr3.read_state(out) == [str(newest_report(out))]


def test_a_real_ctrl_c_while_saving_then_the_same_command(tmp_path, card, whole):
    out = tmp_path / "out"
    proc = subprocess.Popen([CLI_PYTHON, str(SCRIPT), "-i", str(card), "-o", str(out)],
                            stderr=subprocess.PIPE, text=True)
    while not proc.stderr.readline().startswith("[INFO] Saving"):
        pass
    proc.send_signal(signal.SIGINT)
    proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert run_cli("-i", card, "-o", out).returncode == 0
    assert newest_report(out).read_bytes() == whole[0]
    check_matches_disk(out, rows_of(newest_report(out)))


def test_a_second_identical_run_writes_nothing_new(tmp_path, card, whole):
    out = tmp_path / "out"
    assert run_cli("-i", card, "-o", out).returncode == 0
    # the log gets its block; the state file is written anew (while the run goes on it
    # names its report too), and says again what it said
    own = ("recovercr3.log", recovercr3.STATE_NAME)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
              for p in out.rglob("*") if p.name not in own}
    log_before = (out / "recovercr3.log").read_text()
    state = (out / recovercr3.STATE_NAME).read_bytes()
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
             for p in out.rglob("*") if p.name not in own}
    assert after == before                  # not one file written, moved or added
    assert (out / recovercr3.STATE_NAME).read_bytes() == state
    # said last, in place of upstream's "Restored N file(s)": this run restored none
    assert again.stderr.splitlines()[-1] == (
        "[INFO] Nothing new: %d file(s) already in %s, listed in %s" % (
            len([row for row in whole[1] if row["file"]]), out, out / "recovercr3-report.csv"))
    assert "Restored" not in again.stderr and "Wrote" not in again.stderr
    assert "Saving" not in again.stderr
    assert (out / "recovercr3.log").read_text().startswith(log_before)  # its own block


def test_a_second_run_with_more_types_writes_only_the_new_files(tmp_path, card, whole):
    out = tmp_path / "out"
    first = recover(card, out, "--types", "jpg")
    jpegs = files_on_disk(out)
    second = recover(card, out)
    assert second.rc == 0

    def found(rows):
        return sorted((r["offset"], r["type"], r["size"], r["status"], r["sha256"])
                      for r in rows if r["file"])
    assert found(second.rows) == found(whole[1])    # the names differ: a JPEG came first
    kept = {row["file"] for row in second.rows if row["type"] == "jpg"}
    assert {row["file"] for row in first.rows} <= kept
    on_disk = files_on_disk(out)
    assert all(on_disk[name][0] == inode for name, (inode, _) in jpegs.items())
    written = [line for line in second.log.splitlines() if line.startswith("[INFO] Saving")]
    assert len(written) == len([r for r in whole[1] if r["file"]]) - len(jpegs)
    # what was there, then what this run wrote
    assert second.log.splitlines()[-1] == "[INFO] Restored %d file(s)" % len(written)
    assert "[INFO] Kept %d file(s) an earlier run saved in %s: they are not written " \
        "again" % (len(first.rows), out) in second.log


def test_restart_saves_everything_again_under_new_names(tmp_path, card, whole):
    out = tmp_path / "out"
    recover(card, out)
    again = recover(card, out, "--restart")
    assert again.rc == 0
    first_names = {row["file"] for row in whole[1] if row["file"]}
    new_names = [row["file"] for row in again.rows if row["file"]]
    assert len(new_names) == len(first_names) and not first_names & set(new_names)
    assert sorted(sha for _, sha in again.outputs) == sorted(
        row["sha256"] for row in whole[1] if row["file"])


def test_a_file_gone_from_the_output_is_written_again(tmp_path):
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    os.unlink(str(out / "img2.jpg"))
    again = recover(dump, out)
    assert [line for line in again.log.splitlines() if line.startswith("[INFO] Saving")] == [
        "[INFO] Saving {}, size {:,d} B".format(out / "img2.jpg", len(files[1]))]
    assert again.shas() == [sha256(f) for f in files]
    assert [row["file"] for row in again.rows] == ["img1.3gp", "img2.jpg", "img3.mp4"]


def test_a_kept_file_whose_bytes_changed_in_the_dump_is_saved_anew(tmp_path):
    # The same dump size and offsets, one byte of the JPEG's Exif changed: the row's
    # sha256 is not the dump's, so the first run's copy is not that file.
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    jpeg_at = int(rows_of(out / "recovercr3-report.csv")[1]["offset"])
    data = bytearray(dump.read_bytes())
    data[jpeg_at + 100] ^= 1
    dump.write_bytes(bytes(data))
    again = recover(dump, out)
    jpeg_row = [row for row in again.rows if row["type"] == "jpg"][0]
    assert jpeg_row["file"] == "img2-2.jpg"
    assert (out / "img2.jpg").read_bytes() == files[1]      # the first run's, untouched
    assert sha256((out / "img2-2.jpg").read_bytes()) == jpeg_row["sha256"] != sha256(files[1])


def test_the_report_of_another_dump_is_not_gone_on_from(tmp_path):
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    with open(str(dump), "ab") as f:
        f.write(bytes(512))
    again = recover(dump, out)
    size = dump.stat().st_size
    assert ("{}: it is the report of a dump of {:,d} B, not of this one ({:,d} B), so every "
            "file found is saved anew".format(out / "recovercr3-report.csv", size - 512, size)
            ) in again.log
    assert [row["file"] for row in again.rows] == ["img2.3gp", "img3.jpg", "img4.mp4"]
    assert again.shas() == [sha256(f) for f in files]


def test_a_report_a_power_cut_left_is_searched_again_keeping_its_files(tmp_path):
    # No last row, and its last line cut in the middle: the run was killed.
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    report = out / "recovercr3-report.csv"
    lines = report.read_bytes().splitlines(keepends=True)
    report.write_bytes(b"".join(lines[:3]) + lines[3][:40])
    os.unlink(str(out / "img3.mp4"))            # its row was being written
    (out / "img3.mp4.part").write_bytes(b"the half copy a killed run leaves")
    (out / "img2.jpg").write_bytes(bytes(len(files[1])))   # never reached the disk
    again = recover(dump, out)
    assert "has no last row: the run that wrote it was killed" in again.log
    assert "%s is not what the run that was killed wrote" % (out / "img2.jpg") in again.log
    assert [line for line in again.log.splitlines() if line.startswith("[INFO] Saving")] == [
        "[INFO] Saving {}, size {:,d} B".format(out / "img3.jpg", len(files[1])),
        "[INFO] Saving %s, size 4,134,647 B" % (out / "img4.mp4")]
    assert [row["file"] for row in again.rows] == ["img1.3gp", "img3.jpg", "img4.mp4"]
    assert again.shas() == [sha256(f) for f in files]


def test_a_report_that_is_not_ours_is_left_alone(tmp_path):
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    out.mkdir()
    (out / "recovercr3-report.csv").write_text("an old report\n")
    again = recover(dump, out)              # no state file names it: not looked at
    assert ("%s holds reports, but no .recovercr3-state names them" % out) in again.log
    assert again.shas() == [sha256(f) for f in files]
    (out / recovercr3.STATE_NAME).write_text("recovercr3 state 1\nrecovercr3-report.csv\n")
    named = recover(dump, out)              # named by one: read, and refused
    assert "it is not a report of this version of recovercr3" in named.log
    assert named.shas() == [sha256(f) for f in files]
    assert (out / "recovercr3-report.csv").read_text() == "an old report\n"


def test_a_dry_run_does_not_go_on_and_is_not_gone_on_from(tmp_path):
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    assert run_cli("-i", dump, "-o", out, "--dry-run").returncode == 0
    real = recover(dump, out)
    assert real.shas() == [sha256(f) for f in files]      # nothing was saved to keep
    assert "Kept" not in real.log and "holds reports, but no" not in real.log
    dry = run_cli("-i", dump, "-o", out, "--dry-run")
    assert "Would save" in dry.stderr and "Kept" not in dry.stderr
    assert recovercr3.read_state(out) == [str(out / "recovercr3-report-2.csv")]


def test_a_run_stopped_by_a_full_disk_goes_on_once_there_is_room(tmp_path, card, whole,
                                                                 tmpfs):
    out = tmpfs(40 << 20)                   # the whole run writes 103 MB
    full = run_cli("-i", card, "-o", out)
    assert full.returncode == 1 and "the output disk is full" in full.stderr
    subprocess.run(["mount", "-o", "remount,size=%d" % (200 << 20), str(out)], check=True)
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert newest_report(out).read_bytes() == whole[0]
    check_matches_disk(out, rows_of(newest_report(out)))


def test_careful_reading_goes_on_with_the_cards_names(tmp_path):
    # Reading carefully, the card's folders are read as the scan goes: a run that goes
    # on reads those before where it begins first, so names are the same.
    card = MtoolsCard(tmp_path / "card.img", folders=CAMERA_FOLDERS)
    photos = [corpus_file(name) for name in ("exiftool_Canon.jpg", "mei_Canon_EOS_5D.jpg",
                                             "mei_Nikon_D70.jpg", "mei_Canon_EOS_1000D.jpg")]
    for number, photo in enumerate(photos, 1):
        card.copy("DCIM/100CANON/IMG_%04d.JPG" % number, photo)
    options = ("--careful-read", "--name-by", "original")
    once = recover(card.path, tmp_path / "once", *options)
    out = tmp_path / "out"
    p = subprocess.run([CLI_PYTHON, "-c", CTRL_C_AFTER_ROWS.format(
        project=str(PROJECT), rows=2, signal="SIGINT"), "-i", str(card.path), "-o", str(out)]
        + list(options),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 130
    again = recover(card.path, out, *options)
    assert "going on from offset" in again.log
    assert [row["file"] for row in again.rows] == [row["file"] for row in once.rows] == [
        "DCIM/100CANON/IMG_%04d.JPG" % number for number in range(1, 5)]
    assert again.shas() == [sha256(photo) for photo in photos]


def test_going_on_inside_a_file_reported_before_the_stop(tmp_path):
    # A WAV whose RIFF size runs over the photo after it is reported once the scan
    # is past its end - here at the end of a 16 MiB region, inside the photo, which
    # waits for the scan to pass its own end. A stop then: the run that goes on must
    # begin at the WAV, or the photo would not be said to lie inside it.
    wav = corpus_file("exiv2_Free_Test_Data_500KB_WAV.wav")
    photo = corpus_file("mei_Canon_EOS_5D.jpg")
    before = recovercr3.SCAN_REGION - (1 << 20)
    dump = tmp_path / "card.img"
    build_dump(dump, before, dumpkit.padded(wav[:200000]), dumpkit.padded(photo), 1 << 20)
    whole_out = tmp_path / "whole"
    assert run_cli("-i", dump, "-o", whole_out).returncode == 0
    whole_rows = rows_of(whole_out / "recovercr3-report.csv")
    assert whole_rows[0]["type"] == "wav" and "lies inside img1.wav" in whole_rows[1]["detail"]
    out = tmp_path / "out"
    ctrl_c_after(dump, out, 1)
    cut = rows_of(out / "recovercr3-report.csv")
    assert "goes on from offset {:,d},".format(before) in cut[-1]["detail"]
    assert run_cli("-i", dump, "-o", out).returncode == 0
    assert newest_report(out).read_bytes() == (whole_out / "recovercr3-report.csv").read_bytes()


def test_a_stop_before_a_broken_files_picture_is_taken_out(tmp_path, eos_r_cr3):
    # The stop comes as the CR3 the dump's end cuts is reported: its thumbnail is not
    # taken out then, so the run that goes on begins at that CR3.
    dump = tmp_path / "card.img"
    build_dump(dump, 4096, dumpkit.padded(corpus_file("mei_Canon_EOS_5D.jpg")),
               dumpkit.padded(eos_r_cr3), eos_r_cr3[:4000000])
    whole_out = tmp_path / "whole"
    assert run_cli("-i", dump, "-o", whole_out).returncode == 0
    assert rows_of(whole_out / "recovercr3-report.csv")[3]["file"] == "truncated/img3.cr3.jpg"
    out = tmp_path / "out"
    ctrl_c_after(dump, out, 3)
    assert not (out / "truncated" / "img3.cr3.jpg").exists()
    assert run_cli("-i", dump, "-o", out).returncode == 0
    assert newest_report(out).read_bytes() == (whole_out / "recovercr3-report.csv").read_bytes()


def test_a_report_naming_files_outside_the_directory_moves_and_removes_nothing(tmp_path):
    # A report is only text: rows whose file is outside the output directory (by
    # "..", an absolute path or a symlinked folder) are never kept, moved or removed.
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name, data in zip(("a.3gp", "b.jpg", "c.mp4"), files):
        (elsewhere / name).write_bytes(data)
    os.symlink(str(elsewhere), str(out / "linked"))
    report = out / "recovercr3-report.csv"
    text = report.read_text()
    for old, new in (("img1.3gp", "../elsewhere/a.3gp"), ("img2.jpg", str(elsewhere / "b.jpg")),
                     ("img3.mp4", "linked/c.mp4")):
        text = text.replace(old + ",", new + ",", 1)
    report.write_text(text)
    again = recover(dump, out)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["a.3gp", "b.jpg", "c.mp4"]
    assert "Kept" not in again.log
    assert again.shas() == [sha256(f) for f in files]


# A report is read back by the next run: mutated, it must never crash that run.
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

REPORT = (
    "file,type,offset,size,status,detail,model,datetime,serial,pieces,original_name,"
    "name_source,fs_time,sha256\r\n"
    "img1.3gp,3gp,1024,28561,complete,,,2005-10-28T17:36:40,,1024-29585,,,,%s\r\n"
    "damaged/img2.cr3,cr3,30720,96800,damaged,holds img3.jpg at +32768,,,,30720-127520,,,,%s\r\n"
    "damaged/img2.cr3.jpg,jpg,43544,16199,complete,the thumbnail JPEG inside damaged/img2.cr3,"
    ",,,43544-59743,,,,%s\r\n"
    ",,63488,4169975,interrupted,\"the search stopped at offset 63,488 of 4,169,975 B (1.5%%): "
    "the rest of the dump was not searched; the same command run again goes on from offset "
    "30,720, naming from number 2\",,,,,,,,\r\n") % ("a" * 64, "b" * 64, "c" * 64)


def test_the_report_above_is_read_as_a_run_cut_short():
    path = "/nonexistent"
    earlier = recovercr3.EarlierRun(path, *split_rows(REPORT))
    assert (earlier.resume_at, earlier.counter) == (30720, 1)
    assert [row["file"] for row in earlier.carried] == ["img1.3gp"]
    assert earlier.saved_at(30720, "cr3")["file"] == "damaged/img2.cr3"
    assert earlier.picture_at(43544, "img2.cr3")["file"] == "damaged/img2.cr3.jpg"


def split_rows(text):
    rows = list(csv.DictReader(text.splitlines()))
    return rows[:-1], rows[-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_mutated_report_is_gone_on_from_or_refused_in_one_line(tmp_path, data):
    text = REPORT.encode()
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:at] + data.draw(st.binary(max_size=12)) + text[at + 1:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 40)):]
    path = tmp_path / "report.csv"
    path.write_bytes(text)
    try:
        earlier = recovercr3.EarlierRun.read([str(path)], 4169975)
    except ValueError as e:
        assert str(e).startswith(("it ", "a row")) and "\n" not in str(e)
        return
    assert earlier.resume_at >= 0 and earlier.counter >= 0
    for row in earlier.carried + [r for rows in earlier._saved.values() for r in rows]:
        assert 0 <= int(row["offset"]) <= int(row["offset"]) + int(row["size"]) <= 4169975


def test_a_row_whose_verdict_no_run_gives_is_refused_not_a_traceback(tmp_path):
    # Found by the test below: a NUL before a row's "complete" made its file's name,
    # taken without its status folder, empty; keeping the file then moved the output
    # folder itself.
    dump, files = dumpkit.three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    report = out / "recovercr3-report.csv"
    report.write_bytes(report.read_bytes().replace(b",complete,", b",\x00complete,", 1))
    again = recover(dump, out)
    assert again.rc == 0
    assert "a row of it gives a verdict no run gives, or a file no name" in again.log
    on_disk = {sha256(p.read_bytes()) for p in out.rglob("img*") if p.is_file()}
    assert {sha256(f) for f in files} <= on_disk


@pytest.fixture(scope="module")
def small_card(tmp_path_factory):
    return dumpkit.three_file_card(tmp_path_factory.mktemp("small") / "card.img")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_run_after_a_mutated_report_saves_every_file(tmp_path_factory, small_card, data):
    dump, files = small_card
    out = tmp_path_factory.mktemp("out")
    recover(dump, out)
    report = out / "recovercr3-report.csv"
    text = report.read_bytes()
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.binary(max_size=8)) + text[at + data.draw(
            st.integers(0, 8)):]
    report.write_bytes(text)
    again = recover(dump, out)
    assert again.rc == 0
    on_disk = {sha256(p.read_bytes()) for p in out.rglob("*.*")
               if p.is_file() and p.name.startswith("img")}
    assert {sha256(f) for f in files} <= on_disk


@pytest.mark.skipif(not chromium(), reason="chromium is not installed")
def test_the_sheet_after_a_resumed_run_shows_every_file(tmp_path, card, whole):
    # Stopped after 3 rows, then the same command: index.html is the page of every
    # file, as a run never stopped draws it; rendered by headless Chromium, with the
    # whole pictures its tiles show from their files (the CR3s' thumbnails taken out)
    out = tmp_path / "out"
    ctrl_c_after(card, out, 3)
    assert run_cli("-i", card, "-o", out).returncode == 0
    assert tiles(out / "index.html") == whole[2]
    page = (out / "index.html").read_text()
    assert page.count("<figure") == len([row for row in whole[1] if row["file"]])
    pixels = screenshot(out / "index.html", tmp_path / "sheet-after-resume.png", 1200, 1400)
    assert len(set(pixels[::997])) > 20                 # not blank: many colours


def test_a_report_of_the_version_before_the_meaning_column_is_gone_on_from(tmp_path, card,
                                                                           whole):
    # an upgrade between a run cut short and the same command again: the earlier
    # report has no meaning column, and its files are kept all the same
    out = tmp_path / "out"
    ctrl_c_after(card, out, 6)
    report = out / "recovercr3-report.csv"
    with open(str(report), newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    at = table[0].index("meaning")
    with open(str(report), "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(row[:at] + row[at + 1:] for row in table)
    before = files_on_disk(out)
    again = run_cli("-i", card, "-o", out)
    assert again.returncode == 0 and "going on from offset" in again.stderr
    assert newest_report(out).read_bytes() == whole[0]
    after = files_on_disk(out)
    kept = [name for name in before if name in after and after[name] == before[name]]
    assert len(kept) >= 4
