"""JPEG, RIFF, TIFF-based raws, CRW and 7z: byte-exact carving and verdicts.

Real files come from ../shared/corpus; the kinds the corpus has no complete file of
(progressive and multi-picture JPEGs, 16-bit, multi-page and JPEG-compressed TIFFs,
WebP, WAV) are written by Pillow and the standard library's wave module.
"""

import io
import lzma
import shutil
import struct
import subprocess
import wave
import zlib

import pytest

import camerakit as kit
import recovercr3 as r
from conftest import recover
from dumpkit import build_dump, corpus_file, noise, sha256

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402  (after the skip)


def picture(size=(320, 240), seed=0):
    """A noisy RGB picture: compresses like a photo, not like a flat colour."""
    im = Image.frombytes("RGB", size, noise(size[0] * size[1] * 3, seed=seed))
    return im.resize((size[0] * 2, size[1] * 2)).resize(size)


def saved(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def carve_one(tmp_path, data, *options, gap=512 * 3):
    """Splice data into a dump at a sector boundary; return the run's Outcome."""
    build_dump(tmp_path / "card.img", gap, data, 512 * 5)
    return recover(tmp_path / "card.img", tmp_path / "out", *options)


# --- every corpus file, byte for byte ---------------------------------------------------

# (corpus file, type, how many of its bytes the file's structure covers, status)
CORPUS = [
    ("mei_Canon_EOS_5D.jpg", "jpg", None, "complete"),          # EXIF thumbnail inside
    ("mei_Canon_EOS_1000D.jpg", "jpg", None, "complete"),
    ("mei_Canon_PowerShot_G11.jpg", "jpg", None, "complete"),
    ("mei_Nikon_D70.jpg", "jpg", None, "complete"),
    ("exiftool_Canon.jpg", "jpg", None, "complete"),
    ("mei_100_0306.AVI", "avi", None, "complete"),               # MJPEG frames inside
    ("exiv2_flame.avi", "avi", 289264, "complete"),             # 16 bytes after its RIFF
    ("exiv2_Free_Test_Data_500KB_WAV.wav", "wav", None, "complete"),
    ("imagemeta_CRW.CRW", "crw", None, "complete"),
    ("filetype_fixture.7z", "7z", None, "complete"),
    ("libarchive_test_read_format_7zip_lzma2.7z", "7z", None, "complete"),
    ("libarchive_test_read_format_7zip_copy.7z", "7z", None, "complete"),
    ("libarchive_test_read_format_7zip_ppmd.7z", "7z", None, "complete"),
    ("libarchive_test_read_format_7zip_bcj2_bzip2.7z", "7z", None, "complete"),
    # exiftool stubs: image data stripped, but their IFDs agree with what is left;
    # exiftool appended 18 bytes ("Non-TIFF data test") to the CR2 that no IFD names
    ("exiftool_CanonRaw.cr2", "cr2", 8706, "complete"),
    ("exiftool_Nikon.nef", "nef", None, "complete"),
    ("exiftool_DNG.dng", "dng", None, "complete"),
]


@pytest.mark.parametrize("name, kind, covered, status", CORPUS)
def test_corpus_file_comes_back_exact(tmp_path, name, kind, covered, status):
    data = corpus_file(name, exact=covered is not None)     # its own extra bytes
    out = carve_one(tmp_path, data)
    expected = data[:covered] if covered else data
    assert [(row["type"], row["status"]) for row in out.rows] == [(kind, status)]
    assert out.shas() == [sha256(expected)]


# (corpus file, type): raws and movies cut short; at the end of a dump they are truncated
CUT_SAMPLES = [("bep_sample.nef", "nef"), ("bep_sample.arw", "arw"),
               ("exiv2_IMG_1361.dng", "dng"), ("exiftool_RIFF.avi", "avi")]


@pytest.mark.parametrize("name, kind", CUT_SAMPLES)
def test_cut_corpus_samples_are_truncated(tmp_path, name, kind):
    data = corpus_file(name)
    build_dump(tmp_path / "card.img", 512 * 7, data)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["type"], row["status"]) for row in out.rows][:1] == [(kind, "truncated")]
    assert out.shas()[0] == sha256(data)


# --- JPEG ------------------------------------------------------------------------------

def test_progressive_jpeg(tmp_path):
    data = saved(picture(), "JPEG", progressive=True, quality=90)
    assert data.count(b"\xff\xda") > 1                       # several scans
    assert carve_one(tmp_path, data).shas() == [sha256(data)]


def test_jpeg_with_restart_markers(tmp_path):
    data = saved(picture(seed=1), "JPEG", quality=95, restart_marker_rows=1)
    assert b"\xff\xd0" in data
    assert carve_one(tmp_path, data).shas() == [sha256(data)]


def test_multi_picture_jpeg_is_one_file(tmp_path):
    data = saved(picture(seed=2), "MPO", save_all=True, append_images=[picture(seed=3)])
    assert data.count(b"\xff\xd8\xff") == 2
    out = carve_one(tmp_path, data, gap=512)
    assert out.shas() == [sha256(data)] and out.rows[0]["status"] == "complete"


def test_camera_jpeg_exif_thumbnail_is_not_a_file_of_its_own(tmp_path):
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    thumbnail = jpeg.find(b"\xff\xd8", 2)
    assert 0 < thumbnail < 20000
    gap = 512 - thumbnail % 512                              # puts the thumbnail on a sector
    out = carve_one(tmp_path, jpeg, gap=gap, *["--align", "1"])
    assert out.shas() == [sha256(jpeg)]


def test_jpeg_cut_short_is_truncated_and_one_interrupted_is_damaged(tmp_path):
    jpeg = corpus_file("mei_Nikon_D70.jpg")
    build_dump(tmp_path / "cut.img", 512, jpeg[:800000])
    cut = recover(tmp_path / "cut.img", tmp_path / "a")
    assert [(row["status"], row["size"]) for row in cut.rows] == [("truncated", "800000")]
    other = corpus_file("exiftool_Canon.jpg")
    build_dump(tmp_path / "mix.img", 512, jpeg[:800256], other, 5000)      # 800256 = 1563 sectors
    mixed = recover(tmp_path / "mix.img", tmp_path / "b")
    assert [(row["status"], row["size"]) for row in mixed.rows] == [
        ("damaged", "800256"), ("complete", str(len(other)))]
    assert mixed.rows[0]["detail"].startswith("another JPEG starts at +800256 before EOI; ")


def test_jpeg_metadata_from_exif():
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    carved = r.carve_jpeg(jpeg, 0, len(jpeg), r.Options(None, frozenset(["jpg"])))
    assert carved.meta.model == "Canon EOS 5D" and carved.meta.datetime.startswith("20")


# --- RIFF ------------------------------------------------------------------------------

def test_wav_written_by_the_wave_module(tmp_path):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(noise(96001 * 4))
    data = out.getvalue()
    assert carve_one(tmp_path, data).shas() == [sha256(data)]


def test_webp(tmp_path):
    if not PIL.features.check("webp"):
        pytest.skip("Pillow without WebP")
    data = saved(picture(seed=4), "WEBP", quality=80)
    out = carve_one(tmp_path, data)
    assert out.shas() == [sha256(data)] and out.rows[0]["type"] == "webp"


def test_opendml_avi_takes_its_avix_riffs(tmp_path):
    avi = corpus_file("mei_100_0306.AVI")
    avix = b"RIFF" + struct.pack("<I", 4 + 8 + 3000) + b"AVIX" + b"LIST" + struct.pack(
        "<I", 3000 - 8 + 8) + b"movi" + noise(2996)
    data = avi + avix
    assert carve_one(tmp_path, data).shas() == [sha256(data)]


# --- TIFF ------------------------------------------------------------------------------

def test_sixteen_bit_tiff(tmp_path):
    data = saved(picture(seed=5).convert("I;16"), "TIFF")
    out = carve_one(tmp_path, data)
    assert out.shas() == [sha256(data)] and out.rows[0]["type"] == "tif"


def multi_page_tiff(*seeds):
    """(a multi-page TIFF by Pillow, the part of it its IFDs cover).

    Pillow pads the file to a 4-byte boundary after the last page's data; nothing
    points at those zero bytes, so a carver that follows the structure stops before."""
    pages = [picture(seed=seed) for seed in seeds]
    data = saved(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert data.endswith(bytes(4))
    return data, data[:-4]


def test_multi_page_tiff_is_one_file(tmp_path):
    data, covered = multi_page_tiff(6, 7, 8)
    out = carve_one(tmp_path, data)
    assert out.shas() == [sha256(covered)] and out.rows[0]["status"] == "complete"


def test_jpeg_compressed_tiff(tmp_path):
    data = saved(picture(seed=9), "TIFF", compression="jpeg")
    assert carve_one(tmp_path, data).shas() == [sha256(data)]


def test_tiff_pointer_past_any_plausible_raw_is_flagged_not_followed(tmp_path):
    tiff = bytearray(saved(picture(seed=10), "TIFF"))
    order = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    count = struct.unpack_from(order + "H", tiff, ifd0)[0]
    entry = ifd0 + 2 + 12 * count                        # append an entry pointing far away
    tiff[ifd0:ifd0 + 2] = struct.pack(order + "H", count + 1)
    tiff[entry:entry + 4] = b""                          # drop the next-IFD pointer ...
    tiff[entry:entry] = struct.pack(order + "HHII", 0x9999, 7, 64, 3 << 30) + bytes(4)
    out = carve_one(tmp_path, bytes(tiff))
    assert out.rows[0]["status"] == "damaged"
    assert "tag 0x9999 points at +3221225472" in out.rows[0]["detail"]
    assert int(out.rows[0]["size"]) < 1 << 20            # not sent to the end of the dump


# --- 7z --------------------------------------------------------------------------------

def seven_zip(packed, header=b"\x01" + noise(40, seed=77)):
    """A 7z archive: start header, packed streams, end header (only CRCs are real)."""
    fields = struct.pack("<QQI", len(packed), len(header), zlib.crc32(header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(fields)) + fields + \
        packed + header


def lzma1(data):
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 20, "lc": 3, "lp": 0, "pb": 2}])


def test_truncated_7z_is_saved_and_its_stream_salvaged(tmp_path):
    content = corpus_file("exiftool_Canon.jpg") * 3 + noise(50000)
    archive = seven_zip(lzma1(content))
    cut = archive[:len(archive) * 2 // 3]
    build_dump(tmp_path / "card.img", 512, cut)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [("truncated/img1.7z",
                                                                   "truncated")]
    salvaged = (tmp_path / "out/truncated/img1.7z.salvaged").read_bytes()
    assert len(salvaged) > len(content) // 2 and content.startswith(salvaged)
    assert "Salvaged %s" % (tmp_path / "out/truncated/img1.7z.salvaged") in out.log


def test_salvaged_stream_is_carved_for_files(tmp_path):
    movie, photo = corpus_file("mei_sample.3gp"), corpus_file("mei_Canon_EOS_1000D.jpg")
    content = photo + noise(512 - len(photo) % 512) + movie + noise(9000)
    archive = seven_zip(lzma1(content))
    build_dump(tmp_path / "card.img", 512, archive[:-100])
    recover(tmp_path / "card.img", tmp_path / "out")
    files = tmp_path / "out/truncated/img1.7z.salvaged.files"
    assert sha256((files / "img1.jpg").read_bytes()) == sha256(photo)
    assert sha256((files / "img2.3gp").read_bytes()) == sha256(movie)


def test_complete_7z_is_not_salvaged_and_a_bad_crc_is_not_a_7z(tmp_path):
    archive = corpus_file("filetype_fixture.7z")
    assert carve_one(tmp_path, archive).shas() == [sha256(archive)]
    assert not list((tmp_path / "out").glob("*.salvaged"))
    broken = archive[:9] + bytes([archive[9] ^ 1]) + archive[10:]
    build_dump(tmp_path / "bad.img", 512, broken)
    assert recover(tmp_path / "bad.img", tmp_path / "bad").rows == []


SEVEN_ZIP = shutil.which("7zz") or shutil.which("7z")


@pytest.mark.skipif(SEVEN_ZIP is None, reason="7-Zip is not installed")
@pytest.mark.parametrize("name", ["filetype_fixture.7z",
                                  "libarchive_test_read_format_7zip_lzma2.7z"])
def test_real_archive_cut_before_its_end_header_gives_its_files_back(tmp_path, name):
    archive = corpus_file(name)
    (tmp_path / name).write_bytes(archive)
    contents = subprocess.run([SEVEN_ZIP, "x", "-so", str(tmp_path / name)],
                              capture_output=True, check=True).stdout
    next_header = struct.unpack_from("<Q", archive, 12)[0]
    build_dump(tmp_path / "card.img", 512, archive[:32 + next_header])
    recover(tmp_path / "card.img", tmp_path / "out")
    salvaged = (tmp_path / "out/truncated/img1.7z.salvaged").read_bytes()
    assert salvaged == contents[:len(salvaged)] and len(salvaged) >= len(contents) * 0.9


# --- the scan ---------------------------------------------------------------------------

def test_unaligned_files_need_align_1(tmp_path):
    jpeg = corpus_file("exiftool_Canon.jpg")
    build_dump(tmp_path / "card.img", 1000, jpeg, 1000)
    assert recover(tmp_path / "card.img", tmp_path / "a").shas() == []
    assert recover(tmp_path / "card.img", tmp_path / "b", "--align", "1").shas() == [
        sha256(jpeg)]


def test_types_select_the_new_formats(tmp_path):
    jpeg, avi = corpus_file("mei_Nikon_D70.jpg"), corpus_file("exiv2_flame.avi")
    build_dump(tmp_path / "card.img", 512, jpeg, 512 - len(jpeg) % 512, avi, 512)
    assert [row["type"] for row in recover(tmp_path / "card.img", tmp_path / "a",
                                           "--types", "jpeg").rows] == ["jpg"]
    assert [row["type"] for row in recover(tmp_path / "card.img", tmp_path / "b",
                                           "--types", "avi,nef").rows] == ["avi"]


def test_no_false_positives_among_random_bytes(tmp_path, eos_r_cr3):
    """Every file spliced among random bytes comes back once, and nothing else does."""
    files = [corpus_file(name) for name, _, covered, _ in CORPUS if covered is None]
    files += [eos_r_cr3, corpus_file("gopro_karma.mp4"), corpus_file("exiv2_Canon.HIF"),
              saved(picture(seed=11), "JPEG", progressive=True),
              saved(picture(seed=12), "MPO", save_all=True, append_images=[picture(seed=13)]),
              multi_page_tiff(14, 15)[1]]
    parts = []
    for i, data in enumerate(files):
        parts += [512 * (3 + i * 7 % 11), data, (-len(data)) % 512]
    build_dump(tmp_path / "card.img", *parts, 4 << 20, seed=3)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert sorted(out.shas()) == sorted(sha256(data) for data in files)
    assert {row["status"] for row in out.rows} == {"complete"}


# --- properties: random and mutated files never crash or hang a parser ---------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TINY_JPEG = b"\xff\xd8\xff\xd9"           # SOI, EOI: enough for the raws' checks
SEEDS = {
    "jpeg": lambda: corpus_file("exiftool_Canon.jpg"),
    "riff": lambda: corpus_file("exiftool_RIFF.avi"),
    "tiff": lambda: corpus_file("exiftool_Nikon.nef"),
    "dng": lambda: corpus_file("exiftool_DNG.dng"),
    "7z": lambda: corpus_file("libarchive_test_read_format_7zip_copy.7z"),
    "crw": lambda: corpus_file("imagemeta_CRW.CRW")[:4096] + corpus_file("imagemeta_CRW.CRW")[-64:],
    # the other cameras' formats, built to their layouts (tests/camerakit.py)
    "raf": lambda: kit.raf_file(TINY_JPEG, noise(3000), second=([(0x100, b"ab")], noise(500))),
    "x3f": lambda: kit.x3f_file(TINY_JPEG, noise(3000)),
    "mts": lambda: kit.ts_stream(frames=12, packets_per_frame=4),
    "ts": lambda: kit.ts_stream(frames=12, packet=188, packets_per_frame=4),
    "mxf": lambda: kit.mxf_file(frames=20, frame_size=300),
}
CARVERS = [fmt.carve for fmt in r.SECTOR_FORMATS]
ALL = r.Options(r.StopAfterMdat(), frozenset(r.ALL_TYPES))


def carve_all_ways(data):
    for carve in CARVERS:
        try:
            carved = carve(data, 0, len(data), ALL)
        except r.FormatError:
            continue
        if carved is not None:
            assert 0 < carved.size <= len(data)
            assert carved.status in ("complete", "truncated", "damaged")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)),
       st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=10),
       st.integers(8, 1 << 16))
def test_mutated_files_never_crash_a_carver(seed, flips, cut):
    data = bytearray(SEEDS[seed]())
    for at, value in flips:
        data[at % len(data)] = value
    carve_all_ways(bytes(data[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"\xff\xd8\xff", b"RIFF", b"II*\0", b"MM\0*", b"7z\xbc\xaf\x27\x1c",
                        r.CRW_MAGIC, r.RAF_MAGIC, r.X3F_MAGIC, b"\x47\x40\x00",
                        b"\0\0\0\0\x47\x40\x00", b"\x47\x40\x11",
                        r.MXF_PARTITION_KEY + b"\x02\x04\x00"]), st.binary(max_size=400))
def test_magic_then_random_bytes_never_crash_a_carver(magic, rest):
    carve_all_ways(magic + rest)


# --- JPEG data: restart markers and MCU counts ------------------------------------

def restart_jpeg():
    data = saved(picture(seed=1), "JPEG", quality=95, restart_marker_rows=1)
    return data, data.index(b"\xff\xda")


def test_restart_markers_out_of_sequence_are_damaged(tmp_path):
    data, sos = restart_jpeg()
    second = data.index(b"\xff\xd1", sos)
    bad = data[:second] + b"\xff\xd2" + data[second + 2:]
    out = carve_one(tmp_path, bad)
    assert (out.rows[0]["status"], out.rows[0]["detail"]) == (
        "damaged", "restart marker 1 is RST2")


def test_a_missing_restart_interval_is_damaged(tmp_path):
    data, sos = restart_jpeg()
    second = data.index(b"\xff\xd1", sos)
    third = data.index(b"\xff\xd2", sos)
    bad = data[:second] + data[third:]              # one interval lost
    out = carve_one(tmp_path, bad)
    assert (out.rows[0]["status"], out.rows[0]["detail"]) == (
        "damaged", "13 restart markers, the frame needs 14")


def scan_of(data):
    return r.baseline_scan(data, r.walk_jpeg(data, 0, len(data)))


@pytest.mark.parametrize("name", ["mei_Canon_EOS_5D.jpg", "mei_Nikon_D70.jpg",
                                  "exiftool_Canon.jpg"])
def test_whole_camera_jpegs_decode_to_their_mcu_count(name):
    data = corpus_file(name)
    assert r.mcu_problem(data, scan_of(data)) is None


def test_restart_intervals_decode_one_by_one():
    data, _ = restart_jpeg()
    scan = scan_of(data)
    assert scan.restart and r.mcu_problem(data, scan) is None


def test_jpeg_data_from_another_jpeg_does_not_decode():
    a, b = corpus_file("mei_Canon_EOS_5D.jpg"), corpus_file("mei_Nikon_D70.jpg")
    mixed = a[:500000] + b[600000:]                # b's tail: another coding, same markers
    assert r.walk_jpeg(mixed, 0, len(mixed)).status == "complete"
    assert r.mcu_problem(mixed, scan_of(mixed)) is not None


def test_progressive_jpegs_are_not_decoded():
    data = saved(picture(seed=2), "JPEG", quality=90, progressive=True)
    assert scan_of(data) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1,
                max_size=6), st.integers(1000, 1 << 20))
def test_mutated_jpeg_data_never_crashes_the_decoder(flips, cut):
    data = bytearray(corpus_file("mei_Canon_PowerShot_G11.jpg")[:cut])
    for at, value in flips:
        data[at % len(data)] = value
    data = bytes(data) + b"\xff\xd9"
    try:
        walk = r.walk_jpeg(data, 0, len(data))
        scan = r.baseline_scan(data, walk)
        if scan is not None:
            r.restart_problem(data, scan)
            r.mcu_problem(data, scan)
    except r.FormatError:
        pass
