"""The ISO-BMFF section: box headers, ftyp, the end-of-file rules, verdicts, types."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recovercr3 as r
from dumpkit import CNOP_UUID, box, ftyp, large_box, noise, uuid_box

FTYP_CR3 = ftyp(b"crx ", b"crx ", b"isom", minor=1)
FTYP_MP4 = ftyp(b"isom", b"isom", b"mp42")


def walk(data, rule=None, start=0):
    return r.walk_boxes(data, start, len(data), rule or r.StopAfterMdat())


def names(w):
    return [b.name for b in w.boxes]


# --- box headers ---------------------------------------------------------------------

def test_read_box_32_bit_size():
    b = r.read_box(box(b"moov", b"x" * 10), 0, 18)
    assert (b.name, b.size, b.header_size, b.end, b.body) == (b"moov", 18, 8, 18, 8)


def test_read_box_64_bit_largesize():
    data = large_box(b"mdat", b"y" * 5)
    b = r.read_box(data, 0, len(data))
    assert (b.size, b.header_size, b.end) == (21, 16, 21)


def test_read_box_size_zero_runs_to_limit():
    data = struct.pack(">I4s", 0, b"mdat") + b"z" * 100
    b = r.read_box(data, 0, len(data))
    assert b.to_end and b.end == len(data)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6, 7])
def test_read_box_rejects_sizes_2_to_7(size):
    with pytest.raises(r.FormatError, match="size %d" % size):
        r.read_box(struct.pack(">I4s", size, b"free") + bytes(16), 0, 24)


@pytest.mark.parametrize("name, largesize", [(b"mdat", 1), (b"mdat", 8), (b"mdat", 15),
                                             (b"moov", 0), (b"free", 0)])
def test_read_box_rejects_largesize_below_16(name, largesize):
    data = struct.pack(">I4sQ", 1, name, largesize) + bytes(16)
    with pytest.raises(r.FormatError, match="64-bit size"):
        r.read_box(data, 0, len(data))


def test_an_mdat_of_64_bit_size_0_runs_to_the_end_as_one_of_size_0():
    # a camera that opens its mdat with a 64-bit size writes it when the recording
    # ends: a dead battery leaves 0, the movie cut (as a 32-bit size 0 says)
    data = struct.pack(">I4sQ", 1, b"mdat", 0) + bytes(100)
    box = r.read_box(data, 0, len(data))
    assert (box.size, box.header_size, box.to_end) == (116, 16, True)


@pytest.mark.parametrize("name", [b"\0\0\0\0", b"mo\x00v", b"\xa9mov", b"moo\x7f"])
def test_read_box_rejects_unprintable_names(name):
    with pytest.raises(r.FormatError, match="printable"):
        r.read_box(struct.pack(">I4s", 16, name) + bytes(8), 0, 16)


@pytest.mark.parametrize("data", [b"", b"\0\0\0\x10moo", struct.pack(">I4sI", 1, b"mdat", 0)])
def test_read_box_header_cut_by_limit_is_truncated(data):
    with pytest.raises(r.TruncatedError):
        r.read_box(data, 0, len(data))


def test_read_box_reads_uuid_usertype():
    data = uuid_box(CNOP_UUID, b"payload")
    assert r.read_box(data, 0, len(data)).usertype == CNOP_UUID


def test_child_boxes_stop_at_first_bad_child():
    data = box(b"aaaa", b"") + box(b"bbbb", b"12") + b"\0\0\0\x03cccc" + box(b"dddd", b"")
    assert [b.name for b in r.child_boxes(data, 0, len(data))] == [b"aaaa", b"bbbb"]


# --- ftyp ------------------------------------------------------------------------------

def test_read_ftyp_brands():
    f = r.read_ftyp(FTYP_CR3, 0, len(FTYP_CR3))
    assert (f.major, f.compatible) == (b"crx ", (b"crx ", b"isom"))


@pytest.mark.parametrize("data, why", [
    (box(b"ftyp", b"is"), "size"),                              # 10 bytes: no brand
    (box(b"ftyp", b"isom" + bytes(4) + b"x" * 5000), "size"),    # over 4096
    (box(b"ftyp", b"\0\x01om" + bytes(4)), "brand"),
    (box(b"moov", b"isom" + bytes(4)), "no ftyp"),
    (FTYP_MP4[:-4], "inside the ftyp"),
])
def test_read_ftyp_rejects_implausible(data, why):
    with pytest.raises(r.FormatError, match=why):
        r.read_ftyp(data, 0, len(data))


@pytest.mark.parametrize("major, compatible, kind", [
    (b"crx ", [b"crx ", b"isom"], "cr3"),
    (b"heix", [b"mif1", b"heix"], "heif"),
    (b"mif1", [b"heic"], "heif"),
    (b"qt  ", [b"qt  "], "mov"),
    (b"3gp5", [b"3gp5", b"3gp4"], "3gp"),
    (b"3g2a", [], "3gp"),
    (b"isom", [b"mp41"], "mp4"),
    (b"mp42", [], "mp4"),
    (b"XAVC", [b"XAVC", b"mp42"], "mp4"),       # unknown major brand, unknown family
    (b"abcd", [b"qt  "], "mov"),                 # the compatible list decides
])
def test_brand_type(major, compatible, kind):
    data = ftyp(major, *compatible)
    assert r.brand_type(r.read_ftyp(data, 0, len(data))) == kind


@pytest.mark.parametrize("kind, major, cncv, expected", [
    ("cr3", b"crx ", b"CanonCR3_001/00.09.00/00.00.00", ("cr3", "cr3")),
    ("cr3", b"crx ", b"CanonCRM0001/02.09.00/00.00.00", ("crm", "crm")),
    ("cr3", b"crx ", b"", ("cr3", "cr3")),
    ("heif", b"heix", b"CanonHEIF001/10.00.01/00.00.00", ("heif", "hif")),
    ("heif", b"heic", b"", ("heif", "heic")),
    ("heif", b"avif", b"", ("heif", "avif")),
    ("3gp", b"3g2a", b"", ("3gp", "3g2")),
    ("mov", b"qt  ", b"", ("mov", "mov")),
])
def test_type_and_extension(kind, major, cncv, expected):
    f = r.Ftyp(None, major, ())
    assert r.type_and_extension(kind, f, cncv) == expected


def iso_file(data):
    w = walk(data)
    return r.IsoFile(data, 0, w.end, w.boxes, r.read_ftyp(data, 0, len(data)))


def test_canon_compressor_found_in_moov_and_meta():
    cncv = box(b"CNCV", b"CanonCRM0001/02.09.00")
    moov = box(b"moov", uuid_box(r.CANON_UUID, box(b"CCTP", b"") + cncv))
    assert iso_file(FTYP_CR3 + moov + box(b"mdat", b"")).compressor() == b"CanonCRM0001/02.09.00"
    meta = box(b"meta", bytes(4) + box(b"hdlr", bytes(20)) + uuid_box(r.CANON_UUID, cncv))
    data = ftyp(b"heix", b"mif1") + meta + box(b"mdat", b"")
    assert iso_file(data).compressor().startswith(b"CanonCRM")


# --- the end of a file -----------------------------------------------------------------

MOOV = box(b"moov", box(b"mvhd", bytes(100)))
MDAT = box(b"mdat", noise(300))


def test_default_stops_after_mdat():
    data = FTYP_MP4 + MOOV + MDAT
    w = walk(data + box(b"free", b"") + FTYP_MP4)      # free is kept, a new ftyp is not
    assert names(w) == [b"ftyp", b"moov", b"mdat", b"free"]
    assert w.end == len(data) + 8 and not w.truncated


def test_default_keeps_moov_written_after_mdat():
    data = FTYP_MP4 + box(b"wide", b"") + MDAT + MOOV
    w = walk(data + MOOV)                                # a second moov is not ours
    assert names(w) == [b"ftyp", b"wide", b"mdat", b"moov"] and w.end == len(data)


def test_default_keeps_uuid_boxes_of_any_vendor_after_mdat():
    # Canon's CNOP (rolls, DPP) and Adobe's XMP uuid alike belong to the file.
    cnop = uuid_box(CNOP_UUID, box(b"CNOP", bytes(40)))
    xmp = uuid_box(bytes.fromhex("be7acfcb97a942e89c71999491e3afac"), b"<x:xmpmeta/>")
    data = FTYP_CR3 + MOOV + MDAT + cnop + xmp
    assert walk(data).end == len(data)


def test_a_box_name_no_format_knows_breaks_the_walk_before_mdat():
    # Four printable characters of a foreign file's bytes are not a box.
    data = FTYP_CR3 + MOOV + box(b"ii[[", bytes(100)) + MDAT
    w = walk(data)
    assert names(w) == [b"ftyp", b"moov"]
    assert w.broken == ("the boxes break at +%d: box 'ii[[' is no top-level box (fragmented "
                        "or overwritten)" % len(FTYP_CR3 + MOOV))
    assert carve(data).status == "damaged"


def test_after_mdat_an_unknown_box_ends_the_file_quietly():
    data = FTYP_MP4 + MOOV + MDAT
    assert walk(data + box(b"ii[[", bytes(100))).end == len(data)
    assert walk(data + FTYP_MP4).end == len(data)           # the next file's ftyp


def test_upstream_rules_walk_boxes_of_any_name():
    data = FTYP_CR3 + MOOV + box(b"ii[[", bytes(100)) + MDAT
    assert walk(data, r.StopAtBox(b"mdat")).end == len(data)


def test_default_keeps_movie_fragments():
    moof = box(b"moof", box(b"mfhd", bytes(8)))
    data = FTYP_MP4 + MOOV + MDAT + moof + MDAT + moof + MDAT + box(b"mfra", bytes(16))
    assert walk(data + MDAT).end == len(data)            # an mdat not after moof ends it


def test_movie_of_many_fragments_is_walked_whole():
    moof = box(b"moof", box(b"mfhd", bytes(8)))
    fragment = box(b"mdat", b"x" * 16384)
    data = FTYP_MP4 + MOOV + fragment + (moof + fragment) * 4000
    w = walk(data + box(b"moof", b"")[:6])
    assert len(w.boxes) == 3 + 8000 and w.end == len(data)


def test_a_flood_of_tiny_boxes_is_not_walked_to_its_end():
    # 8-byte boxes after mdat: each would cost a step; the walk takes one box per 4 KiB.
    data = FTYP_MP4 + MOOV + MDAT + box(b"free", b"") * 200000
    w = walk(data)
    assert len(w.boxes) == r.MAX_BOXES_BEFORE_MDAT + w.end // r.BYTES_PER_BOX
    assert w.broken == "more than %d boxes in the first %d bytes: no camera writes that" % (
        len(w.boxes), w.end)
    assert carve(data).status == "damaged"


def test_default_garbage_before_mdat_breaks_the_walk():
    data = FTYP_CR3 + MOOV + b"\0\0\0\x03junk" + MDAT
    w = walk(data)
    assert names(w) == [b"ftyp", b"moov"] and w.end == len(FTYP_CR3 + MOOV)
    assert w.broken == ("the boxes break at +140: box 'junk' has size 3 (fragmented or "
                        "overwritten)")
    c = carve(data)
    assert (c.status, c.size) == ("damaged", len(FTYP_CR3 + MOOV))
    with pytest.raises(r.FormatError, match="no moov or meta before"):
        carve(FTYP_CR3 + b"\0\0\0\x03junk" + MDAT)           # nothing but ftyp: no file


def test_size_zero_allowed_for_mdat_only():
    data = FTYP_MP4 + MOOV + struct.pack(">I4s", 0, b"mdat") + noise(50)
    w = walk(data)
    assert w.end == len(data) and not w.truncated
    w = walk(FTYP_MP4 + struct.pack(">I4s", 0, b"moov") + noise(50))
    assert "size 0, which only mdat may have" in w.broken and names(w) == [b"ftyp"]


def test_box_past_the_end_is_truncated():
    data = FTYP_CR3 + MOOV + MDAT
    w = walk(data[:-100])
    assert w.truncated and w.end == len(data) - 100 and names(w)[-1] == b"mdat"


def test_dump_ending_on_a_box_boundary_before_mdat_is_truncated():
    data = FTYP_CR3 + MOOV
    w = walk(data)
    assert w.truncated and w.end == len(data)


def test_lastchunk_stops_at_named_box_without_trailers():
    cnop = uuid_box(CNOP_UUID, b"")
    data = FTYP_CR3 + MOOV + MDAT
    assert walk(data + cnop, r.StopAtBox(b"mdat")).end == len(data)
    assert names(walk(data, r.StopAtBox(b"moov"))) == [b"ftyp", b"moov"]


def test_maxchunks_counts_boxes_and_stops_quietly_at_garbage():
    data = FTYP_CR3 + MOOV + MDAT + box(b"free", b"")
    assert names(walk(data, r.StopAfterCount(2))) == [b"ftyp", b"moov"]
    assert walk(data + noise(64), r.StopAfterCount(9)).end == len(data)


# --- verdicts --------------------------------------------------------------------------

def carve(data, rule=None, types=frozenset(r.ALL_TYPES)):
    return r.carve_isobmff(data, 0, len(data), rule or r.StopAfterMdat(), types)


def test_verdict_complete():
    c = carve(FTYP_MP4 + MOOV + MDAT)
    assert (c.status, c.type, c.ext, c.size) == ("complete", "mp4", "mp4", 24 + 116 + 308)


def test_verdict_mdat_without_moov_is_damaged():
    c = carve(FTYP_MP4 + MDAT + noise(100))
    assert (c.status, c.detail) == ("damaged", "no moov")


def test_verdict_mdat_without_moov_at_dump_end_is_truncated():
    c = carve(FTYP_MP4 + MDAT)
    assert (c.status, c.detail) == ("truncated", "no moov")


def test_verdict_inside_box():
    c = carve((FTYP_MP4 + MOOV + MDAT)[:-8])
    assert c.status == "truncated"
    assert c.detail == "the dump ends inside mdat (300 of 308 bytes present)"


def heif(extent_offset=None, extent_length=300):
    """A HEIF whose one item is the 300-byte mdat payload (iloc version 0, 4-byte fields)."""
    def build(offset):
        iloc = box(b"iloc", bytes(4) + bytes([0x44, 0x00]) + struct.pack(
            ">HHHHII", 1, 1, 0, 1, offset, extent_length))
        meta = box(b"meta", bytes(4) + box(b"hdlr", bytes(20)) + iloc)
        return ftyp(b"heic", b"mif1") + meta
    head = build(0)
    return build(len(head) + 8 if extent_offset is None else extent_offset) + MDAT


def test_verdict_heif_needs_meta_not_moov():
    assert carve(heif()).status == "complete"


def test_unwanted_type_is_not_carved():
    assert carve(FTYP_MP4 + MOOV + MDAT, types=frozenset(["cr3"])) is None
    assert carve(FTYP_CR3 + MOOV + MDAT, types=frozenset(["crm"])) is None


# --- properties: nothing a dump holds may crash or hang the parsers ------------------

INTERESTING_SIZES = [0, 1, 2, 7, 8, 15, 16, 24, 0x7FFFFFFF, 0xFFFFFFFF]
NAMES = [b"ftyp", b"moov", b"mdat", b"uuid", b"free", b"moof", b"meta", b"\0\0\0\0", b"ab\xffc"]


@st.composite
def box_sequences(draw):
    """An ftyp followed by boxes with sizes that are often wrong."""
    out = bytearray(draw(st.sampled_from([FTYP_CR3, FTYP_MP4, ftyp(b"heix", b"mif1")])))
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(NAMES))
        payload = draw(st.binary(max_size=64))
        size = draw(st.one_of(st.sampled_from(INTERESTING_SIZES),
                              st.just(8 + len(payload)), st.integers(0, 2**32 - 1)))
        if draw(st.booleans()) and size == 1:
            payload = struct.pack(">Q", draw(st.one_of(st.sampled_from(INTERESTING_SIZES),
                                                       st.integers(0, 2**64 - 1)))) + payload
        out += struct.pack(">I4s", size, name) + payload
    out += draw(st.binary(max_size=32))
    return bytes(out)


def check_carve(data, start=0):
    for rule in (r.StopAfterMdat(), r.StopAtBox(b"mdat"), r.StopAfterCount(3)):
        try:
            c = r.carve_isobmff(data, start, len(data), rule, frozenset(r.ALL_TYPES))
        except r.FormatError:
            continue
        assert c is not None
        assert 0 < c.size <= len(data) - start
        assert c.status in ("complete", "truncated", "damaged")
        assert c.ext in ("cr3", "crm", "heic", "hif", "avif", "mp4", "mov", "3gp", "3g2")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(box_sequences())
def test_random_box_sequences_never_crash(data):
    check_carve(data)


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(0, 199))
def test_random_bytes_never_crash(data, start):
    start = min(start, len(data))
    for limit in (len(data), len(data) // 2):
        try:
            b = r.read_box(data, start, max(limit, start))
        except r.FormatError:
            continue
        assert b.size >= 8 and b.header_size in (8, 16)
    check_carve(data, start)


SAMPLE = FTYP_CR3 + box(b"moov", uuid_box(r.CANON_UUID, box(b"CNCV", b"CanonCR3_001"))
                        + MOOV) + uuid_box(bytes(16), bytes(40)) + MDAT + uuid_box(CNOP_UUID, b"")


@settings(max_examples=500)
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255)), max_size=6),
       st.integers(1, len(SAMPLE)))
def test_mutated_files_never_crash(flips, cut):
    data = bytearray(SAMPLE)
    for at, value in flips:
        data[at] = value
    check_carve(bytes(data[:cut]))


# Real headers, mutated: the table readers (stsd, stco/co64, stsz, stsc, CTBO, THMB,
# iloc, iinf, Exif) must never fail with anything but a verdict.

def real_file(name):
    from dumpkit import corpus_path
    path = corpus_path(name)
    return path.read_bytes() if path.is_file() else SAMPLE


# (bytes, the range the mutations hit: moov of the M50, meta of the HIF)
REAL = {"cr3": (real_file("exiftool_CanonRaw.cr3"), 11004),
        "hif": (real_file("exiv2_Canon.HIF"), 1195)}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(REAL)),
       st.lists(st.tuples(st.integers(0, 11003), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_real_tables_never_crash(which, flips):
    original, table_end = REAL[which]
    data = bytearray(original)
    for at, value in flips:
        data[at % min(table_end, len(data))] = value
    check_carve(bytes(data))


# --- the data inside: CRX headers and NAL units ------------------------------------

CMP1 = r.Box(0, b"CMP1", 60, 8, b"", False)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=60, max_size=60), st.binary(max_size=400))
def test_random_crx_headers_never_crash(cmp1, header):
    buf = cmp1 + header
    problem = r.crx_header_problem(r.crx_geometry(buf, CMP1), buf, 60, len(header))
    assert problem is None or isinstance(problem, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([1, 2, 4]), st.booleans(),
       st.integers(1, 350))
def test_random_nal_units_never_crash(data, length_size, hevc, cut):
    spans = r.Spans(data, [(0, min(cut, len(data))), (min(cut, len(data)), len(data))])
    try:
        problem, units = r.nal_units_problem(spans, length_size, hevc, 1000)
    except r.FormatError:
        return
    assert units <= len(data) // (length_size + 1) + 1
