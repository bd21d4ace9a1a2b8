"""A GNU ddrescue image and its mapfile: a file that covers any byte ddrescue never
read is damaged, and says which; the others are as they would be without it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recovercr3 as r
from conftest import recover, run_cli
from dumpkit import build_dump, corpus_file, sha256

HEADER = "# Mapfile. Created by GNU ddrescue version 1.27\n# current_pos  current_status  current_pass\n"


def mapfile(path, blocks, position="0x00000000     +               1"):
    """A mapfile of blocks [(pos, size, status)], as ddrescue writes one."""
    lines = [HEADER + position, "#      pos        size  status"]
    lines += ["0x%08X  0x%08X  %s" % block for block in blocks]
    path.write_text("\n".join(lines) + "\n")
    return path


def after(data):
    """Filler bytes after data, to the next sector boundary and one more sector."""
    return -len(data) % 512 + 512


def test_files_inside_across_and_outside_areas_ddrescue_never_read(tmp_path):
    first, movie, second = (corpus_file("mei_Canon_PowerShot_G11.jpg"),
                            corpus_file("gopro_karma.mp4"), corpus_file("mei_Nikon_D70.jpg"))
    at = build_dump(tmp_path / "card.img", 4096, first, after(first), movie,
                    after(movie) + 4096, second, 4096)
    size = (tmp_path / "card.img").stat().st_size
    # unread: 64 KiB in the movie's mdat, and from 1 KiB before the second JPEG into it;
    # the sector before the movie too (nothing's bytes)
    bad_in_movie = at[1] + (1 << 20)
    blocks = [(0, at[1] - 512, "+"), (at[1] - 512, 512, "-"),
              (at[1], bad_in_movie - at[1], "+"), (bad_in_movie, 65536, "-"),
              (bad_in_movie + 65536, at[2] - 1024 - bad_in_movie - 65536, "+"),
              (at[2] - 1024, 3072, "/"), (at[2] + 2048, size - at[2] - 2048, "+")]
    card_map = mapfile(tmp_path / "card.map", blocks)
    out = recover(tmp_path / "card.img", tmp_path / "out", "--mapfile", card_map)
    assert out.rc == 0
    assert "card.map: 69,120 B in 3 area(s) were never read by ddrescue" in out.log
    rows = {int(row["offset"]): row for row in out.rows}
    assert rows[at[0]]["status"] == "complete"                  # all of it was read
    assert sha256((tmp_path / "out" / rows[at[0]]["file"]).read_bytes()) == sha256(first)
    film = rows[at[1]]
    assert film["status"] == "damaged"
    assert film["detail"].startswith("bytes +%d..+%d were never read by ddrescue"
                                     % (bad_in_movie - at[1], bad_in_movie - at[1] + 65536))
    assert film["file"].startswith("damaged/")
    photo = rows[at[2]]
    assert photo["status"] == "damaged"
    assert photo["detail"].startswith("bytes +0..+2048 were never read by ddrescue")
    # the bytes are written as the image has them: only the verdict changes
    assert sha256((tmp_path / "out" / film["file"]).read_bytes()) == sha256(movie)


def test_a_mapfile_shorter_than_the_image_leaves_the_rest_unread(tmp_path):
    jpeg = corpus_file("exiftool_Canon.jpg")
    at = build_dump(tmp_path / "card.img", 4096, jpeg, after(jpeg), jpeg, 4096)
    card_map = mapfile(tmp_path / "card.map", [(0, at[1], "+")])
    out = recover(tmp_path / "card.img", tmp_path / "out", "--mapfile", card_map)
    assert [row["status"] for row in out.rows] == ["complete", "damaged"]
    assert out.rows[1]["detail"].startswith("bytes +0..+%d were never read" % len(jpeg))


@pytest.mark.parametrize("text, says", [
    ("", "has no blocks"),
    (HEADER + "0x0 + 1\n0x0 0x1000 +\n0x1000 0x1000 X\n", "line 5: '0x1000 0x1000 X' is not a"),
    (HEADER + "0x0 + 1\n0x0 0x1000 +\n0x2000 0x1000 +\n", "line 5: the block at 0x2000 should "
                                                          "start at 0x1000"),
    (HEADER + "0x0 + 1\n0x0 0x100000000 +\n", "line 4: the block at 0x0 ends at 0x100000000, "
                                               "past the end of the dump"),
    (HEADER + "0x0 + 1\n0x0 ten +\n", "line 4: '0x0 ten +': pos and size must be numbers"),
    (HEADER + "position\n", "line 3: 'position' is not the current position line"),
], ids=["empty", "status", "gap", "past the end", "not a number", "no position"])
def test_a_mapfile_that_is_not_one_or_does_not_fit_is_a_usage_error(tmp_path, text, says):
    build_dump(tmp_path / "card.img", 1 << 20)
    (tmp_path / "card.map").write_text(text)
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out", "--mapfile",
                tmp_path / "card.map")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = [line for line in p.stderr.splitlines() if line.startswith("[ERROR]")]
    assert says in line, line
    assert not (tmp_path / "out").exists()


def test_a_missing_mapfile_is_a_usage_error(tmp_path):
    build_dump(tmp_path / "card.img", 1 << 20)
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out", "--mapfile",
                tmp_path / "none.map")
    assert p.returncode == 2 and "cannot read the mapfile" in p.stderr


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0x123456789abcdefABCDEF+-/*?# \n", max_size=300))
def test_random_mapfiles_give_holes_or_a_usage_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("map") / "card.map"
    path.write_text(text)
    try:
        holes = r.read_mapfile(str(path), 1 << 20)
    except r.UsageError as e:
        assert str(e).startswith(str(path))
        return
    assert all(0 <= start < end <= 1 << 20 for start, end in holes.ranges)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 300)), max_size=8),
       st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 900)), min_size=1, max_size=4))
def test_holes_in_a_file_of_pieces_are_those_of_its_bytes(ranges, pieces):
    holes = r.Holes((start, start + size) for start, size in ranges)
    bad = {at for start, size in ranges for at in range(start, start + size)}
    file_bytes = [at for offset, size in pieces for at in range(offset, offset + size)]
    holed = [index for index, at in enumerate(file_bytes) if at in bad]
    first, count = holes.in_pieces(pieces)
    assert count == len(holed)
    if holed:
        assert first[0] == holed[0] and first[1] > first[0]
        assert all(index in holed for index in range(first[0], first[1]))
    else:
        assert first is None


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory", "too large"])
def test_a_mapfile_that_is_no_text_file_is_refused_before_it_is_read(tmp_path, kind):
    # A FIFO hung in open() for ever; /dev/zero read 3 GB into memory and ended in a
    # MemoryError traceback. Both are refused from what fstat says, at once; a regular
    # file past any real mapfile's size is refused without being read whole.
    import os
    import time
    build_dump(tmp_path / "card.img", 1 << 20)
    if kind == "fifo":
        os.mkfifo(str(tmp_path / "card.map"))
        path, says = tmp_path / "card.map", "is a FIFO (named pipe), not a ddrescue mapfile"
    elif kind == "/dev/zero":
        path, says = "/dev/zero", "is a character device, not a ddrescue mapfile"
    elif kind == "directory":
        path, says = tmp_path, "is a directory, not a ddrescue mapfile"
    else:
        path = tmp_path / "card.map"
        with open(str(path), "wb") as f:
            f.truncate(r.MAX_MAPFILE_BYTES + 1)           # sparse: nothing written
        says = "is larger than 64 MiB, which no ddrescue mapfile of a card is"
    started = time.monotonic()
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out", "--mapfile", path,
                timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert says in p.stderr and time.monotonic() - started < 30
    assert not (tmp_path / "out").exists()
