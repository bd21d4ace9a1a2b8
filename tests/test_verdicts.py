"""Verdicts from each file's own tables, on files built from real headers.

The CR3 is the EOS R's real header with an mdat rebuilt to the size its co64/stsz
tables declare (dumpkit.rebuild_cr3): the corpus has no complete full-size CR3. The
HIF (EOS R5) and the MP4/MOV files are complete real files.
"""

import re
import struct

import pytest
from hypothesis import given, strategies as st

import recovercr3 as r
from conftest import PROJECT, recover
from dumpkit import build_dump, corpus_file, find_boxes, sha256, top_level


def verdict(data):
    c = r.carve_isobmff(data, 0, len(data), r.StopAfterMdat(), frozenset(r.ALL_TYPES))
    return c.status, c.detail


def patched(data, at, fmt, value):
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def box_at(data, name, nth=0):
    return [at for n, at in find_boxes(data, 0, len(data), {name})][nth]


def boundaries(data):
    """Every top-level box boundary inside the file."""
    return [offset for offset, _, _, _ in top_level(data)][1:]


# --- CR3 -------------------------------------------------------------------------------

def test_cr3_complete(eos_r_cr3):
    assert verdict(eos_r_cr3) == ("complete", "")


def test_cr3_cut_at_every_box_boundary_and_inside_every_box_is_truncated(eos_r_cr3):
    cuts = boundaries(eos_r_cr3) + [o + 11 for o in boundaries(eos_r_cr3)] + [
        len(eos_r_cr3) - 1]
    for cut in cuts:
        assert verdict(eos_r_cr3[:cut])[0] == "truncated", cut


def test_cr3_chunk_offset_past_mdat_is_damaged(eos_r_cr3):
    co64 = box_at(eos_r_cr3, b"co64", 2)                    # the full-size raw's table
    bad = patched(eos_r_cr3, co64 + 16, ">Q", 3873394 + 100000000)
    assert verdict(bad) == ("damaged", "trak 3: data at +103873394 (25463584 bytes) "
                                       "lies outside mdat; the last sample ends at "
                                       "+129336978, mdat at +29378658")


def test_cr3_zeroed_ctmd_is_damaged(eos_r_cr3):
    ctmd_at, ctmd_size = 29336978, 41680                    # from the EOS R's co64/stsz
    bad = eos_r_cr3[:ctmd_at] + bytes(ctmd_size) + eos_r_cr3[ctmd_at + ctmd_size:]
    assert verdict(bad) == ("damaged", "trak 4: the CTMD records at +29336978 are broken")


def test_cr3_jpeg_without_end_marker_is_damaged(eos_r_cr3):
    jpeg_end = 403258 + 2064168
    bad = patched(eos_r_cr3, jpeg_end - 2, ">H", 0)
    assert verdict(bad) == ("damaged", "trak 1: the JPEG at +403258 is not whole")


def test_cr3_raw_without_crx_header_is_damaged(eos_r_cr3):
    bad = patched(eos_r_cr3, 2467426, ">H", 0x1234)
    assert verdict(bad) == ("damaged", "trak 2: the CRX picture at +2467426: no CRX header")


SMALL_RAW, SMALL_RAW_SIZE = 2467426, 3873394 - 2467426     # trak 2, from co64/stsz


def test_cr3_raw_whose_tiles_do_not_fill_its_sample_is_damaged(eos_r_cr3):
    (tile_size,) = struct.unpack_from(">I", eos_r_cr3, SMALL_RAW + 4)
    bad = patched(eos_r_cr3, SMALL_RAW + 4, ">I", tile_size + 1)
    assert verdict(bad) == ("damaged", "trak 2: the CRX picture at +2467426: its header and "
                                       "tiles add up to %d bytes, stsz says %d"
                            % (SMALL_RAW_SIZE + 1, SMALL_RAW_SIZE))


def test_cr3_raw_with_planes_out_of_order_is_damaged(eos_r_cr3):
    bad = patched(eos_r_cr3, SMALL_RAW + 12 + 8, ">B", 0x10)    # plane 0 says "plane 1"
    assert verdict(bad) == ("damaged", "trak 2: the CRX picture at +2467426: plane record "
                                       "at +12 is out of order")


def test_cr3_raw_header_shorter_than_cmp1_says_is_damaged(eos_r_cr3):
    bad = patched(eos_r_cr3, SMALL_RAW + 12 * 9, ">H", 0x1234)  # the 8th plane record's tag
    assert verdict(bad)[1].startswith("trak 2: the CRX picture at +2467426: ")


def test_cr3_ctbo_pointing_elsewhere_is_damaged(eos_r_cr3):
    ctbo = box_at(eos_r_cr3, b"CTBO")
    bad = patched(eos_r_cr3, ctbo + 12 + 20 + 4, ">Q", 31240)    # entry 2 -> the XMP box
    assert verdict(bad) == ("damaged", "CTBO entry 2 (+31240, 306442 bytes) does not "
                                       "match a box")


def test_cr3_broken_thumbnail_is_damaged(eos_r_cr3):
    thmb = box_at(eos_r_cr3, b"THMB")
    bad = patched(eos_r_cr3, thmb + 24, ">H", 0)                 # its JPEG's SOI
    assert verdict(bad) == ("damaged", "the THMB thumbnail is not a whole JPEG")


def test_cr3_broken_preview_is_damaged(eos_r_cr3):
    prvw_jpeg = 96800 + 8 + 16 + 8 + 8 + 16
    bad = patched(eos_r_cr3, prvw_jpeg, ">H", 0)
    assert verdict(bad) == ("damaged", "the PRVW preview is not a whole JPEG")


def test_cr3_mdat_longer_than_its_samples_is_damaged(eos_r_cr3):
    bad = patched(eos_r_cr3, 403242 + 8, ">Q", 28975416 + 4) + bytes(4)
    assert verdict(bad) == ("damaged", "the last sample ends at +29378658, mdat at +29378662; "
                                       "CTBO entry 3 (+403242, 28975416 bytes) does not "
                                       "match a box")


def test_cr3_without_canon_uuid_is_damaged(eos_r_cr3):
    bad = eos_r_cr3.replace(b"CNCV", b"XXXX", 1)
    assert verdict(bad) == ("damaged", "no Canon uuid with CNCV in moov")


def test_exiftool_stub_cr3_is_damaged_not_complete():
    assert verdict(corpus_file("exiftool_CanonRaw.cr3"))[0] == "damaged"


# --- HEIF ------------------------------------------------------------------------------

def test_hif_complete():
    assert verdict(corpus_file("exiv2_Canon.HIF")) == ("complete", "")


def test_hif_cut_at_every_box_boundary_and_inside_mdat_is_truncated():
    hif = corpus_file("exiv2_Canon.HIF")
    for cut in boundaries(hif) + [40, 1195 + 5000, len(hif) - 1]:
        assert verdict(hif[:cut])[0] == "truncated", cut


def test_hif_item_past_the_end_is_damaged():
    hif = corpus_file("exiv2_Canon.HIF")
    mdat = boundaries(hif)[-1]
    short = patched(hif, mdat, ">I", len(hif) - mdat - 100)[:-100]    # mdat 100 bytes short
    status, detail = verdict(short)
    assert status == "damaged" and "lies past the end" in detail


def test_hif_with_bytes_after_its_last_item_is_damaged():
    hif = corpus_file("exiv2_Canon.HIF")
    mdat = boundaries(hif)[-1]
    longer = patched(hif, mdat, ">I", len(hif) - mdat + 64) + bytes(64)
    assert verdict(longer) == ("damaged", "the last item ends at +%d, the file at +%d" % (
        len(hif), len(hif) + 64))


# --- movies ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gopro_karma.mp4", "exiv2_sample_640x360.mov",
                                  "nomexif_meta.mov", "mei_sample.3gp"])
def test_movie_complete(name):
    assert verdict(corpus_file(name)) == ("complete", "")


@pytest.mark.parametrize("name", ["gopro_karma.mp4", "exiv2_sample_640x360.mov"])
def test_movie_cut_at_every_box_boundary_and_inside_boxes_is_truncated(name):
    movie = corpus_file(name)
    for cut in boundaries(movie) + [o + 9 for o in boundaries(movie)] + [len(movie) - 1]:
        assert verdict(movie[:cut])[0] == "truncated", cut


@pytest.mark.parametrize("name", ["gopro_karma.mp4", "exiv2_sample_640x360.mov"])
def test_movie_chunk_offset_past_mdat_is_damaged(name):
    movie = corpus_file(name)
    stco = box_at(movie, b"stco")
    bad = patched(movie, stco + 16, ">I", len(movie) + 1000)
    status, detail = verdict(bad)
    assert status == "damaged" and detail.startswith("trak 1: data at +%d" % (len(movie) + 1000))


def test_movie_with_a_cut_sample_table_is_damaged():
    movie = corpus_file("gopro_karma.mp4")
    stsz = box_at(movie, b"stsz")
    bad = patched(movie, stsz + 16, ">I", 0xFFFFFF)             # sample count
    assert verdict(bad) == ("damaged", "stsz declares 16777215 entries it does not hold")


def first_sample(movie):
    (offset,) = struct.unpack_from(">I", movie, box_at(movie, b"stco") + 16)
    return offset


def test_movie_sample_whose_nal_units_do_not_fill_it_is_damaged():
    movie = corpus_file("exiv2_sample_640x360.mov")
    at = first_sample(movie)
    (length,) = struct.unpack_from(">I", movie, at)
    status, detail = verdict(patched(movie, at, ">I", length + 1))
    assert status == "damaged" and detail.startswith("trak 1: the sample at +%d: " % at)


def test_movie_sample_with_a_start_code_inside_a_nal_unit_is_damaged():
    movie = corpus_file("exiv2_sample_640x360.mov")
    at = first_sample(movie)
    bad = movie[:at + 20] + b"\x00\x00\x01" + movie[at + 23:]
    assert verdict(bad) == ("damaged", "trak 1: the sample at +%d: the NAL unit at +0 "
                                       "holds bytes that are not its own" % at)


@pytest.mark.parametrize("inside, status", [
    (b"\x00\x00\x03\x7a", "damaged"),     # an escape before a byte no encoder escapes
    (b"\x00\x00\x03\x01", "complete"),    # an escape as encoders write it
])
def test_movie_sample_with_an_escape_no_encoder_writes_is_damaged(inside, status):
    # bench formatted seed 7 (2.1 GB, 32 KiB): a HEIC's last NAL unit ran on over
    # another file's bytes whose only sign was 00 00 03 7a
    movie = corpus_file("exiv2_sample_640x360.mov")
    at = first_sample(movie)
    assert movie[at + 19] and movie[at + 24] > 3      # no sequence made with its neighbours
    bad = movie[:at + 20] + inside + movie[at + 24:]
    assert verdict(bad)[0] == status
    if status == "damaged":
        assert verdict(bad)[1] == ("trak 1: the sample at +%d: the NAL unit at +0 holds "
                                   "bytes that are not its own" % at)


def test_hif_tile_written_over_with_zeros_is_damaged():
    hif = corpus_file("exiv2_Canon.HIF")
    status, detail = verdict(hif[:200704] + bytes(4096) + hif[200704 + 4096:])
    assert status == "damaged" and detail.startswith("item ")


def test_a_cut_box_of_a_truncated_file_hides_nothing_over_its_declared_rest(tmp_path):
    # the fixture CR3 is cut inside its PRVW uuid box, whose size runs far past what
    # follows; a movie written there must come back, and the CR3 is cut where it begins
    cr3 = corpus_file("filetype_fixture.cr3")
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, cr3, 512, movie, 512 * 9)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    rows = [(row["type"], row["status"], int(row["offset"])) for row in out.rows]
    assert ("3gp", "complete", 512 + len(cr3) + 512) in rows
    assert sha256(movie) in out.shas()
    assert out.rows[0]["type"] == "cr3" and int(out.rows[0]["size"]) == len(cr3) + 512


@pytest.mark.parametrize("photo", ["exiftool_Canon.jpg", "mei_Nikon_D70.jpg"])
def test_a_photo_written_into_a_broken_cr3s_header_boxes_comes_back(tmp_path, eos_r_cr3,
                                                                  photo):
    # A CR3 whose first 32 KiB cluster is followed by another photo: the photo starts
    # inside the CR3's PRVW uuid box, whose size still holds. A small photo lies
    # inside that box, a large one runs past it; neither is the CR3's own part.
    jpeg = corpus_file(photo)
    cr3 = eos_r_cr3[:32768] + jpeg + bytes(-len(jpeg) % 4096) + eos_r_cr3[32768:]
    build_dump(tmp_path / "card.img", 4096, cr3, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    rows = {int(row["offset"]): row for row in out.rows}
    assert rows[4096 + 32768]["sha256"] == sha256(jpeg)
    assert rows[4096 + 32768]["status"] == "complete"
    assert rows[4096]["status"] == "damaged"
    assert "holds img2.jpg at +32768" in rows[4096]["detail"]


# --- what a verdict means to the photographer ------------------------------------------

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def docs_table():
    """The table of docs/reference.rst, "What the report tells you", as VERDICT_WORDS
    makes it (a pattern's alternatives, regex marks taken out; placeholders in [])."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 12 28 60", "",
             "   * - verdict", "     - when the detail holds", "     - what you read"]
    for status, pattern, words in r.VERDICT_WORDS:
        holds = " or ".join("``%s``" % re.sub(r"\\b|\^|\\", "", part).replace("d+", "N")
                            for part in pattern.split("|")) if pattern else "(anything else)"
        lines += ["   * - %s" % status, "     - %s" % holds,
                  "     - %s" % PLACEHOLDER.sub(r"[\1]", words)]
    return "\n".join(lines) + "\n"


def test_the_docs_list_every_verdict_and_what_it_means():
    text = (PROJECT / "docs" / "reference.rst").read_text(encoding="utf-8")
    assert docs_table() in text
    for what, usable in r.STILL_USABLE.items():
        assert "``%s``: %s" % (what, usable) in text


@pytest.mark.parametrize("kind, status, detail, words", [
    ("cr3", "truncated", "the dump ends inside mdat (14286087 of 28975416 bytes present)",
     "Cut off: the card image ends before this raw picture does, so its end is missing. "
     "A raw converter or viewer may still show its preview. If the image is not of the "
     "whole card, image all of it and run again."),
    ("jpg", "complete", "the thumbnail JPEG inside truncated/img1.cr3",
     "A whole picture taken out of a broken file (truncated/img1.cr3): it opens. It is "
     "only a small thumbnail of the picture."),
    ("jpg", "complete", "the full-size JPEG inside damaged/img3.cr3; lies inside x",
     "A whole picture taken out of a broken file (damaged/img3.cr3): it opens. It is the "
     "picture at full size."),
    ("jpg", "damaged", "trak 1: the JPEG frame at +70912 is not whole",
     "Its own structure does not add up: part of the picture is missing or is another "
     "file's. A viewer shows the picture down to where it breaks, grey or garbled below."),
    ("mov", "damaged", "no moov",
     "A movie without its index, which the camera writes last (here it was cut off, or "
     "lies in a piece that could not be found): it will not play as it is. A video "
     "repair tool given a good movie from the same camera may rebuild it."),
    ("mp4", "damaged", "no moov; not put back together: a piece of it may lie unseen in "
     "the gap after +102400; holds img39.3gp at +1175552 and 2 more: fragmented, or a "
     "file stored inside it",
     "A movie without its index, which the camera writes last (here it was cut off, or "
     "lies in a piece that could not be found): it will not play as it is. A video "
     "repair tool given a good movie from the same camera may rebuild it."),
    ("mp4", "repaired", "the 1,502 pictures (60.1 s) of truncated/img7.mp4, a movie cut "
     "before its index was written, with an index built on that of img6.mp4, and its "
     "sound; its last whole picture ends at +98,381,824: no picture follows",
     "A copy of the cut movie truncated/img7.mp4 rebuilt to play: 1,502 pictures, 60.1 "
     "seconds, with its sound. Its pictures are the camera's, byte for byte; its index is "
     "borrowed from a whole movie of the same camera. Watch this one."),
    ("wav", "damaged", "the samples at +3,039,310 are not sound but another file's bytes",
     "Written in pieces, or partly written over: part of what is here is not this "
     "file's. It plays up to where it breaks."),
    ("", "interrupted", "the search stopped at offset 1,000 of 2,000 B (50.0%): ...",
     "The search stopped before the end of the card image: run the same command again "
     "to go on from there."),
])
def test_the_meaning_of_a_verdict_is_in_plain_words(kind, status, detail, words):
    assert r.meaning(kind, status, detail) == words
    assert not re.search(r"\+\d|\bbox\b|\bmdat\b|\bMCU\b|\btrak\b", words)


def test_a_broken_raw_says_its_picture_is_beside_it():
    assert r.meaning("cr3", "damaged", "no mdat", picture_beside=True).endswith(
        "A whole picture from inside it is saved beside it, under its name + .jpg.")
    assert "beside" not in r.meaning("cr3", "complete", "", picture_beside=True)


@given(st.sampled_from(sorted(r.ROW_STATUSES | {r.SCAN_FINISHED, r.SCAN_INTERRUPTED})),
       st.sampled_from(sorted(r.FORMATS) + [""]), st.text(max_size=200))
def test_every_verdict_and_detail_has_a_meaning(status, kind, detail):
    words = r.meaning(kind, status, detail)
    assert words and "{" not in words and words[0].isupper() and words.endswith(".")
