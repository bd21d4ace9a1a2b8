"""The other cameras' formats: Fujifilm RAF, AVCHD MTS/M2TS and TS, Sigma X3F, MXF,
Samsung SRW, GoPro GPR, Olympus ORF and Panasonic RW2 - byte-exact carving and verdicts.

The shared corpus has none of them: each file here is built to its published layout
(tests/camerakit.py says which); where ffmpeg is installed, MTS, TS and MXF files
written by its muxers are carved too.
"""

import io
import shutil
import struct
import subprocess

import pytest

import camerakit as kit
import recovercr3 as r
from conftest import recover
from dumpkit import build_dump, noise, sha256

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402  (after the skip)


def jpeg(seed=0, size=(96, 64)):
    out = io.BytesIO()
    Image.frombytes("RGB", size, noise(size[0] * size[1] * 3, seed=seed)).save(out, "JPEG")
    return out.getvalue()


FILES = {
    "raf": lambda: kit.raf_file(jpeg(1), noise(300000, seed=1)),
    "raf, two CFAs": lambda: kit.raf_file(jpeg(2), noise(200000, seed=2),
                                          second=([(0x0100, b"\0\x10\0\x10")], noise(90000, seed=3))),
    "x3f": lambda: kit.x3f_file(jpeg(4), noise(250000, seed=4)),
    "mts": lambda: kit.ts_stream(frames=60, seed=5),
    "ts": lambda: kit.ts_stream(frames=60, packet=188, seed=6),
    "mxf": lambda: kit.mxf_file(seed=7),
    "mxf, no RIP": lambda: kit.mxf_file(seed=8, rip=False),
    "srw": lambda: kit.tiff_raw("SAMSUNG", "NX300", seed=9),
    "gpr": lambda: kit.tiff_raw("GoPro", "HERO10 Black", dng=True, seed=10),
    # the raw data a quarter smaller than the size says, as Olympus's compression is
    "orf": lambda: kit.orf_file(jpeg(11), noise(180000, seed=11)),
    "rw2": lambda: kit.rw2_file(jpeg(12), noise(128 * 96 * 2, seed=12)),
}
TYPES = {"raf": "raf", "raf, two CFAs": "raf", "x3f": "x3f", "mts": "mts", "ts": "ts",
         "mxf": "mxf", "mxf, no RIP": "mxf", "srw": "srw", "gpr": "gpr", "orf": "orf",
         "rw2": "rw2"}


def rows_of(out):
    return [(row["type"], row["status"]) for row in out.rows]


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("gap, align", [(512 * 3, []), (512 * 3 + 77, ["--align", "1"])])
def test_file_comes_back_exact(tmp_path, name, gap, align):
    data = FILES[name]()
    build_dump(tmp_path / "card.img", gap, data, 512 * 5 + 31)
    out = recover(tmp_path / "card.img", tmp_path / "out", *align)
    assert rows_of(out) == [(TYPES[name], "complete")]
    assert out.shas() == [sha256(data)]


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_cut_by_the_end_of_the_dump_is_truncated(tmp_path, name):
    data = FILES[name]()
    cut = data[:len(data) * 2 // 3 + 5]
    build_dump(tmp_path / "card.img", 512 * 2, cut)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    # a raw whose JPEG is whole before the cut gives it too, beside it
    pictures = [("jpg", "complete")] if name in ("orf", "raf", "raf, two CFAs", "rw2") else []
    assert rows_of(out) == [(TYPES[name], "truncated")] + pictures
    assert out.shas()[0] == sha256(cut)
    assert all(row["detail"].startswith("the JPEG preview inside") for row in out.rows[1:])


def test_files_of_every_format_side_by_side(tmp_path):
    files = [FILES[name]() for name in sorted(FILES)]
    parts = []
    for data in files:
        parts += [512 * 2, data + b"\0" * (-len(data) % 512)]
    build_dump(tmp_path / "card.img", *parts)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert sorted(rows_of(out)) == sorted((TYPES[name], "complete") for name in FILES)
    assert sorted(out.shas()) == sorted(sha256(data) for data in files)


# --- damaged -----------------------------------------------------------------------------

def carve(data, carver, **options):
    buf = data + noise(4096, seed=99)
    return carver(buf, 0, len(buf), r.Options(r.StopAfterMdat(), frozenset(r.ALL_TYPES),
                                              **options))


def test_raf_with_a_broken_jpeg_is_damaged():
    data = bytearray(FILES["raf"]())
    jpeg_at, jpeg_size = struct.unpack_from(">II", data, 84)
    data[jpeg_at + jpeg_size - 2:jpeg_at + jpeg_size] = b"\0\0"          # no EOI
    carved = carve(bytes(data), r.carve_raf)
    assert (carved.status, carved.size) == ("damaged", len(data))
    assert "JPEG" in carved.detail


def test_raf_whose_cfa_header_overflows_is_damaged():
    data = bytearray(FILES["raf"]())
    header_at = struct.unpack_from(">I", data, 92)[0]
    struct.pack_into(">I", data, header_at, 200)                    # 200 records in 20 bytes
    assert carve(bytes(data), r.carve_raf).status == "damaged"


def test_raf_with_parts_before_its_header_is_not_a_raf():
    data = bytearray(FILES["raf"]())
    struct.pack_into(">I", data, 84, 12)
    with pytest.raises(r.FormatError):
        carve(bytes(data), r.carve_raf)


def test_x3f_whose_section_is_gone_is_damaged():
    data = bytearray(FILES["x3f"]())
    at = data.find(b"SECi")
    data[at:at + 4] = b"\0\0\0\0"
    carved = carve(bytes(data), r.carve_x3f)
    assert (carved.status, carved.size) == ("damaged", len(data))


def test_x3f_without_its_directory_in_the_dump_is_truncated_not_hidden():
    data = FILES["x3f"]()
    carved = r.carve_x3f(data[:-200], 0, len(data) - 200,
                         r.Options(r.StopAfterMdat(), frozenset(r.ALL_TYPES)))
    assert carved.status == "truncated"


def test_x3f_meta_comes_from_its_properties():
    meta = carve(FILES["x3f"](), r.carve_x3f).meta
    assert meta == r.Meta("SIGMA DP2 Merrill", "2015-01-01T12:00:00", "9876543")


def test_mts_spliced_onto_another_stream_is_damaged_and_cut_at_the_splice(tmp_path):
    first = kit.ts_stream(frames=60, seed=11)
    other = kit.ts_stream(frames=60, seed=12, counter_start=7)
    cut = 6144 * 4
    data = first[:cut] + other[6144 * 3:]           # in step: the rhythm holds
    build_dump(tmp_path / "card.img", 512 * 4, data, 512 * 3)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert rows_of(out)[0] == ("mts", "damaged")
    assert out.shas()[0] == sha256(first[:cut])
    assert "continuity counter jumps" in out.rows[0]["detail"]


def test_mts_cut_on_a_unit_of_32_packets_is_damaged_not_complete():
    # a fragment that ends where a cluster does, on a whole unit: only the frame left
    # open in its last packets shows it was cut
    data = kit.ts_stream(frames=60, seed=22)
    cut = 6144 * 6
    carved = carve(data[:cut], r.carve_mts)
    assert (carved.status, carved.size) == ("damaged", cut)
    assert "inside a frame" in carved.detail


def test_mts_followed_by_an_old_stream_in_step_ends_where_it_does(tmp_path):
    # the slack after a file holds the packets of an older recording, in step: the
    # counters jump where the file ends, after its last frame, so it is complete
    data = kit.ts_stream(frames=60, seed=23)
    old = kit.ts_stream(frames=200, seed=24, counter_start=5)
    build_dump(tmp_path / "card.img", 512 * 2, data, old[len(data) + 6144 * 2:][:6144 * 3],
               512 * 5)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert rows_of(out) == [("mts", "complete")]
    assert out.shas() == [sha256(data)]


def test_mts_that_ends_inside_a_unit_of_32_packets_is_damaged():
    data = kit.ts_stream(frames=60, seed=13)
    carved = carve(data[:6144 * 3 + 192 * 5], r.carve_mts)
    assert (carved.status, carved.size) == ("damaged", 6144 * 3 + 192 * 5)


def test_ts_without_a_pmt_is_damaged():
    data = bytearray(kit.ts_stream(frames=60, packet=188, seed=14))
    for at in range(0, len(data), 188):
        if struct.unpack_from(">H", data, at + 1)[0] & 0x1FFF == kit.PMT_PID:
            data[at + 1:at + 3] = struct.pack(">H", 0x4000 | 0x0555)    # another PID
    assert carve(bytes(data), r.carve_plain_ts).status == "damaged"


def test_bytes_that_only_look_like_a_stream_start_are_not_a_file():
    with pytest.raises(r.FormatError):
        carve(b"\x47\x40\x00\x10" + noise(5000), r.carve_plain_ts)


def test_mxf_without_the_footer_it_names_is_damaged_and_ends_where_its_klvs_do():
    data = kit.mxf_file(seed=15)
    footer = data.rfind(kit.PARTITION_KEY + b"\x04")
    carved = carve(data[:footer] + noise(600, seed=1), r.carve_mxf)
    assert (carved.status, carved.size) == ("damaged", footer)
    assert "footer partition" in carved.detail


def test_mxf_whose_partition_says_it_is_elsewhere_is_damaged():
    data = bytearray(kit.mxf_file(seed=16))
    footer = data.rfind(kit.PARTITION_KEY + b"\x04")
    struct.pack_into(">Q", data, footer + 20 + 8, 12345)            # ThisPartition
    assert carve(bytes(data), r.carve_mxf).status == "damaged"


def test_mxf_with_a_wrong_random_index_pack_is_damaged():
    data = bytearray(kit.mxf_file(seed=17))
    struct.pack_into(">I", data, len(data) - 4, 99)
    assert carve(bytes(data), r.carve_mxf).status == "damaged"


# --- one stream after another, and streams inside streams ---------------------------------

def test_two_mts_files_back_to_back_are_two_files(tmp_path):
    first, second = kit.ts_stream(frames=50, seed=18), kit.ts_stream(frames=70, seed=19)
    build_dump(tmp_path / "card.img", 512 * 2, first + second, 512 * 3)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert rows_of(out) == [("mts", "complete"), ("mts", "complete")]
    assert out.shas() == [sha256(first), sha256(second)]


def test_a_stream_continued_is_not_a_file_at_each_of_its_tables(tmp_path):
    data = kit.ts_stream(frames=400, seed=20)          # a PAT every 10 frames, on sectors
    assert sum(1 for at in range(0, len(data), 512)
               if data[at + 4:at + 7] == b"\x47\x40\x00") > 2
    build_dump(tmp_path / "card.img", 512 * 2, data, 512)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert rows_of(out) == [("mts", "complete")]
    assert out.shas() == [sha256(data)]


def test_mts_date_comes_from_its_mdpm(tmp_path):
    data = kit.ts_stream(frames=30, seed=21, when=(2023, 12, 24, 18, 5, 9))
    build_dump(tmp_path / "card.img", 512 * 2, data, 512)
    out = recover(tmp_path / "card.img", tmp_path / "out", "--name-by", "date")
    assert out.rows[0]["datetime"] == "2023-12-24T18:05:09+09:00"
    assert out.rows[0]["file"].startswith("2023-12-24_18-05-09")


# --- what ffmpeg's muxers write -----------------------------------------------------------

FFMPEG = shutil.which("ffmpeg")
MUXED = [("mts", ["-f", "mpegts", "-mpegts_m2ts_mode", "1"], "m2ts"),
         ("ts", ["-f", "mpegts"], "ts"),
         ("mxf", ["-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-ar", "48000", "-f", "mxf"], "mxf")]


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize("kind, args, ext", MUXED)
def test_what_ffmpeg_writes_comes_back_exact(tmp_path, kind, args, ext):
    movie = tmp_path / ("movie." + ext)
    codecs = [] if kind == "mxf" else ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "ac3"]
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=f=440", "-t", "3"] + codecs + args + [str(movie)],
                   check=True)
    data = movie.read_bytes()
    build_dump(tmp_path / "card.img", 512 * 3, data, 512 * 3 + 100)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert rows_of(out) == [(kind, "complete")]
    assert out.shas() == [sha256(data)]


# --- an AVCHD camcorder's card -----------------------------------------------------------

AVCHD_FOLDERS = ("PRIVATE", "PRIVATE/AVCHD", "PRIVATE/AVCHD/BDMV", "PRIVATE/AVCHD/BDMV/STREAM")


@pytest.mark.skipif(shutil.which("mcopy") is None or shutil.which("mkfs.vfat") is None,
                    reason="needs mtools and dosfstools")
@pytest.mark.parametrize("formatted", [False, True])
def test_avchd_clips_get_their_names_back_even_after_a_quick_format(tmp_path, formatted):
    from dumpkit import MtoolsCard
    card = MtoolsCard(tmp_path / "card.img", folders=AVCHD_FOLDERS)
    clips = {"PRIVATE/AVCHD/BDMV/STREAM/%05d.MTS" % n: kit.ts_stream(frames=80 + 40 * n,
                                                                      seed=30 + n)
             for n in range(3)}
    for path, data in clips.items():
        card.copy(path, data)
    if formatted:
        card.format()
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert rows_of(out) == [("mts", "complete")] * 3
    assert [row["original_name"] for row in out.rows] == list(clips)
    assert out.shas() == [sha256(data) for data in clips.values()]


@pytest.mark.parametrize("name", ["raf", "x3f"])
def test_contact_sheet_shows_the_raws_own_jpeg(tmp_path, name):
    import base64
    import re
    data = FILES[name]()
    build_dump(tmp_path / "card.img", 512 * 2, data, 512)
    recover(tmp_path / "card.img", tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    (picture,) = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
    assert base64.b64decode(picture) == jpeg(1 if name == "raf" else 4)


@pytest.mark.parametrize("name", ["srw", "raf"])
def test_a_file_written_into_a_raws_image_data_is_seen_and_the_raw_is_damaged(tmp_path, name):
    # a raw written around another file (fragmented): its image data holds that file,
    # which must come back, and which gives the raw away
    if name == "srw":
        raw = kit.tiff_raw("SAMSUNG", "NX300", seed=25, size=(640, 480))
    else:
        raw = kit.raf_file(jpeg(5), noise(600000, seed=25))
    inner = jpeg(6, size=(320, 240))
    at = len(raw) // 2 // 512 * 512
    spliced = raw[:at] + inner + raw[at + len(inner):]
    build_dump(tmp_path / "card.img", 512 * 2, spliced, 512)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert sorted(rows_of(out)) == sorted([(name, "damaged"), ("jpg", "complete")])
    assert sha256(inner) in out.shas()


@pytest.mark.parametrize("bits", [8, 16])
def test_an_uncompressed_raw_with_another_files_bytes_in_its_strips_is_damaged(bits):
    # a fragmented TIFF whose gap holds the middle of another file (nothing whole to
    # find there): its image data stops being a picture where the gap begins
    if bits == 8:
        raw = kit.tiff_raw("SAMSUNG", "NX300", seed=26, size=(640, 480))
    else:
        out = io.BytesIO()
        Image.frombytes("I;16", (320, 240), noise(320 * 240 * 2, seed=27)).resize(
            (640, 480)).save(out, "TIFF")
        raw = out.getvalue()
    whole = carve(raw, r.carve_tiff)
    assert whole.status == "complete"
    at = len(raw) // 2 // 4096 * 4096
    spliced = raw[:at] + noise(8192, seed=28) + raw[at + 8192:]
    carved = carve(spliced, r.carve_tiff)
    assert (carved.status, carved.size) == ("damaged", len(raw))
    assert "not a picture" in carved.detail


# --- raws whose picture data is not there ------------------------------------------------

def test_orf_and_rw2_keep_their_jpeg_and_are_named_by_their_header(tmp_path):
    # An ORF's preview lies in its maker note (CameraSettings says where, from the
    # note's start); an RW2's full-size JPEG is whole in JpgFromRaw. Each is the raw's,
    # never a file of its own, and each raw is named by its header ("IIRO", "IIU").
    orf, rw2 = kit.orf_file(jpeg(13), noise(180000, seed=13)), \
        kit.rw2_file(jpeg(14), noise(128 * 96 * 2, seed=14))
    build_dump(tmp_path / "card.img", 4096, orf, 4096 - len(orf) % 512, rw2, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"], row["model"]) for row in out.rows] == [
        ("img1.orf", "complete", "E-M10"), ("img2.rw2", "complete", "DMC-LX3")]
    assert out.shas() == [sha256(orf), sha256(rw2)]


def test_an_rw2_whose_raw_data_is_not_there_is_truncated_with_its_jpeg_beside_it(tmp_path):
    # exiftool's Panasonic sample keeps its header and JPEG, and says its raw data is
    # 20 MB at its end, where 22 bytes are: at the end of a dump, truncated; its
    # JPEG is saved beside it.
    stub = kit.rw2_file(jpeg(15), b"<Dummy raw image data>")
    stub = stub[:struct.unpack_from("<I", stub, 4)[0]] + stub[struct.unpack_from("<I", stub, 4)[0]:]
    at = stub.index(struct.pack("<HHI", 0x0117, 4, 1)) + 8
    stub = stub[:at] + struct.pack("<I", 20511792) + stub[at + 4:]
    build_dump(tmp_path / "card.img", 4096, stub)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [
        ("truncated/img1.rw2", "truncated"), ("truncated/img1.rw2.jpg", "complete")]
    assert out.rows[1]["detail"] == "the JPEG preview inside truncated/img1.rw2"


def test_a_raf_whose_cfa_is_a_few_bytes_is_damaged_and_its_jpeg_saved(tmp_path):
    # exiftool's FujiFilm sample: a 4352x1444 sensor, CFAs of 22 bytes of text
    raf = kit.raf_file(jpeg(16), b"<Dummy raw image data>",
                       records=[(0x0100, struct.pack(">HH", 1444, 4352))])
    build_dump(tmp_path / "card.img", 4096, raf, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [
        ("damaged/img1.raf", "damaged"), ("damaged/img1.raf.jpg", "complete")]
    assert "is 22 bytes: a 4352x1444 sensor's data takes far more" in out.rows[0]["detail"]


def test_an_x3f_whose_image_section_is_a_few_bytes_is_damaged():
    x3f = kit.x3f_file(jpeg(17), b"<Dummy raw image data>")
    carved = r.carve_x3f(x3f, 0, len(x3f), r.Options(r.StopAfterMdat(), frozenset(["x3f"])))
    assert carved.status == "damaged"
    assert "holds 22 bytes: its 640x480 picture takes more" in carved.detail
    assert [p.what for p in carved.pictures] == ["the JPEG preview"]


@pytest.mark.parametrize("name, kind, status", [
    ("exiftool_Panasonic.rw2", "rw2", "truncated"), ("exiftool_FujiFilm.raf", "raf", "damaged"),
    ("exiftool_Sigma.x3f", "x3f", "damaged")])
def test_metadata_suites_stub_raws_are_not_complete(tmp_path, name, kind, status):
    # exiftool's t/images samples (Perl licence: read from the shared corpus, skipped
    # without it): their picture data is a few bytes of text
    from dumpkit import corpus_file
    data = corpus_file(name)
    build_dump(tmp_path / "card.img", 4096, data)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert (out.rows[0]["type"], out.rows[0]["status"]) == (kind, status)


# --- a stream of a few packets -----------------------------------------------------------

def short_stream(packets, break_pat=False):
    """The first packets of a camera-like M2TS (a PAT, a PMT, then a frame's start),
    its PAT's CRC broken when asked."""
    stream = bytearray(kit.ts_stream(frames=1, packets_per_frame=4)[:packets * 192])
    if break_pat:
        at = bytes(stream).index(kit.pat())
        stream[at + len(kit.pat()) - 1] ^= 0xFF     # the last byte of its CRC
    return bytes(stream)


def test_a_stream_of_seven_packets_is_found_where_its_pat_and_pmt_are_whole(tmp_path):
    # fewer than TS_MIN_PACKETS in rhythm is chance, but not with a PAT and a PMT
    # whose CRCs hold: exiftool's M2TS sample is 7 packets, and was not found
    stream = short_stream(7)
    build_dump(tmp_path / "card.img", 4096, stream, 8192)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["type"], row["status"]) for row in out.rows] == [("mts", "damaged")]
    assert out.shas() == [sha256(stream)]
    build_dump(tmp_path / "broken.img", 4096, short_stream(7, break_pat=True), 8192)
    assert recover(tmp_path / "broken.img", tmp_path / "out2").rows == []


def test_mpeg_crc_is_the_psi_sections_one():
    section = kit.psi_section(0x00, 1, b"\0\1\xe1\0")
    assert r.mpeg_crc(section) == 0 and r.section_whole(section)
    assert r.mpeg_crc(b"123456789") == kit.mpeg_crc(b"123456789") == 0x0376E6E7


def cfa_raw(strip, size=(100, 80)):
    """A NEF-like TIFF whose one IFD is uncompressed 16-bit CFA data: strip."""
    entries = [(0x0100, kit.LONG, size[0]), (0x0101, kit.LONG, size[1]),
               (0x0102, kit.SHORT, 16), (0x0103, kit.SHORT, 1), (0x0106, kit.SHORT, 32803),
               (0x010F, kit.ASCII, b"NIKON CORPORATION"), (0x0110, kit.ASCII, b"NIKON D3"),
               (0x0111, kit.LONG, 0), (0x0115, kit.SHORT, 1), (0x0117, kit.LONG, len(strip))]
    head = kit.ifd_block(entries, 8)
    entries[7] = (0x0111, kit.LONG, 8 + len(head))
    return b"II*\0" + struct.pack("<I", 8) + kit.ifd_block(entries, 8) + strip


def test_uncompressed_raw_data_shorter_than_its_size_is_damaged():
    # a 100x80 sensor of 16-bit samples takes 16,000 bytes: all there, the raw is whole
    # (its samples a smooth picture); a stub's few bytes are not its data
    picture = b"".join(struct.pack("<H", 1000 + (x + y) % 50) for y in range(80) for x in range(100))
    whole, stub = cfa_raw(picture), cfa_raw(b"<Dummy raw image data>")
    options = r.Options(r.StopAfterMdat(), frozenset(["nef"]))
    assert r.carve_tiff(whole, 0, len(whole), options).status == "complete"
    carved = r.carve_tiff(stub, 0, len(stub), options)
    assert (carved.type, carved.status) == ("nef", "damaged")
    assert carved.detail == "the raw data of the IFD at +8 is 22 bytes: its size takes 16000"


def test_an_om_system_orf_keeps_its_preview_inside_it(tmp_path):
    # OM Digital Solutions' maker note begins "OM SYSTEM" (16 bytes, its byte order at
    # 12): its preview is found through it as through Olympus's
    orf = kit.orf_file(jpeg(18), noise(180000, seed=18), model=b"OM-1",
                       note_head=kit.OM_SYSTEM_HEAD)
    walk = r.walk_tiff(orf, 0, len(orf))
    preview = orf.index(jpeg(18))
    assert (preview, preview + len(jpeg(18))) in walk.data
    build_dump(tmp_path / "card.img", 4096, orf, 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [("img1.orf", "complete")]
    assert out.shas() == [sha256(orf)]
