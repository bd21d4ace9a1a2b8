"""index.html, the contact sheet: a tile per file with its thumbnail (from the file
itself), link, type, size, camera, date, card name and verdict badge; parsed here
with html.parser, and rendered by headless Chromium where it is installed."""

import base64
import csv
import os
import re
import time
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings, strategies as st

from conftest import chromium, recover, run_cli, screenshot
import dumpkit



class Page(HTMLParser):
    """The tiles of a contact sheet: [{class, links, img, svg, badge, title, text}]."""

    def __init__(self):
        super().__init__()
        self.tiles, self.scripts, self.anchors = [], 0, []
        self._tile = None
        self._badge = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.anchors.append(attrs["href"])
        if tag == "figure":
            self._tile = {"class": attrs["class"].split(), "links": [], "img": None,
                          "svg": False, "badge": None, "title": None, "text": ""}
            self.tiles.append(self._tile)
        elif self._tile is not None:
            if tag == "a":
                self._tile["links"].append(attrs["href"])
            elif tag == "img":
                self._tile["img"] = attrs["src"]
            elif tag == "svg":
                self._tile["svg"] = True
            elif tag == "span" and "badge" in attrs.get("class", ""):
                self._tile["badge"] = attrs["class"].split()[1]
                self._tile["title"] = attrs.get("title")
                self._badge = True

    def handle_endtag(self, tag):
        if tag == "figure":
            self._tile = None
        self._badge = False

    def handle_data(self, data):
        if self._tile is not None:
            self._tile["text"] += data


def parse(path):
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def every_kind(tmp_path, eos_r_cr3):
    return dumpkit.every_kind_card(tmp_path / "card.img", eos_r_cr3)


def test_a_tile_per_file_with_its_thumbnail_link_and_badge(tmp_path, every_kind):
    out = recover(every_kind, tmp_path / "out")
    page = parse(tmp_path / "out" / "index.html")
    assert out.rc == 0
    assert page.scripts == 0                             # the markup model stays text
    rows = out.rows                                     # in card order (offset)
    assert [tile["links"][0] for tile in page.tiles] == [row["file"] for row in rows]
    assert {row["type"] for row in rows} >= {"cr3", "jpg", "mp4", "wav", "heif", "mov",
                                             "avi", "cr2", "dng", "crw", "7z"}
    by_link = {tile["links"][0]: tile for tile in page.tiles}
    for row in rows:
        tile = by_link[row["file"]]
        assert tile["badge"] == row["status"] and ("t-" + row["type"]) in tile["class"]
        assert (tile["title"] or "") == row["detail"]       # the technical words, on hover
        if row["status"] != "complete" or re.match(r"the \S+ JPEG inside ", row["detail"]):
            assert tile["text"].endswith(row["meaning"])    # and the plain ones, shown
        else:                                               # but for "Whole: ..."
            assert row["meaning"] not in tile["text"]
        assert format(int(row["size"]), ",d") + " B" in tile["text"]
        assert all(link == row["file"] for link in tile["links"])
        if tile["img"]:
            jpeg = base64.b64decode(tile["img"].split(",", 1)[1])
            assert jpeg[:2] == b"\xff\xd8" and len(jpeg) <= 320 << 10
    kinds = {row["type"]: by_link[row["file"]] for row in rows if row["status"] == "complete"}
    assert kinds["cr3"]["img"] and kinds["jpg"]["img"]    # THMB, Exif IFD1, small JPEG
    assert kinds["crw"]["img"]                           # the JPEG preview it holds
    assert kinds["mp4"]["svg"] and "MP4" in kinds["mp4"]["text"]
    assert kinds["wav"]["svg"]
    statuses = {row["status"] for row in rows}
    assert statuses == {"complete", "damaged", "truncated"}
    script_tile = [t for t in page.tiles if "<script>alert(1)</scr>" in t["text"]]
    assert len(script_tile) == 1                        # shown, as text
    assert {"#complete", "#damaged", "#truncated", "#t-cr3", "#"} <= set(page.anchors)
    # the movie shows its duration from mvhd (12.08 s)
    assert "0:12" in kinds["mp4"]["text"]


def test_a_dry_run_writes_the_page_with_nothing_linked(tmp_path, every_kind):
    p = run_cli("-i", every_kind, "-o", tmp_path / "out", "--dry-run")
    assert p.returncode == 0, p.stderr
    with open(str(tmp_path / "out" / "recovercr3-report.csv"), newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["type"]]     # not the last row
    page = parse(tmp_path / "out" / "index.html")
    assert len(page.tiles) == len(rows) > 5
    assert all(not tile["links"] and "(not written)" in tile["text"] for tile in page.tiles)
    assert any(tile["img"] for tile in page.tiles)      # thumbnails read from the dump


@pytest.fixture
def small_card(tmp_path):
    """A 3GP, a JPEG and an MP4: enough for what a later run does with the page."""
    return dumpkit.three_file_card(tmp_path / "small.img")[0]


def test_no_html_writes_no_page(tmp_path, every_kind):
    recover(every_kind, tmp_path / "none", "--no-html")
    assert not list((tmp_path / "none").glob("index*"))


def test_a_later_run_s_sheet_replaces_the_earlier_one(tmp_path, small_card):
    # a user opens index.html: it is the page of everything in OUT after the latest
    # run (here one with more types, which keeps the first run's files and adds)
    out = tmp_path / "out"
    first = recover(small_card, out, "--types", "jpg")
    second = recover(small_card, out)
    assert sorted(p.name for p in out.glob("index*")) == ["index.html"]
    links = [tile["links"][0] for tile in parse(out / "index.html").tiles]
    assert links == [row["file"] for row in second.rows]
    assert set(row["file"] for row in first.rows) < set(links)
    assert not list(out.glob(".*.part"))
    assert "look first at %s" % (out / "index.html") in second.log


@pytest.mark.parametrize("option", ["--restart", "--dry-run"])
def test_a_run_that_does_not_go_on_keeps_the_earlier_sheet_dated(tmp_path, small_card,
                                                                  option):
    # --restart saves every file again, under new names, and a dry run saves none:
    # their page shows only their own files, so the earlier page, whose files are
    # still there, is kept under the date it was written
    out = tmp_path / "out"
    first = recover(small_card, out)
    old_page = (out / "index.html").read_bytes()
    os.utime(str(out / "index.html"), (0, 1796629501))         # 2026-12-07 15:45:01 UTC
    assert run_cli("-i", small_card, "-o", out, option).returncode == 0
    dated = "index-%s.html" % time.strftime("%Y%m%d-%H%M%S", time.localtime(1796629501))
    assert sorted(p.name for p in out.glob("index*")) == sorted([dated, "index.html"])
    assert (out / dated).read_bytes() == old_page
    tiles = parse(out / "index.html").tiles
    assert len(tiles) == len(first.rows)
    if option == "--restart":
        assert not {tile["links"][0] for tile in tiles} & {row["file"] for row in first.rows}


def kept(path):
    """What says a file is the same one (read, its access time moves)."""
    st = path.lstat()
    return st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns


@pytest.mark.parametrize("theirs", ["page", "link", "folder", "older sheet"])
def test_a_page_that_is_not_an_earlier_sheet_is_kept(tmp_path, small_card, theirs):
    # a user's own index.html, a link (to anything: never followed), a folder, or
    # the sheet of an older version (no signature) stay as they are; the sheet is
    # index-2.html, which the next run replaces in turn
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "mine.html").write_text("<p>my notes</p>")
    if theirs == "page":
        (out / "index.html").write_text("<p>my notes</p>")
    elif theirs == "link":
        (out / "index.html").symlink_to(tmp_path / "mine.html")
    elif theirs == "folder":
        (out / "index.html").mkdir()
    else:
        (out / "index.html").write_text('<!DOCTYPE html>\n<html lang="en"><head>...')
    before = {p.name: kept(p) for p in out.iterdir()}
    first = recover(small_card, out, "--types", "jpg")
    second = recover(small_card, out)
    assert sorted(p.name for p in out.glob("index*")) == ["index-2.html", "index.html"]
    assert kept(out / "index.html") == before["index.html"]
    assert (tmp_path / "mine.html").read_text() == "<p>my notes</p>"
    links = [tile["links"][0] for tile in parse(out / "index-2.html").tiles]
    assert links == [row["file"] for row in second.rows] and len(first.rows) < len(links)


@pytest.mark.skipif(not chromium(), reason="chromium is not installed")
def test_headless_chromium_renders_the_page(tmp_path, every_kind):
    recover(every_kind, tmp_path / "out")
    pixels = screenshot(tmp_path / "out" / "index.html", tmp_path / "page.png")
    assert len(set(pixels[::997])) > 20                 # not blank: many colours


def without_exif(jpeg):
    """jpeg without its APP1 segments (Exif, and the thumbnail in it)."""
    out, pos = bytearray(jpeg[:2]), 2
    while jpeg[pos + 1] != 0xDA:                             # up to the scan
        length = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        if jpeg[pos + 1] != 0xE1:
            out += jpeg[pos:pos + 2 + length]
        pos += 2 + length
    return bytes(out + jpeg[pos:])


def grown(jpeg, size):
    """A real JPEG grown to exactly size bytes by comment segments after its SOI."""
    out, grow = bytearray(jpeg[:2]), size - len(jpeg)
    while grow:
        part = min(grow, 65537) if grow - min(grow, 65537) not in (1, 2, 3) else grow - 4
        out += b"\xff\xfe" + (part - 2).to_bytes(2, "big") + bytes(part - 4)
        grow -= part
    return bytes(out + jpeg[2:])


def test_a_whole_picture_without_a_small_thumbnail_is_shown_from_its_file(tmp_path, eos_r_cr3):
    # The full-size JPEG taken out of a cut CR3 (its EOS R track, here a real JPEG of
    # the corpus with no Exif thumbnail, grown to the track's size) and a large whole
    # JPEG without one were grey boxes: too large to embed, nothing small in them.
    # Their tiles show the file itself, from beside the page.
    full = (403258, 2467426)                    # the JPEG track's one sample
    big = without_exif(dumpkit.corpus_file("mei_Canon_EOS_5D.jpg"))
    cr3 = eos_r_cr3[:full[0]] + grown(big, full[1] - full[0]) + eos_r_cr3[full[1]:]
    dumpkit.build_dump(tmp_path / "card.img", 4096, big, -len(big) % 512 + 4096,
                       cr3[:full[1] + 100000])
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [
        ("img1.jpg", "complete"), ("truncated/img2.cr3", "truncated"),
        ("truncated/img2.cr3.jpg", "complete")]
    assert "the full-size JPEG inside" in out.rows[2]["detail"]
    page = parse(tmp_path / "out" / "index.html")
    shown = {tile["links"][0]: tile["img"] for tile in page.tiles}
    assert shown["truncated/img2.cr3"].startswith("data:image/jpeg;base64,")   # its THMB
    assert (shown["img1.jpg"], shown["truncated/img2.cr3.jpg"]) == (
        "img1.jpg", "truncated/img2.cr3.jpg")
    assert 'loading="lazy"' in (tmp_path / "out" / "index.html").read_text()
    # a JPEG with a hole is no whole picture: its tile stays an icon
    broken = big[:200000] + bytes(300000) + big[500000:]
    dumpkit.build_dump(tmp_path / "holed.img", 4096, broken, 4096)
    recover(tmp_path / "holed.img", tmp_path / "holed")
    (tile,) = parse(tmp_path / "holed" / "index.html").tiles
    assert tile["badge"] == "damaged" and tile["img"] is None and tile["svg"]


def quadrants(mode, size=(640, 480)):
    """A picture of four colours, one a quadrant (Pillow), and those colours in RGB."""
    from PIL import Image
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (240, 240, 240)]
    image = Image.new("RGB", size)
    w, h = size[0] // 2, size[1] // 2
    for i, colour in enumerate(colours):
        image.paste(colour, (i % 2 * w, i // 2 * h, (i % 2 + 1) * w, (i // 2 + 1) * h))
    if mode == "L":
        image = image.convert("L")
        colours = [(v, v, v) for v in (image.getpixel((w // 2 + i % 2 * w, h // 2 + i // 2 * h))
                                       for i in range(4))]
    return image, colours


@pytest.mark.parametrize("mode, compression, shown", [
    ("RGB", "raw", True), ("L", "raw", True), ("RGB", "tiff_lzw", False)])
def test_a_plain_tiff_is_shown_by_its_pixels(tmp_path, mode, compression, shown):
    # a TIFF of an editor or a scanner has no thumbnail of its own, and a browser
    # shows no TIFF: its pixels, sampled to the tile, make a PNG in the page
    import io
    from PIL import Image
    image, colours = quadrants(mode)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", compression=compression)
    data = buffer.getvalue()
    dumpkit.build_dump(tmp_path / "card.img", 4096, data, -len(data) % 512 + 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["type"], row["status"]) for row in out.rows] == [("tif", "complete")]
    (tile,) = parse(tmp_path / "out" / "index.html").tiles
    if not shown:                               # LZW: not decoded, an icon
        assert tile["img"] is None and tile["svg"]
        return
    assert tile["img"].startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(tile["img"].split(",", 1)[1])))
    assert png.size == (180, 135)
    w, h = png.size[0] // 2, png.size[1] // 2
    assert [png.convert("RGB").getpixel((w // 2 + i % 2 * w, h // 2 + i // 2 * h))
            for i in range(4)] == colours


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mutated_tiff_gives_a_picture_or_none(data):
    import io
    import recovercr3 as r
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(buffer, "TIFF")
    tiff = bytearray(buffer.getvalue())
    for _ in range(data.draw(st.integers(1, 8))):
        tiff[data.draw(st.integers(0, len(tiff) - 1))] = data.draw(st.integers(0, 255))
    tiff = bytes(tiff)
    try:
        png = r.tiff_picture(lambda at, n: tiff[at:at + max(0, n)], len(tiff))
    except (r.FormatError, r.struct.error):
        return
    assert png is None or png.startswith(r.PNG_SIGNATURE)


def test_a_tiff_of_a_hostile_width_reads_no_row_of_it():
    # a row is read whole for the tile: a TIFF one pixel high and 2^26 wide, its
    # strips over a 64 MiB file, would read them all at once (memory stays flat)
    import struct
    import recovercr3 as r
    width = 1 << 26
    entries = [(256, 4, width), (257, 4, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8 + 2 + 12 * 7 + 4), (277, 3, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries) + bytes(4)
    head = b"II*\0" + struct.pack("<I", 8) + ifd
    asked = []

    def read(at, n):
        asked.append(n)
        return (head + bytes(64))[at:at + n] if at < len(head) else bytes(n)
    assert r.tiff_picture(read, len(head) + width) is None
    assert max(asked) < 1 << 20
