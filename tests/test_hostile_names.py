"""What is on the card, and what is already in the output directory, is hostile.

A card's names (its FAT32/exFAT folders, read back) and the files in OUT (links, a
report anyone may have edited, a stray report) are data nobody checked. Each costs
at most its own file, never the run; nothing is written outside OUT; and the tool
deletes, moves or replaces only what it wrote. The cards are made with the real FAT
tools (mkfs.vfat, mmd, mcopy: skipped where they are missing); the naming code is
also fed random names by hypothesis.
"""

import errno
import os
import shutil
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import recovercr3 as r
from conftest import recover
from dumpkit import MtoolsCard, corpus_file, sha256, three_file_card

MTOOLS = all(shutil.which(tool) for tool in ("mkfs.vfat", "mcopy", "mmd", "mdel"))
needs_mtools = pytest.mark.skipif(not MTOOLS, reason="dosfstools or mtools not installed")
SHORTENED = "its name is shortened: the card's is too long for the output's file system"


def broken(name):
    """The corpus JPEG name with 64 bytes of its coded data overwritten: damaged."""
    data = bytearray(corpus_file(name))
    data[len(data) // 2:len(data) // 2 + 64] = bytes(range(64))
    return bytes(data)


def components_fit(out):
    """Every name in out fits a file system's 255 bytes, and every path is in out."""
    for path in out.rglob("*"):
        assert all(len(part.encode()) <= r.MAX_NAME_BYTES
                   for part in path.relative_to(out).parts), path
        assert os.path.realpath(str(path)).startswith(str(out.resolve()) + os.sep)


def by_card_name(out, root):
    """{card name: sha256 of the file saved for it}."""
    return {row["original_name"]: sha256((root / row["file"]).read_bytes())
            for row in out.rows if row["file"]}


# ---------------------------------------------------------------------------
# Names too long for the file system
# ---------------------------------------------------------------------------

@needs_mtools
def test_long_card_names_are_shortened_and_every_file_comes_back(tmp_path):
    # A FAT long name is 255 characters: with ".part" it was 260 bytes, and the run
    # stopped at the first such file (ENAMETOOLONG, exit 1, no last row). Sixteen
    # nested folders of 255 characters are a path longer than the system takes:
    # no file at all. Each name is shortened (its start, a hash, its extension).
    card = MtoolsCard(tmp_path / "card.img")
    card.mkdir("DCIM")
    card.mkdir("OTHER")
    deep = ""
    for level in range(16):
        deep += ("/" if deep else "") + ("F%02d" % level) * 85    # 255 characters each
        card.mkdir(deep)
    sources = ["exiftool_Canon.jpg", "mei_Canon_EOS_5D.jpg", "mei_Nikon_D70.jpg",
               "mei_Canon_EOS_1000D.jpg", "mei_Canon_PowerShot_G11.jpg"]
    names = ["DCIM/" + "L" * 251 + ".JPG",                 # 255 bytes
             "OTHER/" + "L" * 250 + "2.JPG",               # the same start: another hash
             "DCIM/IMG_0003.JPG",
             deep + "/IMG_0004.JPG",
             deep + "/" + "N" * 251 + ".JPG"]
    truth = {}
    for name, source in zip(names, sources):
        card.copy(name, corpus_file(source))
        truth[name] = sha256(corpus_file(source))
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert out.rc == 0, out.log
    assert by_card_name(out, tmp_path / "out") == truth
    rows = {row["original_name"]: row for row in out.rows}
    assert rows["DCIM/IMG_0003.JPG"]["file"] == "DCIM/IMG_0003.JPG"
    assert rows["DCIM/IMG_0003.JPG"]["detail"] == ""
    for name in set(names) - {"DCIM/IMG_0003.JPG"}:
        assert rows[name]["detail"] == SHORTENED
        assert rows[name]["file"] == r.fitted(name, r.path_room(tmp_path / "out"))
    assert rows[names[0]]["file"].startswith("DCIM/LLLL")
    assert rows[names[0]]["file"].endswith(".JPG")
    assert rows[names[0]]["file"][5:] != rows[names[1]]["file"][6:]
    components_fit(tmp_path / "out")
    # the same names on the next run into another folder: shortened the same way
    again = recover(card.path, tmp_path / "again", "--name-by", "original")
    assert sorted(row["file"] for row in again.rows) == sorted(row["file"] for row in out.rows)


@needs_mtools
def test_a_long_name_that_crosses_into_the_folders_next_cluster_is_not_given_in_part(tmp_path):
    # Two names of 21 entries each fill more than a 1 KiB folder cluster: the second
    # one's first parts are in the next cluster of the folder. Its parts in this one
    # counted down and checked out, and the file was called by the end of its name
    # alone; a name is only read from its first part on (else the short name is it).
    card = MtoolsCard(tmp_path / "card.img", folders=["DCIM"])
    card.copy("DCIM/" + "L" * 251 + ".JPG", corpus_file("exiftool_Canon.jpg"))
    card.copy("DCIM/" + "L" * 250 + "2.JPG", corpus_file("mei_Canon_EOS_5D.jpg"))
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert sorted(row["original_name"] for row in out.rows) == [
        "DCIM/" + "L" * 251 + ".JPG", "DCIM/LLLLLL~2.JPG"]


def test_a_fitted_name_keeps_its_extension_and_fits_as_it_is():
    long = "x" * 300 + ".CR3"
    short = r.fitted("DCIM/" + long, 4000)
    assert short.startswith("DCIM/xxx") and short.endswith(".CR3")
    assert len(short.split("/")[1].encode()) == r.NAME_ROOM
    assert r.fitted(short, 4000) == short
    assert r.fitted("DCIM/" + "x" * 300 + ".CR3", 4000) == short        # stable
    assert r.fitted("DCIM/" + "x" * 299 + "y.CR3", 4000) != short       # another hash
    deep = "/".join(["a" * 200] * 30) + "/IMG_0001.CR3"
    assert r.fitted(deep, 1000).count("/") == 30 and len(r.fitted(deep, 1000)) <= 1000
    assert r.fitted(deep, 100) == "IMG_0001.CR3"                      # its folders dropped
    short = r.shortened("\u00e9" * 200, 50)     # whole characters, within the bytes
    assert len(short.encode("utf-8")) <= 50 and short.startswith("\u00e9" * 16)


# ---------------------------------------------------------------------------
# A card's folder named like a file
# ---------------------------------------------------------------------------

def far_next_free(card):
    """Make the next write go far from the data before it (FSInfo's next-free hint),
    so that a quick format's old folders and files stay where they are."""
    with open(str(card.path), "r+b") as f:
        boot = f.read(512)
        fsinfo = int.from_bytes(boot[48:50], "little")
        f.seek(fsinfo * 512 + 492)
        f.write(struct.pack("<I", 40000))


@needs_mtools
def test_a_folder_named_like_a_damaged_file_costs_no_file(tmp_path):
    # A damaged JPEG whose orphaned folder gives it the name "holiday photos.jpg",
    # and, after a quick format, a folder of that name holding another damaged JPEG:
    # damaged/holiday photos.jpg was a file where the second one needed a folder.
    # "File exists", exit 1, every rerun the same.
    card = MtoolsCard(tmp_path / "card.img")
    card.mkdir("DCIM")
    first, second = broken("mei_Canon_EOS_5D.jpg"), broken("mei_Nikon_D70.jpg")
    card.copy("DCIM/holiday photos.jpg", first)
    card.format()
    far_next_free(card)
    card._run("mmd", "-i", str(card.path), "::/holiday photos.jpg")
    source = tmp_path / "source.jpg"
    source.write_bytes(second)
    far_next_free(card)
    card._run("mcopy", "-i", str(card.path), str(source), "::/holiday photos.jpg/IMG_0003.JPG")
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert out.rc == 0, out.log
    assert by_card_name(out, tmp_path / "out") == {
        "holiday photos.jpg": sha256(first), "holiday photos.jpg/IMG_0003.JPG": sha256(second)}
    assert [row["file"] for row in out.rows] == ["damaged/holiday photos.jpg",
                                                 "damaged/IMG_0003.JPG"]


@pytest.mark.parametrize("order", ["file first", "folder first"])
@pytest.mark.parametrize("status", [r.COMPLETE, r.DAMAGED])
def test_a_file_and_a_folder_of_one_name_both_get_a_place(tmp_path, order, status):
    # The same clash through OutputDir: whichever is claimed and placed first.
    outdir = r.OutputDir(tmp_path / "out", "original")
    carved = r.Carved(0, 1, "jpg", "jpg", status, "", [])
    names = ["a/x.jpg", "a/x.jpg/y.jpg"]
    if order == "folder first":
        names.reverse()
    claims = [outdir.claim(outdir.names_for(carved, r.Naming(name, "entry", "")))
              for name in names]
    placed = []
    for claim, name in zip(claims, names):
        os.write(claim.fd, name.encode())
        claim.close()
        placed.append(outdir.finish(claim, status))
    outdir.close()
    for relpath, name in zip(placed, names):
        assert (tmp_path / "out" / relpath).read_bytes() == name.encode()
    assert len(set(placed)) == 2


# ---------------------------------------------------------------------------
# Links in the output directory
# ---------------------------------------------------------------------------

@needs_mtools
@pytest.mark.parametrize("linked", ["DCIM", "damaged", "DCIM/100CANON"])
def test_nothing_is_written_through_a_link_in_the_output_directory(tmp_path, linked):
    card = MtoolsCard(tmp_path / "card.img", folders=["DCIM", "DCIM/100CANON"])
    good, bad = corpus_file("exiftool_Canon.jpg"), broken("mei_Nikon_D70.jpg")
    card.copy("DCIM/100CANON/IMG_0001.JPG", good)
    card.copy("DCIM/100CANON/IMG_0002.JPG", bad)
    out = tmp_path / "out"
    (out / os.path.dirname(linked)).mkdir(parents=True, exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(str(elsewhere), str(out / linked))
    result = recover(card.path, out, "--name-by", "original")
    assert result.rc == 0, result.log
    assert list(elsewhere.iterdir()) == []
    assert by_card_name(result, out) == {"DCIM/100CANON/IMG_0001.JPG": sha256(good),
                                         "DCIM/100CANON/IMG_0002.JPG": sha256(bad)}
    for row in result.rows:
        assert not (row["file"] + "/").startswith(linked + "/")
        assert os.path.realpath(str(out / row["file"])).startswith(str(out.resolve()))
    assert "%s is a symbolic link" % (out / linked) in result.log
    assert os.path.islink(str(out / linked))


# ---------------------------------------------------------------------------
# A second run deletes, moves or replaces only what a run wrote
# ---------------------------------------------------------------------------

def edit_report(out, old_name, new_name, size, sha, status=None, end=None):
    """Rewrite the row of old_name in out's report (a report is only text)."""
    report = out / "recovercr3-report.csv"
    lines = report.read_text(encoding="utf-8").splitlines(keepends=True)
    for index, line in enumerate(lines):
        cells = line.split(",")
        if cells[0] == old_name:
            cells[0], cells[3], cells[-1] = new_name, str(size), sha + "\r\n"
            if status:
                cells[4] = status
            lines[index] = ",".join(cells)
    if end is not None:
        lines[-1] = end
    report.write_text("".join(lines), encoding="utf-8", newline="")


CUT_AT_START = (",,0,{size},interrupted,\"the search stopped at offset 0 of {size:,d} B (0.0%): "
                "the rest of the dump was not searched; the same command run again goes on from "
                "offset 0, naming from number 1\",,,,,,,,\r\n")


@pytest.mark.parametrize("how", ["replaced", "moved"])
def test_a_second_run_leaves_a_file_it_did_not_write(tmp_path, how):
    # A report row edited to name precious.jpg, a user's file: the next run took it
    # for its own copy, and deleted it to write its own (replaced), or moved it to
    # the folder of the row's file's verdict (moved). Now its sha256 is checked first.
    dump, files = three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    precious = b"the only copy of a user's picture"
    if how == "replaced":       # a run cut short: its rows' verdicts are not final
        (out / "precious.jpg").write_bytes(precious)
        edit_report(out, "img2.jpg", "precious.jpg", len(precious), "0" * 64,
                    end=CUT_AT_START.format(size=os.path.getsize(str(dump))))
        where = out / "precious.jpg"
    else:                       # the file's own sha256, but not the file
        (out / "damaged").mkdir()
        (out / "damaged" / "precious.jpg").write_bytes(precious)
        edit_report(out, "img2.jpg", "damaged/precious.jpg", len(precious),
                    sha256(files[1]), status="damaged")
        where = out / "damaged" / "precious.jpg"
    again = recover(dump, out)
    assert again.rc == 0, again.log
    assert where.read_bytes() == precious
    assert again.shas() == [sha256(f) for f in files]
    assert str(where) not in [str(out / row["file"]) for row in again.rows]


# ---------------------------------------------------------------------------
# The tool's own names
# ---------------------------------------------------------------------------

def test_a_stray_report_is_not_taken_for_the_last_runs(tmp_path):
    # recovercr3-report-99.csv in OUT (a card's file saved there by an older version,
    # or anyone's) was taken for the newest report: every rerun saved every file
    # again. The state file names the last run's report.
    dump, files = three_file_card(tmp_path / "card.img")
    out = tmp_path / "out"
    recover(dump, out)
    (out / "recovercr3-report-99.csv").write_bytes(corpus_file("exiftool_Canon.jpg"))
    again = recover(dump, out)
    assert again.rc == 0
    assert again.log.splitlines()[-1] == "[INFO] Nothing new: 3 file(s) already in %s, " \
        "listed in %s" % (out, out / "recovercr3-report.csv")
    assert "Saving" not in again.log
    assert r.read_state(out) == [str(out / "recovercr3-report.csv")]


@pytest.mark.parametrize("state", [
    b"", b"recovercr3 state 1\n", b"recovercr3 state 1\n../recovercr3-report.csv\n",
    b"recovercr3 state 1\n/etc/passwd\n", b"recovercr3 state 9\nrecovercr3-report.csv\n",
    b"recovercr3 state 1\nrecovercr3-report.csv\x00\n", b"\xff\xfe",
    b"recovercr3 state 1\n" + b"recovercr3-report.csv\n" * 20000])
def test_a_state_file_that_is_not_the_tools_names_no_report(tmp_path, state):
    (tmp_path / r.STATE_NAME).write_bytes(state)
    assert r.read_state(tmp_path) == []


def test_a_state_file_that_is_a_link_or_a_fifo_is_not_read(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("recovercr3 state 1\nrecovercr3-report.csv\n")
    os.symlink(str(target), str(tmp_path / r.STATE_NAME))
    assert r.read_state(tmp_path) == []
    os.unlink(str(tmp_path / r.STATE_NAME))
    os.mkfifo(str(tmp_path / r.STATE_NAME))
    assert r.read_state(tmp_path) == []         # and no wait for a writer


# ---------------------------------------------------------------------------
# Random names: every file placed, inside OUT, and no exception
# ---------------------------------------------------------------------------

PART = st.one_of(
    st.text(min_size=0, max_size=300),
    st.sampled_from(["..", ".", "", " ", "index.html", "INDEX-2.HTML", "recovercr3.log",
                     "recovercr3-report.csv", ".recovercr3-state", "damaged", "truncated",
                     "a", "a.jpg", "x" * 255, "\u00e9" * 200, "a\\b", "c:d", "\x07"]))
CARD_PATH = st.lists(PART, min_size=1, max_size=20).map("/".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(CARD_PATH, st.sampled_from([r.COMPLETE, r.TRUNCATED, r.DAMAGED])),
                min_size=1, max_size=8),
       st.sampled_from([None, "DCIM", "damaged", "a"]))
def test_random_card_names_each_give_a_file_inside_the_output(files, linked):
    root = tempfile.mkdtemp()
    try:
        out = os.path.join(root, "out")
        outside = os.path.join(root, "outside")
        os.makedirs(out)
        os.mkdir(outside)
        if linked:
            os.symlink(outside, os.path.join(out, linked))
        outdir = r.OutputDir(out, "original")
        placed = []
        for number, (path, status) in enumerate(files):
            carved = r.Carved(0, 1, "jpg", "jpg", status, "", [])
            claim = outdir.claim(outdir.names_for(carved, r.Naming(path, "entry", "")))
            os.write(claim.fd, b"%d" % number)
            claim.close()
            placed.append(outdir.finish(claim, status))
        outdir.close()
        assert os.listdir(outside) == []
        for number, (relpath, (_, status)) in enumerate(zip(placed, files)):
            path = os.path.join(out, relpath)
            assert os.path.realpath(path).startswith(os.path.realpath(out) + os.sep)
            assert not os.path.islink(path)
            with open(path, "rb") as f:
                assert f.read() == b"%d" % number
            assert all(len(part.encode("utf-8", "surrogateescape")) <= r.MAX_NAME_BYTES
                       for part in relpath.split("/"))
            if status == r.COMPLETE:            # at the top: none of the tool's names
                assert not r.RESERVED_TOP.match(relpath.split("/")[0])
    finally:
        shutil.rmtree(root)


# ---------------------------------------------------------------------------
# One file's error, or the output's
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("error, stops", [(errno.EACCES, False), (errno.EINVAL, False),
                                          (errno.EIO, True), (errno.EROFS, True)])
def test_an_error_writing_one_file_costs_that_file_unless_the_output_is_gone(
        tmp_path, monkeypatch, error, stops):
    # The second file's copy fails: a refusal (EACCES, EINVAL) is that file's, and the
    # run goes on; a lost or read-only output disk (EIO, EROFS) stops it, said once.
    dump, files = three_file_card(tmp_path / "card.img")
    real = r.Dump.copy_to
    copies = []

    def copy_to(self, fd, start, size, checkpoint, digest=None):
        copies.append(start)
        if len(copies) == 2:
            raise OSError(error, os.strerror(error))
        return real(self, fd, start, size, checkpoint, digest)

    monkeypatch.setattr(r.Dump, "copy_to", copy_to)
    out = recover(dump, tmp_path / "out")
    assert out.rc == 1 and "Traceback" not in out.log
    statuses = [row["status"] for row in out.rows]
    assert statuses[:2] == ["complete", "not saved"]
    if stops:
        assert "[ERROR] cannot write to %s: %s" % (tmp_path / "out", os.strerror(error)) \
            in out.log
        assert len(statuses) == 2 or statuses[2] == "not saved"
    else:
        assert statuses[2] == "complete" and out.shas() == [sha256(files[0]), sha256(files[2])]
    assert not list((tmp_path / "out").rglob("*.part"))


# ---------------------------------------------------------------------------
# Names every system and drive takes (Windows, macOS; FAT32, exFAT, NTFS)
# ---------------------------------------------------------------------------

WINDOWS_FORBIDDEN = set('<>:"\\|?*') | {chr(code) for code in range(32)}
DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    kind + digit for kind in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}


def windows_takes(part):
    """True when Windows (and an NTFS, exFAT or FAT32 drive) takes part as a name."""
    return (part not in ("", ".", "..") and not set(part) & WINDOWS_FORBIDDEN
            and not part.endswith((".", " ")) and part.split(".")[0].upper() not in DEVICES
            and len(part.encode("utf-16-le")) // 2 <= 255)


def macos_takes(part):
    """True when APFS and HFS+ take part as a name (and Finder shows it as it is)."""
    return part not in ("", ".", "..") and ":" not in part and "\0" not in part \
        and len(part.encode("utf-8")) <= 255


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=300), st.sampled_from(
    ["CON", "con.txt", "Com1.JPG", "LPT9", "nul.tar.gz", "AUX.", "a. . ", "x:y", "a<b>",
     "what?", "*", "IMG_0001.JPG ", "\u00e9" * 200, "COM\u00b9"])), min_size=1, max_size=12))
def test_a_fitted_name_is_one_windows_and_macos_take(parts):
    name = r.card_path("/".join(parts))
    if not name:
        return                                  # no name: the file keeps imgN
    given = r.fitted(name, 260 - len("C:\\Users\\someone\\recovered\\"))
    assert given == r.fitted(given, 260 - len("C:\\Users\\someone\\recovered\\"))
    for part in given.split("/"):
        assert windows_takes(part) and macos_takes(part), part
        assert windows_takes(part + r.PART_SUFFIX) and macos_takes(part + r.PART_SUFFIX)


def test_two_card_names_that_differ_only_in_case_get_two_names(tmp_path):
    # On Linux both fit; copied to a Mac or Windows (or written to an exFAT drive)
    # one would take the other's place. So would an accent composed or not.
    outdir = r.OutputDir(tmp_path / "out", "original")
    carved = r.Carved(0, 1, "jpg", "jpg", r.COMPLETE, "", [])
    given = []
    for name in ["DCIM/100CANON/IMG_0001.JPG", "dcim/100canon/img_0001.jpg",
                 "DCIM/Caf\u00e9.jpg", "DCIM/Cafe\u0301.jpg"]:
        claim = outdir.claim(outdir.names_for(carved, r.Naming(name, "entry", "")))
        claim.close()
        given.append(outdir.finish(claim, r.COMPLETE))
    outdir.close()
    assert given == ["DCIM/100CANON/IMG_0001.JPG", "dcim/100canon/img_0001-2.jpg",
                     "DCIM/Caf\u00e9.jpg", "DCIM/Cafe\u0301-2.jpg"]
    assert len({r.same_name(name) for name in given}) == 4
