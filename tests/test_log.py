"""What a run says: recovercr3.log in the output directory (a case file's record of
every run) and the summary a photographer reads at the end."""

import collections
import csv
import os
import re

import dumpkit
import recovercr3 as r
from conftest import run_cli
from dumpkit import build_dump, corpus_file


def pad(data):
    """data, then zeros up to the next sector: the next file starts on one."""
    return data + bytes(-len(data) % 512)


def test_each_run_appends_its_lines_between_a_header_and_a_footer(tmp_path):
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, movie, 512)
    runs = [run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out") for _ in range(2)]
    assert [p.returncode for p in runs] == [0, 0]
    text = (tmp_path / "out" / "recovercr3.log").read_text()
    blocks = text.split("\n\n")[:-1]
    assert len(blocks) == 2
    for block, p in zip(blocks, runs):
        lines = block.splitlines()
        assert lines[0].startswith("=== recovercr3 %s, started 20" % r.__version__)
        assert lines[1].startswith("=== command: recovercr3 -i ")
        assert lines[2] == "=== input: %s, %s B" % (tmp_path / "card.img", "{:,d}".format(
            os.path.getsize(tmp_path / "card.img")))
        assert lines[3] == "=== " + r.TURBOJPEG.describe()  # which decoder checked JPEGs
        assert re.fullmatch(r"=== ended 20\S+Z after \d+\.\d s, exit status 0", lines[-1])
        assert lines[4:-1] == p.stderr.splitlines()          # what the terminal said


def test_a_log_that_is_a_symlink_is_not_followed(tmp_path):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"), 512)
    (tmp_path / "out").mkdir()
    (tmp_path / "precious").write_text("keep me")
    os.symlink(str(tmp_path / "precious"), str(tmp_path / "out" / "recovercr3.log"))
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out")
    assert p.returncode == 0
    assert "cannot keep the log in" in p.stderr
    assert (tmp_path / "precious").read_text() == "keep me"


def test_the_summary_counts_each_type_by_verdict_and_says_where_to_look(tmp_path):
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    movie = corpus_file("mei_sample.3gp")
    broken = bytearray(movie)
    broken[broken.find(b"stsz") + 12:broken.find(b"stsz") + 16] = b"\0\0\0\1"   # 1 sample
    build_dump(tmp_path / "card.img", 512, pad(jpeg), pad(jpeg), pad(movie), pad(bytes(broken)),
               512, movie[:20000])
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out")
    lines = p.stderr.splitlines()
    written = sum(f.stat().st_size for f in (tmp_path / "out").rglob("*.*")
                  if f.name.startswith("img"))
    assert lines[-3] == "[INFO] 3GP 1 complete, 1 truncated, 1 damaged; JPG 2 complete"
    assert lines[-2] == ("[INFO] Wrote {:,d} B ({:.1f} GB) in {}: look first at {}, then in "
                         "truncated/ and damaged/ (the report says why each is there)".format(
                             written, written / 1e9, tmp_path / "out",
                             tmp_path / "out" / "index.html"))
    assert lines[-1] == "[INFO] Restored 5 file(s)"


def test_a_dry_run_says_the_space_a_real_run_needs_and_keeps_no_log(tmp_path):
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, movie, 512, movie, 512)
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out", "--dry-run")
    lines = p.stderr.splitlines()
    assert lines[-3:] == [
        "[INFO] 3GP 2 complete",
        "[INFO] A real run needs {:,d} B (0.0 GB) free in {}; this one wrote only the "
        "report and the contact sheet".format(2 * len(movie), tmp_path / "out"),
        "[INFO] Dry run: found 2 file(s), wrote none"]
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == [
        ".recovercr3-state", "index.html", "recovercr3-report.csv"]


def test_the_summary_and_the_log_of_a_card_with_every_type_and_verdict(tmp_path):
    # Each count of the summary is the report's, for every type and verdict the card
    # gives (complete, truncated, damaged), and the log keeps exactly what was said.
    card = dumpkit.every_kind_card(tmp_path / "card.img", dumpkit.eos_r_cr3())
    p = run_cli("-i", card, "-o", tmp_path / "out")
    assert p.returncode == 0
    with open(str(tmp_path / "out" / "recovercr3-report.csv"), newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["file"]]
    counts = collections.Counter((row["type"], row["status"]) for row in rows)
    assert {status for _, status in counts} == {"complete", "truncated", "damaged"}
    assert len({kind for kind, _ in counts}) == 11
    totals = collections.Counter(row["type"] for row in rows)
    expected = "; ".join(
        "%s %s" % (kind.upper(), ", ".join("%d %s" % (counts[(kind, status)], status)
                                         for status in ("complete", "truncated", "damaged")
                                         if counts[(kind, status)]))
        for kind, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0])))
    lines = p.stderr.splitlines()
    assert lines[-3] == "[INFO] " + expected
    written = sum(int(row["size"]) for row in rows)
    assert lines[-2].startswith("[INFO] Wrote {:,d} B".format(written))
    assert lines[-1] == "[INFO] Restored %d file(s)" % len(rows)
    problems = [line for line in lines if line.startswith("[WARNING] ") and "column" in line]
    assert problems == ["[WARNING] %d truncated, %d damaged: the meaning column of %s says, "
                        "for each, what is missing and what can still be used" % (
        sum(n for (_, s), n in counts.items() if s == "truncated"),
        sum(n for (_, s), n in counts.items() if s == "damaged"),
        tmp_path / "out" / "recovercr3-report.csv")]
    # each broken file is said in plain words, its row's meaning; its detail with -v
    for row in rows:
        if row["status"] != "complete":
            assert "[WARNING] %s is %s: %s" % (tmp_path / "out" / row["file"], row["status"],
                                               row["meaning"]) in lines
    assert not any("why: " in line for line in lines)
    verbose = run_cli("-i", card, "-o", tmp_path / "verbose", "-v").stderr.splitlines()
    broken = [row for row in rows if row["status"] != "complete"]
    assert broken and all("[DEBUG] why: %s" % row["detail"] in verbose for row in broken)
    block = (tmp_path / "out" / "recovercr3.log").read_text().split("\n\n")[0].splitlines()
    assert block[4:-1] == lines


def test_what_comes_after_the_search_is_said(tmp_path):
    # the progress line ends with the search (0:00:00 left); putting files found in
    # pieces back together comes after it, and took 19 s of silence on a 512 MB
    # formatted bench card: the log says it has begun, and how many files (here the
    # MP4 in two pieces and the two CR3s broken over the files after them)
    card = dumpkit.resume_card(tmp_path / "card.img", dumpkit.eos_r_cr3())
    p = run_cli("-i", card, "-o", tmp_path / "out")
    lines = p.stderr.splitlines()
    (at,) = [i for i, line in enumerate(lines) if "The search is done" in line]
    assert lines[at] == ("[INFO] The search is done; now putting 3 file(s) found in pieces "
                         "back together (on a large card, this can take minutes)")
    after = [line.split()[2].rstrip(",") for line in lines[at:]
             if line.startswith("[INFO] Saving")]
    out = tmp_path / "out"
    assert [os.path.relpath(name, str(out)) for name in after] == [
        "damaged/img4.cr3", "damaged/img4.cr3.jpg", "img7.mp4", "damaged/img8.cr3",
        "damaged/img8.cr3.jpg"]
