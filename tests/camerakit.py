"""Files of the other cameras' formats, built to their published layouts.

The shared corpus holds no RAF, X3F, MTS/M2TS, MXF, SRW or GPR, so these builders
write each from its format's description (standard library only; bench/othermedia.py
uses them too):

- raf_file: Fujifilm RAF - the "FUJIFILMCCD-RAW " header, whose big-endian offsets
  and lengths at byte 84 place the JPEG, the CFA header (a count, then tag, size,
  data records) and the CFA; newer bodies add a second CFA header and CFA at 120.
- x3f_file: Sigma X3F - "FOVb" header, sections SECp (UTF-16 properties), SECi
  (a JPEG preview, format 18, and the raw image), then the directory SECd whose
  offset the file's last 4 bytes hold (little-endian).
- ts_stream: an MPEG transport stream of 188-byte packets, or of 192-byte ones with a
  4-byte arrival time (AVCHD's MTS, Blu-ray's M2TS, written in units of 32 packets):
  PAT, PMT (H.264 video, AC-3 audio), then PES packets with continuity counters
  stepping per PID; the first video packet carries an AVCHD MDPM SEI with the date.
- mxf_file: SMPTE 377M MXF - header partition pack (naming the footer's offset),
  essence KLVs, footer partition pack, random index pack.
- tiff_raw: a TIFF with a camera's Make and Model (and DNGVersion): Samsung's SRW
  and GoPro's GPR are named by those; this one needs Pillow.
"""

import io
import struct

from dumpkit import noise

# --- RAF -------------------------------------------------------------------------------

RAF_MAGIC = b"FUJIFILMCCD-RAW "


def raf_file(jpeg, cfa, model=b"X-T3", second=None, records=None, header_size=None):
    """A RAF holding jpeg and cfa (and a second (records, cfa) pair when given)."""
    header_size = header_size or (160 if second else 148)
    records = records or [(0x0100, struct.pack(">HH", 300, 400)), (0x0130, b"\0" * 8)]

    def cfa_header(recs):
        return struct.pack(">I", len(recs)) + b"".join(
            struct.pack(">HH", tag, len(data)) + data for tag, data in recs)

    parts = [jpeg, cfa_header(records), cfa]
    if second:
        parts += [cfa_header(second[0]), second[1]]
    places, pos = [], header_size
    for part in parts:
        pos += -pos % 16                    # Fujifilm aligns its parts
        places.append((pos, len(part)))
        pos += len(part)
    header = bytearray(header_size)
    header[0:16] = RAF_MAGIC
    header[16:20] = b"0201"
    header[20:28] = b"FF129502"
    header[28:60] = model.ljust(32, b"\0")
    header[60:64] = b"0100"
    struct.pack_into(">6I", header, 84, *[n for place in places[:3] for n in place])
    if second:
        struct.pack_into(">4I", header, 120, *[n for place in places[3:] for n in place])
    out = bytearray(header)
    for (at, _), part in zip(places, parts):
        out += b"\0" * (at - len(out)) + part
    return bytes(out)


# --- X3F -------------------------------------------------------------------------------

def x3f_properties(properties):
    """A SECp section: UTF-16 names and values, found by offsets in characters."""
    text, table = "", b""
    for name, value in properties.items():
        table += struct.pack("<II", len(text), len(text) + len(name) + 1)
        text += name + "\0" + value + "\0"
    return (struct.pack("<4sIIIII", b"SECp", 0x00020000, len(properties), 0, 0, len(text))
            + table + text.encode("utf-16-le"))


def x3f_image(data, fmt, columns=640, rows=480):
    return struct.pack("<4sIIIIII", b"SECi", 0x00020000, 2, fmt, columns, rows, 0) + data


def x3f_file(jpeg, raw, properties=None, version=0x00020003):
    """An X3F: header, properties, JPEG preview (format 18), raw image (format 6),
    directory, and the directory's offset last."""
    properties = properties or {"CAMMANUF": "SIGMA", "CAMMODEL": "SIGMA DP2 Merrill",
                                "CAMSERIAL": "9876543", "TIME": "1420113600"}
    header = struct.pack("<4sI16sIIII", b"FOVb", version, noise(16, seed=9), 0, 4704, 3136, 0)
    header = header.ljust(256, b"\0")
    sections = [(b"PROP", x3f_properties(properties)), (b"IMA2", x3f_image(jpeg, 18)),
                (b"IMAG", x3f_image(raw, 6))]
    out, entries = bytearray(header), []
    for kind, body in sections:
        out += b"\0" * (-len(out) % 16)
        entries.append(struct.pack("<II4s", len(out), len(body), kind))
        out += body
    directory = len(out)
    out += struct.pack("<4sII", b"SECd", 0x00020000, len(entries)) + b"".join(entries)
    out += struct.pack("<I", directory)
    return bytes(out)


# --- MPEG transport streams ------------------------------------------------------------

PMT_PID, VIDEO_PID, AUDIO_PID = 0x0100, 0x1011, 0x1100
MDPM_UUID = bytes.fromhex("17ee8c60f84d11d98cd60800200c9a66") + b"MDPM"


def mpeg_crc(data):
    """CRC-32/MPEG-2 (what PSI sections end with)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def psi_section(table_id, id_field, body):
    length = 5 + len(body) + 4
    section = bytes([table_id, 0xB0 | length >> 8, length & 0xFF]) + struct.pack(
        ">HBBB", id_field, 0xC1, 0, 0) + body
    return section + struct.pack(">I", mpeg_crc(section))


def pat():
    return psi_section(0x00, 1, struct.pack(">HH", 1, 0xE000 | PMT_PID))


def pmt():
    streams = struct.pack(">BHH", 0x1B, 0xE000 | VIDEO_PID, 0xF000) \
        + struct.pack(">BHH", 0x81, 0xE000 | AUDIO_PID, 0xF000)
    return psi_section(0x02, 1, struct.pack(">HH", 0xE000 | VIDEO_PID, 0xF000) + streams)


def mdpm_sei(when=(2024, 5, 1, 12, 30, 10), zone=0x12):
    """An H.264 SEI NAL unit (user data unregistered) with AVCHD's MDPM date and time.
    zone: the MDPM time zone byte (0x12: +09:00)."""
    def bcd(n):
        return (n // 10) << 4 | n % 10

    year, month, day, hour, minute, second = when
    entries = bytes([0x18, zone, bcd(year // 100), bcd(year % 100), bcd(month),
                     0x19, bcd(day), bcd(hour), bcd(minute), bcd(second)])
    payload = MDPM_UUID + bytes([2]) + entries
    return b"\0\0\0\1\x06\x05" + bytes([len(payload)]) + payload + b"\x80"


class Packets:
    """Writes TS packets, each PID's continuity counter stepping from its start."""

    def __init__(self, packet=192, counter_start=0):
        self.packet = packet
        self.counters = {}
        self.counter_start = counter_start
        self.out = bytearray()
        self.time = 0

    def add(self, pid, payload, start=False):
        assert len(payload) <= 184
        counter = self.counters.get(pid, self.counter_start - 1) + 1 & 0xF
        self.counters[pid] = counter
        if len(payload) < 184:              # stuffing in an adaptation field
            fill = 184 - len(payload) - 1
            adaptation = bytes([fill]) + (b"\0" + b"\xff" * (fill - 1) if fill else b"")
            head = struct.pack(">BHB", 0x47, (0x4000 if start else 0) | pid, 0x30 | counter)
            body = adaptation + payload
        else:
            head = struct.pack(">BHB", 0x47, (0x4000 if start else 0) | pid, 0x10 | counter)
            body = payload
        if self.packet == 192:
            self.out += struct.pack(">I", self.time & 0x3FFFFFFF)
            self.time += 1234
        self.out += head + body

    def table(self, pid, section):
        self.add(pid, b"\0" + section, start=True)

    def null(self):
        self.add(0x1FFF, b"\xff" * 184)


def ts_stream(frames=40, packet=192, seed=0, when=(2024, 5, 1, 12, 30, 10), counter_start=0,
              packets_per_frame=12):
    """A camera-like stream: tables, then frames of video (and a little audio)."""
    w = Packets(packet, counter_start)
    data = noise(frames * packets_per_frame * 184, seed=seed)
    pos = 0
    for frame in range(frames):
        if frame % 10 == 0:
            w.table(0, pat())
            w.table(PMT_PID, pmt())
        pes = b"\0\0\1\xe0\0\0\x80\x80\x05" + b"\x21\0\1\0\1" + b"\0\0\0\1\x09\xf0"
        if frame == 0:
            pes += mdpm_sei(when)
        size = (packets_per_frame - 1) * 184 - 1 - (frame * 37) % 150   # frames vary in size
        taken = size - len(pes)
        pes += data[pos:pos + taken]
        pos += taken
        for at in range(0, len(pes), 184):     # its last packet padded (adaptation field)
            w.add(VIDEO_PID, pes[at:at + 184], start=at == 0)
        w.add(AUDIO_PID, b"\0\0\1\xbd\0\x20\x80\x80\x05\x21\0\1\0\1" + data[pos:pos + 50],
              start=True)
        pos += 50
    if packet == 192:
        while len(w.out) % 6144:
            w.null()
    return bytes(w.out)


# --- MXF -------------------------------------------------------------------------------

PARTITION_KEY = bytes.fromhex("060e2b34020501010d01020101")
RIP_KEY = bytes.fromhex("060e2b34020501010d01020101110100")
PICTURE_KEY = bytes.fromhex("060e2b34010201010d01030115010501")
FILL_KEY = bytes.fromhex("060e2b34010101020301021001000000")
OP1A = bytes.fromhex("060e2b34040101010d01020101010900")


def klv(key, value):
    return key + b"\x83" + len(value).to_bytes(3, "big") + value


def partition(kind, this, previous, footer, body_sid=1):
    value = struct.pack(">HHIQQQQQIQI", 1, 3, 1, this, previous, footer, 0, 0, 0, 0,
                        body_sid) + OP1A + struct.pack(">II", 0, 16)
    return klv(PARTITION_KEY + bytes([kind, 0x04, 0x00]), value)


def mxf_file(frames=30, frame_size=4000, seed=0, rip=True, footer_named=True):
    """An OP1a MXF: header partition, frame-wrapped essence, footer, RIP."""
    header_len = len(partition(2, 0, 0, 0))
    body = klv(FILL_KEY, b"\0" * 100)
    for frame in range(frames):
        body += klv(PICTURE_KEY, noise(frame_size, seed=seed * 1000 + frame))
    footer_at = header_len + len(body)
    out = partition(2, 0, 0, footer_at if footer_named else 0) + body
    out += partition(4, footer_at, 0, footer_at, body_sid=0)
    if rip:
        entries = struct.pack(">IQ", 1, 0) + struct.pack(">IQ", 0, footer_at)
        length = 16 + 4 + len(entries) + 4
        out += RIP_KEY + b"\x83" + (len(entries) + 4).to_bytes(3, "big") + entries \
            + struct.pack(">I", length)
    return out


# --- TIFF-based: SRW, GPR --------------------------------------------------------------

def tiff_raw(make, model, dng=False, seed=0, size=(128, 96)):
    """A TIFF written by Pillow with the Make and Model a camera writes (and
    DNGVersion 1.4 for a DNG)."""
    from PIL import Image, TiffImagePlugin
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[271], info[272] = make, model
    if dng:
        info[50706] = b"\x01\x04\x00\x00"
        info.tagtype[50706] = 1
    out = io.BytesIO()
    small = (max(1, size[0] // 4), max(1, size[1] // 4))
    picture = Image.frombytes("RGB", small, noise(small[0] * small[1] * 3, seed=seed))
    picture.resize(size).save(out, "TIFF", tiffinfo=info)
    return out.getvalue()


# --- ORF and RW2: TIFFs with their makers' own header and tags --------------------------

ASCII, SHORT, LONG, UNDEFINED, IFD = 2, 3, 4, 7, 13


def ifd_block(entries, at, order="<"):
    """An IFD at offset at (its values after it): entries [(tag, type, value)], a value
    an int (SHORT, LONG, IFD) or bytes (ASCII without its NUL, UNDEFINED)."""
    entries = sorted(entries)
    values = bytearray()
    data_at = at + 2 + 12 * len(entries) + 4
    body = struct.pack(order + "H", len(entries))
    for tag, kind, value in entries:
        if isinstance(value, int):
            fmt = "H2x" if kind == SHORT else "I"
            body += struct.pack(order + "HHI" + fmt, tag, kind, 1, value)
            continue
        data = value + b"\0" if kind == ASCII else value
        if len(data) <= 4:
            body += struct.pack(order + "HHI", tag, kind, len(data)) + data.ljust(4, b"\0")
        else:
            body += struct.pack(order + "HHII", tag, kind, len(data), data_at + len(values))
            values += data + b"\0" * (len(data) & 1)
    return bytes(body + struct.pack(order + "I", 0) + values)


OLYMPUS_HEAD = b"OLYMPUS\0II\x03\0"
OM_SYSTEM_HEAD = b"OM SYSTEM\0\0\0II\x04\0"       # OM Digital Solutions' bodies (2022 on)


def olympus_maker_note(jpeg, head=OLYMPUS_HEAD):
    """An ORF's maker note, new style (offsets count from its own start): its IFD, then
    CameraSettings (0x2020), which places the preview JPEG, stored after them."""
    equipment_at = len(head) + 2 + 12 * 3 + 4
    camera_at = equipment_at + 2 + 12 + 4
    preview_at = camera_at + 2 + 12 * 3 + 4
    preview_at += -preview_at % 16
    note_ifd = ifd_block([(0x0000, UNDEFINED, b"0100"), (0x2010, IFD, equipment_at),
                          (0x2020, IFD, camera_at)], len(head))
    equipment = ifd_block([(0x0000, UNDEFINED, b"0100")], equipment_at)
    camera = ifd_block([(0x0100, LONG, 1), (0x0101, LONG, preview_at),
                        (0x0102, LONG, len(jpeg))], camera_at)
    note = head + note_ifd + equipment + camera
    return note + b"\0" * (preview_at - len(note)) + jpeg


def orf_file(jpeg, raw, model=b"E-M10", when=b"2016:05:21 10:11:12", size=(400, 300),
             note_head=OLYMPUS_HEAD):
    """An ORF as Olympus writes it: "IIRO", IFD0 (the raw's strip: Compression 1 though
    the data is Olympus-compressed, so smaller than size says), an Exif IFD whose
    MakerNote holds the preview JPEG."""
    def ifd0(exif_at, raw_at):
        return ifd_block([(0x00FE, LONG, 0), (0x0100, LONG, size[0]), (0x0101, LONG, size[1]),
                          (0x0102, SHORT, 16), (0x0103, SHORT, 1), (0x0106, SHORT, 32803),
                          (0x010F, ASCII, b"OLYMPUS IMAGING CORP.  "), (0x0110, ASCII, model),
                          (0x0111, LONG, raw_at), (0x0115, SHORT, 1), (0x0116, LONG, size[1]),
                          (0x0117, LONG, len(raw)), (0x011C, SHORT, 1),
                          (0x8769, LONG, exif_at)], 8)
    exif_at = 8 + len(ifd0(0, 0))
    exif = ifd_block([(0x9003, ASCII, when),
                      (0x927C, UNDEFINED, olympus_maker_note(jpeg, note_head))], exif_at)
    raw_at = exif_at + len(exif) + -(exif_at + len(exif)) % 512
    out = b"IIRO" + struct.pack("<I", 8) + ifd0(exif_at, raw_at) + exif
    return out + b"\0" * (raw_at - len(out)) + raw


RW2_GUID = bytes.fromhex("88e774d8f8251d4d947a6e77822b5d6a")    # after every RW2's header


def rw2_file(jpeg, raw, model=b"DMC-LX3", when=b"2008:08:06 15:21:56", sensor=(128, 96)):
    """An RW2 as Panasonic writes it: "IIU\\0", IFD0 at 24 with the sensor's size and
    bits, JpgFromRaw (a JPEG whole in an undefined value) and the raw data at
    RawDataOffset (StripOffsets all ones), StripByteCounts long."""
    ifd0_at = 24
    exif_entries = [(0x9003, ASCII, when)]
    probe = ifd_block(rw2_ifd0(0, 0, len(raw), jpeg, model, sensor), ifd0_at)
    exif_at = ifd0_at + len(probe)
    exif = ifd_block(exif_entries, exif_at)
    raw_at = exif_at + len(exif) + -(exif_at + len(exif)) % 512
    ifd0 = ifd_block(rw2_ifd0(exif_at, raw_at, len(raw), jpeg, model, sensor), ifd0_at)
    out = b"IIU\0" + struct.pack("<I", ifd0_at) + RW2_GUID + ifd0 + exif
    return out + b"\0" * (raw_at - len(out)) + raw


def rw2_ifd0(exif_at, raw_at, raw_size, jpeg, model, sensor):
    return [(0x0001, UNDEFINED, b"0300"), (0x0002, SHORT, sensor[0]), (0x0003, SHORT, sensor[1]),
            (0x000A, SHORT, 12), (0x000B, SHORT, 34316), (0x002D, SHORT, 4),
            (0x002E, UNDEFINED, jpeg), (0x010F, ASCII, b"Panasonic"), (0x0110, ASCII, model),
            (0x0111, LONG, 0xFFFFFFFF), (0x0116, SHORT, sensor[1]), (0x0117, LONG, raw_size),
            (0x0118, LONG, raw_at), (0x8769, LONG, exif_at)]
