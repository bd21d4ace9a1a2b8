"""Whole runs on built dumps: every carved file is checked byte for byte (sha256)."""

import struct

import pytest

import dumpkit
from conftest import recover
from dumpkit import (box, build_dump, corpus_file, ftyp, noise, sha256, with_cnop_trailer)

# (corpus file, type, file name in the output): the ISO-BMFF files of the corpus
CORPUS_ISOBMFF = [
    ("gopro_karma.mp4", "mp4", "img1.mp4"),             # moov after mdat
    ("exiv2_sample_640x360.mov", "mov", "img1.mov"),    # wide, mdat, moov
    ("nomexif_meta.mov", "mov", "img1.mov"),
    ("mei_sample.3gp", "3gp", "img1.3gp"),
    ("exiv2_Canon.HIF", "heif", "img1.hif"),            # Canon EOS R5: meta, no moov
    # EOS M50, stripped by exiftool: real tables, but its JPEGs are placeholder text
    ("exiftool_CanonRaw.cr3", "cr3", "damaged/img1.cr3"),
]


def summary(outcome):
    return [(row["file"], row["type"], int(row["offset"]), row["status"]) for row in outcome.rows]


@pytest.mark.parametrize("gap", [512 * 7, 777], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("name, kind, path", CORPUS_ISOBMFF)
def test_corpus_file_comes_back_exact(tmp_path, name, kind, path, gap):
    data = corpus_file(name)
    (at,) = build_dump(tmp_path / "card.img", gap, data, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.rc == 0
    status = "damaged" if path.startswith("damaged/") else "complete"
    assert summary(out) == [(path, kind, at, status)]
    assert out.shas() == [sha256(data)]


def test_rebuilt_full_size_cr3s_come_back_exact(tmp_path, eos_r_cr3, eos_m50_cr3):
    # Both CR3s are real headers with an mdat rebuilt to the size co64/stsz declare
    # (dumpkit.rebuild_cr3): the corpus has no complete full-size CR3.
    offsets = build_dump(tmp_path / "card.img", 4097, eos_r_cr3, 1, eos_m50_cr3, 100000)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert summary(out) == [("img1.cr3", "cr3", offsets[0], "complete"),
                            ("img2.cr3", "cr3", offsets[1], "complete")]
    assert out.shas() == [sha256(eos_r_cr3), sha256(eos_m50_cr3)]
    assert "[INFO] Saving {}, size 29,378,658 B".format(tmp_path / "out" / "img1.cr3") in out.log


def test_mixed_card_in_order_back_to_back_and_with_gaps(tmp_path, eos_r_cr3):
    files = [corpus_file(name) for name, _, _ in CORPUS_ISOBMFF]
    parts = [eos_r_cr3, files[0], files[1], 333, files[2], files[3], 1, files[4], files[5], 9]
    build_dump(tmp_path / "card.img", *parts)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    expected = [p for p in parts if isinstance(p, bytes)]
    assert out.shas() == [sha256(p) for p in expected]
    assert [r["file"] for r in out.rows] == ["img1.cr3", "img2.mp4", "img3.mov", "img4.mov",
                                             "img5.3gp", "img6.hif", "damaged/img7.cr3"]
    assert "[INFO] Restored 7 file(s)" in out.log.splitlines()[-1]


def test_cnop_uuid_after_mdat_is_kept_and_lastchunk_cuts_it_as_upstream(tmp_path, eos_r_cr3):
    roll = with_cnop_trailer(eos_r_cr3)
    build_dump(tmp_path / "card.img", 1000, roll, 1000)
    assert recover(tmp_path / "card.img", tmp_path / "a").shas() == [sha256(roll)]
    cut = recover(tmp_path / "card.img", tmp_path / "b", "--lastchunk", "mdat")
    assert cut.shas() == [sha256(eos_r_cr3)]


def test_maxchunks_writes_at_most_n_boxes(tmp_path, eos_r_cr3):
    build_dump(tmp_path / "card.img", 1000, eos_r_cr3, 1000)
    out = recover(tmp_path / "card.img", tmp_path / "out", "--maxchunks", "4")
    # ftyp, moov, XMP uuid, PRVW uuid; then beside it the one whole picture in there:
    # the real THMB JPEG (the EOS R's PRVW was cut with the fixture, and filled)
    assert out.shas() == [sha256(eos_r_cr3[:403242]), sha256(eos_r_cr3[12824:29023])]
    assert [(row["file"], row["status"], row["detail"]) for row in out.rows] == [
        ("damaged/img1.cr3", "damaged", "no mdat"),
        ("damaged/img1.cr3.jpg", "complete", "the thumbnail JPEG inside damaged/img1.cr3")]


@pytest.mark.parametrize("cut", [
    24 + 31216 + 4,         # inside the header of the XMP uuid
    24 + 31216,             # on a box boundary, before mdat
    403242 + 10,            # inside mdat's 16-byte header
    403242 + 5000000,       # inside mdat
    29378658 - 1,           # one byte short
])
def test_dump_ending_inside_a_cr3_gives_a_truncated_file(tmp_path, eos_r_cr3, cut):
    (at,) = build_dump(tmp_path / "card.img", 5000, eos_r_cr3[:cut])
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert summary(out) == [("truncated/img1.cr3", "cr3", at, "truncated"),
                            ("truncated/img1.cr3.jpg", "jpg", at + 12824, "complete")]
    assert out.shas() == [sha256(eos_r_cr3[:cut]), sha256(eos_r_cr3[12824:29023])]
    assert "[WARNING] {} is truncated".format(tmp_path / "out/truncated/img1.cr3") in out.log


def test_real_cut_cr3_from_the_corpus_is_truncated(tmp_path):
    data = corpus_file("filetype_fixture.cr3")          # EOS R, cut inside the PRVW uuid
    build_dump(tmp_path / "card.img", 512, data)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.rows[0]["status"] == "truncated"
    assert out.rows[0]["detail"] == "the dump ends inside uuid (34272 of 306442 bytes present)"
    assert out.shas() == [sha256(data), sha256(data[12824:29023])]    # and its THMB JPEG
    assert out.rows[1]["file"] == "truncated/img1.cr3.jpg"


def test_file_inside_another_is_saved_and_the_outer_one_is_not_called_complete(tmp_path):
    inner = corpus_file("mei_sample.3gp")
    moov = box(b"moov", box(b"mvhd", bytes(100)))
    outer = ftyp(b"isom", b"mp41") + moov + box(b"mdat", noise(1000) + inner + noise(1000))
    build_dump(tmp_path / "card.img", 600, outer, 600)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.shas() == [sha256(outer), sha256(inner)]
    at = outer.index(inner)
    assert [(r["status"], r["detail"]) for r in out.rows] == [
        ("damaged", "holds img2.3gp at +%d: fragmented, or a file stored inside it" % at),
        ("complete", "")]   # the outer file's row says it: it waited to be put together


def test_fragmented_movie_does_not_hide_the_photos_over_its_extent(tmp_path, eos_r_cr3):
    # As on a card after deletions: a movie's intact header (faststart: moov before
    # mdat) declares 40 MB of mdat, but the clusters after it now hold newer files.
    head = ftyp(b"qt  ", b"qt  ") + box(b"moov", box(b"mvhd", bytes(100))) + \
        struct.pack(">I4s", 40 << 20, b"mdat") + noise(30000)
    movie = corpus_file("exiv2_sample_640x360.mov")
    offsets = build_dump(tmp_path / "card.img", 4096, head, 2048, eos_r_cr3, 4096, movie,
                         12 << 20)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(r["file"], r["status"]) for r in out.rows] == [
        ("damaged/img1.mov", "damaged"), ("img2.cr3", "complete"), ("img3.mov", "complete")]
    assert out.shas()[1:] == [sha256(eos_r_cr3), sha256(movie)]
    assert out.rows[0]["detail"] == (
        "holds img2.cr3 at +%d and 1 more: fragmented, or a file stored inside it"
        % (offsets[1] - offsets[0]))


def test_broken_chain_keeps_its_header_as_damaged_and_the_next_file_is_found(tmp_path):
    movie = corpus_file("mei_sample.3gp")
    broken = movie[:1740] + b"\x00\x00\x00\x03junk" + noise(3000)     # moov, then garbage
    build_dump(tmp_path / "card.img", 100, broken, 100, movie, 100)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.shas() == [sha256(movie[:1740]), sha256(movie)]
    assert [(row["status"], row["detail"]) for row in out.rows] == [
        ("damaged", "the boxes break at +1740: box 'junk' has size 3 (fragmented or "
                    "overwritten)"), ("complete", "")]


def test_fragmented_cr3_keeps_its_preview_and_metadata(tmp_path, eos_r_cr3):
    # A CR3 written around deleted files: its first fragment holds ftyp, moov, the XMP
    # and the PRVW preview; what follows is another file's data.
    header = eos_r_cr3[:403242]
    build_dump(tmp_path / "card.img", 512, header, 70000, seed=4)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.shas() == [sha256(header), sha256(header[12824:29023])]
    assert [(r["file"], r["status"], r["detail"]) for r in out.rows[1:]] == [
        ("damaged/img1.cr3.jpg", "complete", "the thumbnail JPEG inside damaged/img1.cr3")]
    row = out.rows[0]
    assert (row["file"], row["status"]) == ("damaged/img1.cr3", "damaged")
    assert row["detail"].startswith("the boxes break at +403242: ")
    assert (row["model"], row["serial"]) == ("Canon EOS R", "085023000606")


def test_ftyp_with_no_index_before_garbage_is_not_a_file(tmp_path):
    build_dump(tmp_path / "card.img", 100, ftyp(b"isom") + b"\x00\x00\x00\x03junk", 3000)
    assert recover(tmp_path / "card.img", tmp_path / "out").rows == []


def test_candidates_overlapping_a_truncated_file_are_still_found(tmp_path):
    # A movie whose mdat declares far more than the dump holds must not hide the files
    # after it: they may be what really lies there (a fragmented or overwritten file).
    movie = corpus_file("mei_sample.3gp")
    liar = ftyp(b"isom") + struct.pack(">I4s", 0x7FFFFFF0, b"mdat") + noise(500)
    build_dump(tmp_path / "card.img", 100, liar, 100, movie, 100)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [r["status"] for r in out.rows] == ["truncated", "complete"]
    assert out.shas()[1] == sha256(movie)


def test_mdat_of_size_zero_is_kept_to_the_end_of_the_dump(tmp_path):
    head = ftyp(b"isom") + box(b"moov", bytes(50)) + struct.pack(">I4s", 0, b"mdat")
    build_dump(tmp_path / "card.img", 2048, head, 3000)
    data = (tmp_path / "card.img").read_bytes()
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.shas() == [sha256(data[2048:])]
    assert out.rows[0]["status"] == "truncated"


def test_movie_without_moov_is_damaged(tmp_path):
    lost = ftyp(b"mp42") + box(b"mdat", noise(5000))          # camera lost power
    build_dump(tmp_path / "card.img", 512, lost, 2000)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(r["status"], r["detail"]) for r in out.rows] == [("damaged", "no moov")]
    assert out.shas() == [sha256(lost)]


def test_crm_and_heic_names(tmp_path, eos_r_cr3):
    crm = eos_r_cr3.replace(b"CanonCR3_001", b"CanonCRM0001", 1)
    heic = corpus_file("exiv2_Canon.HIF").replace(b"CanonHEIF001", b"SomeoneHEIF1", 1)
    build_dump(tmp_path / "card.img", 512, crm, 512, heic, 512)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(r["file"], r["type"]) for r in out.rows] == [("img1.crm", "crm"),
                                                           ("img2.heic", "heif")]
    assert out.shas() == [sha256(crm), sha256(heic)]


def test_types_selects_what_is_written(tmp_path, eos_m50_cr3):
    movie, photo = corpus_file("gopro_karma.mp4"), corpus_file("exiv2_Canon.HIF")
    build_dump(tmp_path / "card.img", 512, movie, 512, eos_m50_cr3, 512, photo, 512)
    assert recover(tmp_path / "card.img", tmp_path / "a", "--types", "cr3").shas() == [
        sha256(eos_m50_cr3)]
    assert recover(tmp_path / "card.img", tmp_path / "b", "--types", "mp4,hif").shas() == [
        sha256(movie), sha256(photo)]
    assert recover(tmp_path / "card.img", tmp_path / "c", "--types", "crm").shas() == []


def test_existing_files_are_never_overwritten(tmp_path):
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 512, movie, 512, movie, 512)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "img1.3gp").write_bytes(b"someone's file")
    (out_dir / "img3.3gp.part").write_bytes(b"left by a killed run")
    first = recover(tmp_path / "card.img", out_dir)
    assert [r["file"] for r in first.rows] == ["img2.3gp", "img4.3gp"]
    assert (out_dir / "img1.3gp").read_bytes() == b"someone's file"
    second = recover(tmp_path / "card.img", out_dir, "--restart")     # not gone on from
    assert [r["file"] for r in second.rows] == ["img5.3gp", "img6.3gp"]
    assert sorted(p.name for p in out_dir.glob("*.csv")) == ["recovercr3-report-2.csv",
                                                             "recovercr3-report.csv"]
    assert second.shas() == [sha256(movie)] * 2


def test_report_columns(tmp_path):
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 1536, movie, 10)
    recover(tmp_path / "card.img", tmp_path / "out")
    assert (tmp_path / "out" / "recovercr3-report.csv").read_text().splitlines() == [
        "file,type,offset,size,status,meaning,detail,model,datetime,serial,pieces,"
        "original_name,name_source,fs_time,sha256",
        "img1.3gp,3gp,1536,28561,complete,Whole: every part of the movie is here and "
        "checks out. It opens as the camera wrote it.,,,2005-10-28T17:36:40,,1536-30097,,,,"
        + sha256(movie),
        ',,30107,30107,scan finished,The whole card image was searched.,'
        '"the whole dump was searched (30,107 B)",,,,,,,,',
    ]


def test_nothing_found_is_a_success(tmp_path):
    build_dump(tmp_path / "card.img", 1 << 20)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.rc == 0 and out.rows == []
    assert out.log.splitlines()[-1] == "[INFO] Restored 0 file(s)"


def test_a_movie_ending_with_adobe_xmp_after_mdat_comes_back_whole(tmp_path):
    # Adobe tools write an XMP uuid after mdat: it is the file's, so the file is whole.
    movie = corpus_file("gopro_karma.mp4") + dumpkit.uuid_box(
        bytes.fromhex("be7acfcb97a942e89c71999491e3afac"), b"<x:xmpmeta>" + bytes(500))
    build_dump(tmp_path / "card.img", 4096, movie, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(r["file"], r["status"]) for r in out.rows] == [("img1.mp4", "complete")]
    assert out.shas() == [sha256(movie)]


def test_a_jpeg_in_a_movies_free_padding_is_found_and_the_movie_is_damaged(tmp_path):
    # A free box is padding: what lies there is no part of the movie, but a file
    # written over it (the movie's own bytes are elsewhere or gone).
    jpeg = corpus_file("exiftool_Canon.jpg")
    movie = corpus_file("gopro_karma.mp4")
    pad = (-(4096 + len(movie) + 8)) % 512                 # the JPEG on a sector start
    free = dumpkit.box(b"free", bytes(pad) + jpeg + bytes(4000))
    build_dump(tmp_path / "card.img", 4096, movie + free, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(r["file"], r["status"]) for r in out.rows] == [("damaged/img1.mp4", "damaged"),
                                                            ("img2.jpg", "complete")]
    assert out.rows[0]["detail"].startswith("holds img2.jpg at +%d" % (len(movie) + 8 + pad))
    assert out.shas() == [sha256(movie + free), sha256(jpeg)]


def test_a_truncated_file_over_other_files_is_cut_where_the_next_begins(tmp_path, eos_r_cr3):
    # Two CR3 heads cut short (1 MB each) and a whole 3GP: each head's mdat declares
    # 28 MB, so it runs to the end of the dump, over the files after it.
    head = eos_r_cr3[:1 << 20]
    movie = corpus_file("mei_sample.3gp")
    offsets = build_dump(tmp_path / "card.img", 4096, head, 4096, head, 4096, movie, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(r["file"], r["status"]) for r in out.rows] == [
        ("truncated/img1.cr3", "truncated"), ("truncated/img1.cr3.jpg", "complete"),
        ("truncated/img2.cr3", "truncated"), ("truncated/img2.cr3.jpg", "complete"),
        ("img3.3gp", "complete")]
    gap = offsets[1] - offsets[0]
    assert out.rows[0]["detail"] == ("runs past the end of the dump, over other files: "
                                     "fragmented or cut; saved up to +%d, where img2.cr3 "
                                     "begins" % gap)
    assert out.rows[2]["detail"].endswith("where img3.3gp begins")
    data = (tmp_path / "card.img").read_bytes()
    thumbnail = sha256(head[12824:29023])
    assert out.shas() == [sha256(data[offsets[0]:offsets[1]]), thumbnail,
                          sha256(data[offsets[1]:offsets[2]]), thumbnail, sha256(movie)]


def test_a_cut_heifs_jpeg_thumbnail_is_its_picture_not_a_file_of_the_card(tmp_path):
    # A HEIF storing its thumbnail as a JPEG item (as Sony's HIFs do), cut inside its
    # Exif item by the end of the dump, the thumbnail on a sector start: the JPEG is
    # the HEIF's, saved beside it as a CR3's pictures are (issue 30); it was found as
    # a file of its own, the HEIF cut where it began.
    from standins import canon_heif, small_canon_jpeg
    jpeg = small_canon_jpeg()
    hif = canon_heif(jpeg_thumbnail=jpeg)
    at = hif.index(jpeg)
    build_dump(tmp_path / "card.img", 4096 + (-at) % 512, hif[:-20])
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [
        ("truncated/img1.hif", "truncated"), ("truncated/img1.hif.jpg", "complete")]
    assert out.rows[1]["detail"] == "the JPEG thumbnail inside truncated/img1.hif"
    assert out.shas() == [sha256(hif[:-20]), sha256(jpeg)]
