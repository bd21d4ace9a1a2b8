"""Stand-ins for the shared corpus files whose licence keeps them out of tests/corpus.

A clone with nothing beside it has tests/corpus alone (see its MANIFEST.tsv). Four
files the suite leans on are not there: exiftool's and Exiv2's samples are under the
Perl and GPL licences. Where one is missing, dumpkit.corpus_file gives its stand-in,
built here from files that may be shipped and from the format's published layout,
with the properties the tests use (type, shape, camera, date):

- exiftool_Canon.jpg (a 2,697-byte Canon JPEG with Exif): the real 160x120 JPEG a
  PowerShot G11 wrote as its Exif thumbnail (mei_Canon_PowerShot_G11.jpg), given an
  Exif segment of its own: Make "Canon", Model "Canon EOS DIGITAL REBEL" and the
  sample's DateTimeOriginal (2003:12:04 06:46:52).
- exiv2_sample_640x360.mov (ftyp, wide, mdat, moov; H.264): the iPhone X MOV of
  tests/corpus, which has that same top-level shape.
- exiv2_Canon.HIF (a Canon EOS R5 HEIF: meta first, then mdat): a HEIF laid out as
  Canon's is (ISO/IEC 23008-12), Canon's CNCV in its meta: a grid item (in idat) of four hvc1 tiles, an hvc1
  thumbnail and an Exif item, the tiles' and thumbnail's data length-prefixed HEVC NAL
  units (valid headers, payload without start codes); the Exif names the R5 and its
  date (2021:02:18 19:54:47).
- exiftool_CanonRaw.cr2, exiftool_Nikon.nef, exiftool_DNG.dng (exiftool's raws with
  their image data stripped): TIFF raws laid out as those cameras' are (a CR2's "CR"
  mark and raw IFD, Make and Model, an Exif IFD with the date, the G11's real JPEG as
  the preview strip, a raw strip).
- exiv2_Free_Test_Data_500KB_WAV.wav (16-bit PCM, 500 KB): a WAV of that format whose
  samples are tones, as a recording's are.
- exiv2_flame.avi (a Cinepak AVI): the MJPEG AVI of tests/corpus.
- exiftool_CanonRaw.cr3 (exiftool's Canon EOS M50 header sample) has none: the tests
  that need it say so when they skip; eos_m50_cr3 is a second EOS R CR3 in its place.

A test that holds a file's own bytes or values (exiftool's printout of it) asks for
corpus_file(name, exact=True), and skips where only the stand-in could be given.
"""

import array
import functools
import math
import struct
import sys

from dumpkit import corpus_path, noise

BOX = struct.Struct(">I4s")


def _own(name):
    return corpus_path(name).read_bytes()


# --- JPEG ------------------------------------------------------------------------------

def exif_thumbnail(jpeg):
    """The JPEG that IFD1 of jpeg's Exif points at."""
    assert jpeg[2:4] == b"\xff\xe1" and jpeg[6:12] == b"Exif\0\0"
    tiff = 12
    order = "<" if jpeg[tiff:tiff + 2] == b"II" else ">"
    ifd0 = tiff + struct.unpack_from(order + "I", jpeg, tiff + 4)[0]
    count = struct.unpack_from(order + "H", jpeg, ifd0)[0]
    ifd1 = tiff + struct.unpack_from(order + "I", jpeg, ifd0 + 2 + 12 * count)[0]
    fields = {}
    for i in range(struct.unpack_from(order + "H", jpeg, ifd1)[0]):
        tag, _, _, value = struct.unpack_from(order + "HHII", jpeg, ifd1 + 2 + 12 * i)
        fields[tag] = value
    start = tiff + fields[0x0201]
    return jpeg[start:start + fields[0x0202]]


def tiff_ifds(ifds):
    """A little-endian TIFF of IFDs, each [(tag, ASCII text)] or [(tag, ("ifd", n))]:
    the second points at IFD n. Values over 4 bytes follow each IFD."""
    layout, pos = [], 8
    for entries in ifds:
        size = 2 + 12 * len(entries) + 4
        layout.append(pos)
        pos += size + sum(len(v) + 1 for _, v in entries if isinstance(v, bytes)
                          and len(v) + 1 > 4)
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for entries, at in zip(ifds, layout):
        values = bytearray()
        body = struct.pack("<H", len(entries))
        data_at = at + 2 + 12 * len(entries) + 4
        for tag, value in entries:
            if isinstance(value, tuple):
                body += struct.pack("<HHII", tag, 4, 1, layout[value[1]])
                continue
            text = value + b"\0"
            if len(text) <= 4:
                body += struct.pack("<HHI", tag, 2, len(text)) + text.ljust(4, b"\0")
            else:
                body += struct.pack("<HHII", tag, 2, len(text), data_at + len(values))
                values += text
        out += body + struct.pack("<I", 0) + values
    return bytes(out)


def canon_exif(make, model, when):
    """TIFF of IFD0 (Make, Model, Exif IFD pointer) and an Exif IFD (DateTimeOriginal)."""
    return tiff_ifds([[(0x010F, make), (0x0110, model), (0x8769, ("ifd", 1))],
                      [(0x9003, when)]])


def small_canon_jpeg():
    """In place of exiftool_Canon.jpg: see the module docstring."""
    thumbnail = exif_thumbnail(_own("mei_Canon_PowerShot_G11.jpg"))
    exif = b"Exif\0\0" + canon_exif(b"Canon", b"Canon EOS DIGITAL REBEL", b"2003:12:04 06:46:52")
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + thumbnail[2:]


# --- HEIF ------------------------------------------------------------------------------

def box(name, payload):
    return BOX.pack(8 + len(payload), name) + payload


def full_box(name, payload, version=0, flags=0):
    return box(name, struct.pack(">I", version << 24 | flags) + payload)


def hevc_units(size, seed, kind=19):
    """size bytes of 4-byte-length HEVC NAL units of type kind, payloads without zeros
    (so without start codes), as an encoder's escaped data is."""
    out, index = bytearray(), 0
    while len(out) < size:
        length = min(size - len(out) - 4, 60000)
        payload = noise(length - 2, seed=seed * 1000 + index).replace(b"\0", b"\x01")
        out += struct.pack(">I", length) + bytes([kind << 1, 1]) + payload
        index += 1
    return bytes(out)


def hvcc():
    """An hvcC whose byte 21 says 4-byte NAL lengths (lengthSizeMinusOne 3)."""
    return box(b"hvcC", bytes([1, 1, 0x60, 0, 0, 0, 0x90] + [0] * 5 + [0x5D, 0xF0, 0, 0xFC,
                                                                       0xFD, 0xF8, 0xF8, 0, 0,
                                                                       0x0F, 0]))


CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
CANON_HEIF_CNCV = b"CanonHEIF001/10.00.01/00.00.00"     # what the R5 writes: names it .HIF
TILE_SIZE = 300000
THUMBNAIL_SIZE = 32000


def canon_heif(jpeg_thumbnail=None):
    """In place of exiv2_Canon.HIF: see the module docstring. With jpeg_thumbnail, the
    thumbnail item is that JPEG (a "jpeg" item, as Sony's HIFs store theirs)."""
    exif = canon_exif(b"Canon", b"Canon EOS R5", b"2021:02:18 19:54:47")
    items = [(2 + i, b"hvc1", hevc_units(TILE_SIZE, seed=i)) for i in range(4)]
    items += [(6, b"jpeg", jpeg_thumbnail) if jpeg_thumbnail else
              (6, b"hvc1", hevc_units(THUMBNAIL_SIZE, seed=9)),
              (7, b"Exif", struct.pack(">I", 6) + b"Exif\0\0" + exif)]
    grid = bytes([0, 0, 1, 1]) + struct.pack(">HH", 2400, 1600)
    infe = b"".join(full_box(b"infe", struct.pack(">HH4s", item, 0, kind) + b"\0", version=2)
                    for item, kind in [(1, b"grid")] + [(i, k) for i, k, _ in items])
    iref = full_box(b"iref", box(b"dimg", struct.pack(">HH4H", 1, 4, 2, 3, 4, 5))
                    + box(b"thmb", struct.pack(">HHH", 6, 1, 1))
                    + box(b"cdsc", struct.pack(">HHH", 7, 1, 1)))
    ipco = box(b"ipco", hvcc() + full_box(b"ispe", struct.pack(">II", 1200, 800))
               + full_box(b"ispe", struct.pack(">II", 2400, 1600))
               + full_box(b"ispe", struct.pack(">II", 320, 214)))
    ipma = full_box(b"ipma", struct.pack(">I", 6)
                    + struct.pack(">HB", 1, 1) + bytes([0x83])
                    + b"".join(struct.pack(">HBBB", i, 2, 0x81, 0x82) for i in range(2, 6))
                    + struct.pack(">HBBB", 6, 2, 0x81, 0x84)
                    + struct.pack(">HB", 7, 0))

    def meta(mdat_at):
        iloc = struct.pack(">BBH", 0x44, 0x00, len(items) + 1)
        iloc += struct.pack(">HHHHII", 1, 1, 0, 1, 0, len(grid))       # in idat
        pos = mdat_at + 8
        for item, _, data in items:
            iloc += struct.pack(">HHHHII", item, 0, 0, 1, pos, len(data))
            pos += len(data)
        return full_box(b"meta", full_box(b"hdlr", bytes(4) + b"pict" + bytes(13))
                        + box(b"uuid", CANON_UUID + box(b"CNCV", CANON_HEIF_CNCV))
                        + full_box(b"pitm", struct.pack(">H", 1))
                        + full_box(b"iinf", struct.pack(">H", 1 + len(items)) + infe)
                        + iref + box(b"iprp", ipco + ipma) + box(b"idat", grid)
                        + full_box(b"iloc", iloc, version=1))

    head = box(b"ftyp", b"heix" + bytes(4) + b"mif1heixmiafMiHA")
    mdat_at = len(head) + len(meta(0))
    return head + meta(mdat_at) + box(b"mdat", b"".join(data for _, _, data in items))


# --- TIFF raws, WAV ------------------------------------------------------------------

ASCII, SHORT, LONG = 2, 3, 4


def tiff_file(ifds, blobs, chain, mark=b"", raw_ifd=None):
    """A little-endian TIFF: IFDs (each [(tag, type, value)]; chain: {IFD: the IFD its
    next pointer names}), then blobs. A value is bytes (ASCII: without its NUL), an int, ("ifd", n)
    or ("blob", n) (their offsets). mark follows the header (a CR2's "CR\\2\\0" and the
    offset of IFD raw_ifd)."""
    head = 8 + len(mark) + (4 if mark else 0)
    sizes = []
    for entries in ifds:
        extra = sum(len(v) + 1 for _, kind, v in entries
                    if kind == ASCII and len(v) + 1 > 4)
        sizes.append(2 + 12 * len(entries) + 4 + extra + (extra & 1))
    ifd_at = list(__import__("itertools").accumulate([head] + sizes))
    blob_at = list(__import__("itertools").accumulate([ifd_at[-1]] + [len(b) for b in blobs]))

    def resolve(value):
        if isinstance(value, tuple):
            return ifd_at[value[1]] if value[0] == "ifd" else blob_at[value[1]]
        return value

    out = bytearray(b"II*\0" + struct.pack("<I", head))
    if mark:
        out += mark + struct.pack("<I", ifd_at[raw_ifd])
    for index, entries in enumerate(ifds):
        values = bytearray()
        data_at = ifd_at[index] + 2 + 12 * len(entries) + 4
        body = struct.pack("<H", len(entries))
        for tag, kind, value in sorted(entries):
            if kind == ASCII:
                text = value + b"\0"
                if len(text) <= 4:
                    body += struct.pack("<HHI", tag, kind, len(text)) + text.ljust(4, b"\0")
                else:
                    body += struct.pack("<HHII", tag, kind, len(text), data_at + len(values))
                    values += text
            elif kind == SHORT:
                body += struct.pack("<HHIHH", tag, kind, 1, resolve(value), 0)
            else:
                body += struct.pack("<HHII", tag, kind, 1, resolve(value))
        following = ifd_at[chain[index]] if index in chain else 0
        out += body + struct.pack("<I", following) + values + bytes(len(values) & 1)
    for blob in blobs:
        out += blob
    return bytes(out)


def tiff_raw_file(make, model, when, mark=b"", dng=False, raw_size=200000, seed=0):
    """A TIFF raw: IFD0 (Make, Model, the preview JPEG as its strip, an Exif IFD),
    the Exif IFD (DateTimeOriginal), a raw IFD whose strip is the sensor data."""
    preview = exif_thumbnail(_own("mei_Canon_PowerShot_G11.jpg"))
    raw = noise(raw_size, seed=seed)
    ifd0 = [(0x010F, ASCII, make), (0x0110, ASCII, model), (0x0103, SHORT, 6),
            (0x0111, LONG, ("blob", 0)), (0x0117, LONG, len(preview)),
            (0x8769, LONG, ("ifd", 1))]
    if dng:
        ifd0.append((0xC612, 1, 0x00000401))             # DNGVersion 1.4.0.0 (BYTE x4)
    exif = [(0x9003, ASCII, when)]
    raw_ifd = [(0x0103, SHORT, 1), (0x0111, LONG, ("blob", 1)), (0x0117, LONG, len(raw))]
    return tiff_file([ifd0, exif, raw_ifd], [preview, raw], {0: 2},
                     mark=mark, raw_ifd=2 if mark else None)


def pcm_wav(seconds=2.9, rate=44100):
    """A 16-bit PCM stereo WAV of slowly changing tones."""
    frames = int(seconds * rate)
    samples = array.array("h")
    for i in range(frames):
        t = i / rate
        level = 8000 + 4000 * math.sin(2 * math.pi * 0.5 * t)
        left = level * math.sin(2 * math.pi * 220 * t) + 1500 * math.sin(2 * math.pi * 660 * t)
        right = level * math.sin(2 * math.pi * 330 * t)
        samples.extend((int(left), int(right)))
    if sys.byteorder == "big":
        samples.byteswap()
    data = samples.tobytes()
    fmt = struct.pack("<HHIIHH", 1, 2, rate, rate * 4, 4, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt \
        + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


STAND_INS = {
    "exiftool_Canon.jpg": small_canon_jpeg,
    "exiftool_CanonRaw.cr2": lambda: tiff_raw_file(b"Canon", b"Canon EOS 350D DIGITAL",
                                                   b"2005:06:09 12:25:04", mark=b"CR\x02\x00"),
    "exiftool_Nikon.nef": lambda: tiff_raw_file(b"NIKON CORPORATION", b"NIKON D70",
                                                b"2004:11:21 21:29:12", seed=1),
    "exiftool_DNG.dng": lambda: tiff_raw_file(b"Canon", b"Canon EOS 350D DIGITAL",
                                              b"2005:06:09 12:25:04", dng=True, seed=2),
    "exiv2_Free_Test_Data_500KB_WAV.wav": pcm_wav,
    "exiv2_flame.avi": lambda: _own("mei_100_0306.AVI"),
    "exiv2_sample_640x360.mov": lambda: _own("nomexif_meta.mov"),
    "exiv2_Canon.HIF": canon_heif,
}


@functools.lru_cache(maxsize=None)
def stand_in(name):
    """The stand-in for the corpus file name (built once), or None when it has none."""
    return STAND_INS[name]() if name in STAND_INS else None
