"""Test helpers: build card dumps with files at chosen offsets, and real-header CR3s.

Every scenario is one line::

    offsets = build_dump(path, 1000, cr3, 513, mp4)   # ints are random filler bytes

The corpus (../shared/corpus) holds no complete full-size CR3, so `rebuild_cr3` makes
one from a real file's headers: the real ftyp and moov (with its Canon uuid, CTBO and
trak tables) and the real boxes before mdat, then an mdat of exactly the size that the
moov's co64 + stsz tables (and CTBO) declare. The sample bytes are pseudo-random, with
the JPEG track's sample made to start with FFD8 and end with FFD9.
"""

import calendar
import hashlib
import os
import random
import struct
import subprocess
from pathlib import Path

# The project's own files (tests/corpus: those whose licence lets them be shipped,
# see its MANIFEST.tsv and LICENSES/), then the shared corpus beside the clone.
OWN_CORPUS = Path(__file__).resolve().parent / "corpus"
CORPUS = Path(os.environ.get("RECOVERCR3_CORPUS",
                             Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def corpus_path(name):
    """Where the corpus file name is: tests/corpus, else the shared corpus (which
    may not have it either)."""
    own = OWN_CORPUS / name
    return own if own.is_file() else CORPUS / name

BOX = struct.Struct(">I4s")
CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
CNOP_UUID = bytes.fromhex("210f1687914911e4811100242131fce4")


def corpus_file(name, exact=False):
    """Bytes of a corpus file. Where it is in neither corpus, its stand-in (see
    standins.py) unless exact; else the calling test skips, saying why."""
    import pytest
    path = corpus_path(name)
    if not path.is_file() and not exact:
        from standins import stand_in
        data = stand_in(name)
        if data is not None:
            return data
    if not path.is_file():
        pytest.skip("corpus file %s is not in tests/corpus (its licence does not let it be "
                    "shipped) and no shared corpus is beside the clone (%s)" % (name, CORPUS))
    return path.read_bytes()


def noise(size, seed=0):
    """Deterministic high-entropy bytes, like compressed image data."""
    return hashlib.shake_128(b"recovercr3-noise-%d" % seed).digest(size) if size else b""


def build_dump(path, *parts, seed=0):
    """Write parts to path (bytes as given, an int as that many filler bytes).

    Returns the offsets at which the bytes parts start.
    """
    offsets = []
    pos = 0
    with open(path, "wb") as out:
        for i, part in enumerate(parts):
            if isinstance(part, int):
                part = noise(part, seed=seed * 1000 + i)
            else:
                offsets.append(pos)
            out.write(part)
            pos += len(part)
    return offsets


def three_file_card(path):
    """A dump of a 3GP, a JPEG (on a sector start) and an MP4; returns (path, [files])."""
    files = [corpus_file("mei_sample.3gp"), corpus_file("exiftool_Canon.jpg"),
             corpus_file("gopro_karma.mp4")]
    build_dump(path, 1024, files[0], 512 * 3 - len(files[0]) % 512,
               files[1], 512 * 3 - len(files[1]) % 512, files[2], 512)
    return path, files


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def box(name, payload):
    return BOX.pack(BOX.size + len(payload), name) + payload


def large_box(name, payload):
    return struct.pack(">I4sQ", 1, name, 16 + len(payload)) + payload


def uuid_box(usertype, payload):
    return box(b"uuid", usertype + payload)


def ftyp(major, *compatible, minor=0):
    return box(b"ftyp", major + struct.pack(">I", minor) + b"".join(compatible))


# --- an independent reader of the tables the rebuild needs (not the product's code) ---

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def top_level(data):
    """[(offset, name, size, header_size)] of the top-level boxes that fit in data."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, name = BOX.unpack_from(data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        out.append((pos, name, size, header))
        if size < 8:
            break
        pos += size
    return out


def find_boxes(data, start, end, wanted, found=None):
    """Offsets of every box named in wanted below [start, end), in file order."""
    found = [] if found is None else found
    pos = start
    while pos + 8 <= end:
        size, name = BOX.unpack_from(data, pos)
        if size < 8 or pos + size > end:
            break
        if name in wanted:
            found.append((name, pos))
        if name in CONTAINERS:
            find_boxes(data, pos + 8, pos + size, wanted, found)
        if name == b"uuid" and data[pos + 8:pos + 24] == CANON_UUID:
            find_boxes(data, pos + 24, pos + size, wanted, found)
        pos += size
    return found


def samples(moov):
    """[(offset, size, table_at, width, kind)] of each track's single sample.

    offset and size come from co64/stco and stsz; table_at is where the co64/stco box
    starts inside moov, width the byte width of its entries; kind is b"JPEG", b"CTMD"
    or, for a CRX picture, the body of its CMP1 box, from the track's sample description.
    """
    tables = find_boxes(moov, 0, len(moov), {b"co64", b"stco", b"stsz", b"stsd"})
    offsets, sizes, kinds = [], [], []
    for name, at in tables:
        if name == b"co64":
            offsets.append((struct.unpack_from(">Q", moov, at + 16)[0], at, 8))
        elif name == b"stco":
            offsets.append((struct.unpack_from(">I", moov, at + 16)[0], at, 4))
        elif name == b"stsz":
            sample_size = struct.unpack_from(">I", moov, at + 12)[0]
            sizes.append(sample_size or struct.unpack_from(">I", moov, at + 20)[0])
        else:
            stsd = moov[at:at + struct.unpack_from(">I", moov, at)[0]]
            kind = next(k for k in (b"JPEG", b"CMP1", b"CTMD") if k in stsd)
            if kind == b"CMP1":                 # the box's body: what the header follows
                at = stsd.index(b"CMP1") + 4
                kind = stsd[at:at + struct.unpack_from(">I", stsd, at - 8)[0] - 8]
            kinds.append(kind)
    return [(off, size, at, width, kind)
            for (off, at, width), size, kind in zip(offsets, sizes, kinds)]


def crx_header(cmp1, size, seed=1):
    """The header of a CRX picture of `size` bytes, as its CMP1 box body describes it
    (LibRaw's crx decoder and lclevy/canon_cr3 document the layout): per tile a 12-byte
    FF01 record, per plane an FF02 record, per subband (3 per level, plus one) an FF03
    record, zeros up to the header size CMP1 gives; the sizes fill the picture."""
    width, height, tile_width, tile_height = struct.unpack_from(">IIII", cmp1, 8)
    planes, levels = cmp1[25] >> 4, cmp1[26] & 15
    (header_size,) = struct.unpack_from(">I", cmp1, 28)
    tiles = -(-width // tile_width) * -(-height // tile_height)
    subbands = 3 * levels + 1
    rnd = random.Random(seed)

    def split(total, n):
        cuts = sorted(rnd.randrange(1, total) for _ in range(n - 1))
        return [b - a for a, b in zip([0] + cuts, cuts + [total])]

    out = b""
    for tile, tile_size in enumerate(split(size - header_size, tiles)):
        out += struct.pack(">HHIHH", 0xFF01, 8, tile_size, tile, 0)
        for plane, plane_size in enumerate(split(tile_size, planes)):
            out += struct.pack(">HHIB3x", 0xFF02, 8, plane_size, plane << 4)
            for band, band_size in enumerate(split(plane_size, subbands)):
                out += struct.pack(">HHIB3x", 0xFF03, 8, band_size, band << 4)
    assert len(out) <= header_size, "CMP1's header size is too small for its geometry"
    return out + bytes(header_size - len(out))


def ctmd_sample(size):
    """size bytes of CTMD records: the EOS M50's real ones, then one filler record.

    exiftool's M50 sample keeps its real 41036-byte CTMD at offset 11466. Where that
    sample may not be (a clone alone: its licence keeps it out of tests/corpus), the
    sample is filler records alone, which the CTMD checks take as well."""
    path = corpus_path("exiftool_CanonRaw.cr3")
    real = path.read_bytes()[11466:11466 + 41036] if path.is_file() else b""
    if size <= len(real):
        return real[:size] if size == len(real) else struct.pack("<IH", size, 9) + bytes(size - 6)
    rest = size - len(real)
    return real + struct.pack("<IH", rest, 9) + bytes(rest - 6)


def rebuild_cr3(header, relayout=False, seed=1):
    """A complete CR3 from a real file's first bytes (see the module docstring).

    header: a real CR3 from its ftyp up to at least the end of its moov. Boxes between
    moov and mdat that the header cuts off are completed with filler. relayout=True
    rewrites the co64 and CTBO entries to lay the samples out one after another (for
    samples whose stripped offsets all coincide, as in exiftool's M50 sample).
    """
    boxes = top_level(header)
    out = bytearray()
    mdat_at = None
    for offset, name, size, hsize in boxes:
        if name == b"mdat":
            mdat_at = offset
            break
        present = header[offset:offset + size]
        out += present + noise(size - len(present), seed=seed + 7)
    if mdat_at is None:
        mdat_at = len(out)
    moov_off, _, moov_size, _ = next(b for b in boxes if b[1] == b"moov")
    tracks = samples(bytes(out[moov_off:moov_off + moov_size]))
    mdat_header = 16
    if relayout:
        pos = mdat_at + mdat_header
        for i, (_, size, at, width, kind) in enumerate(tracks):
            struct.pack_into(">Q" if width == 8 else ">I", out, moov_off + at + 16, pos)
            tracks[i] = (pos, size, at, width, kind)
            pos += size
    end = max(off + size for off, size, _, _, _ in tracks)
    mdat_size = end - mdat_at
    first = min(off for off, _, _, _, _ in tracks)
    if relayout or first - mdat_at == 16:
        mdat = bytearray(struct.pack(">I4sQ", 1, b"mdat", mdat_size))
    else:
        mdat = bytearray(BOX.pack(mdat_size, b"mdat"))
    mdat += noise(mdat_size - len(mdat), seed=seed)
    for offset, size, _, _, kind in tracks:
        at = offset - mdat_at
        if kind == b"JPEG":
            mdat[at:at + 2], mdat[at + size - 2:at + size] = b"\xff\xd8", b"\xff\xd9"
        elif kind != b"CTMD":                   # a CRX picture: kind is its CMP1
            header = crx_header(kind, size, seed=seed + at)
            mdat[at:at + len(header)] = header
        else:
            mdat[at:at + size] = ctmd_sample(size)
    end_preview_jpeg(out)
    if relayout:
        fix_ctbo(out, moov_off, mdat_at, mdat_size)
    ctbo = ctbo_entries(bytes(out))
    assert (mdat_at, mdat_size) in ctbo, "co64/stsz and CTBO disagree on mdat"
    return bytes(out + mdat)


PRVW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")


def end_preview_jpeg(out):
    """Give the PRVW JPEG (completed with filler when the header was cut) its EOI."""
    for offset, name, size, header in top_level(bytes(out)):
        if name == b"uuid" and out[offset + 8:offset + 24] == PRVW_UUID:
            prvw = offset + 8 + 16 + 8                   # uuid header, id, 64-bit field
            jpeg_size = struct.unpack_from(">I", out, prvw + 8 + 12)[0]
            jpeg = prvw + 8 + 16
            if out[jpeg + jpeg_size - 2:jpeg + jpeg_size] != b"\xff\xd9":
                out[jpeg + jpeg_size - 2:jpeg + jpeg_size] = b"\xff\xd9"


def ctbo_entries(data):
    """[(offset, size)] of the CTBO table in the Canon uuid of moov."""
    (name, at), = find_boxes(data, 0, len(data), {b"CTBO"})
    count = struct.unpack_from(">I", data, at + 8)[0]
    return [struct.unpack_from(">IQQ", data, at + 12 + 20 * i)[1:] for i in range(count)]


def fix_ctbo(out, moov_off, mdat_at, mdat_size):
    (name, at), = find_boxes(bytes(out), 0, len(out), {b"CTBO"})
    count = struct.unpack_from(">I", out, at + 8)[0]
    for i in range(count):
        index, offset, size = struct.unpack_from(">IQQ", out, at + 12 + 20 * i)
        if offset == mdat_at:
            struct.pack_into(">IQQ", out, at + 12 + 20 * i, index, mdat_at, mdat_size)


def eos_r_cr3():
    """Canon EOS R CR3, 29.4 MB: real headers (filetype_fixture.cr3), rebuilt mdat."""
    return rebuild_cr3(corpus_file("filetype_fixture.cr3"))


def eos_m50_cr3(mend_previews=True, exact=False):
    """Canon EOS M50 C-RAW CR3, ~34 MB: real headers (exiftool sample), samples relaid.

    exiftool replaced the THMB and PRVW JPEGs of this sample with placeholder text
    ("<Dummy thumbnail image data>"); with mend_previews the placeholders get JPEG
    markers and matching size fields, so that the file is whole. Without it the file
    is what exiftool left: a CR3 whose previews are not JPEGs.

    Where the sample may not be (its licence keeps it out of tests/corpus), a second
    EOS R CR3, of other filler, stands in for it unless exact (see standins.py).
    """
    if not corpus_path("exiftool_CanonRaw.cr3").is_file() and not exact:
        return rebuild_cr3(corpus_file("filetype_fixture.cr3"), seed=2)
    header = bytearray(corpus_file("exiftool_CanonRaw.cr3"))
    if mend_previews:
        (_, thmb), = find_boxes(bytes(header), 0, len(header), {b"THMB"})
        mark_jpeg(header, thmb + 16, thmb + 24, thmb + struct.unpack_from(">I", header, thmb)[0])
        for offset, name, size, _ in top_level(bytes(header)):
            if name == b"uuid" and header[offset + 8:offset + 24] == PRVW_UUID:
                prvw = offset + 8 + 16 + 8
                struct.pack_into(">I", header, prvw, offset + size - prvw)   # was 372221
                mark_jpeg(header, prvw + 8 + 12, prvw + 8 + 16, offset + size)
    return rebuild_cr3(bytes(header), relayout=True)


def mark_jpeg(data, size_field, start, end):
    """Make data[start:end] read as a JPEG of that size: SOI first, EOI last."""
    struct.pack_into(">I", data, size_field, end - start)
    data[start:start + 2], data[end - 2:end] = b"\xff\xd8", b"\xff\xd9"


def with_cnop_trailer(cr3):
    """A CR3 as burst rolls and DPP write it: a CNOP uuid box after mdat."""
    return cr3 + uuid_box(CNOP_UUID, box(b"CNOP", noise(4000, seed=99)))


def jpeg_of_size(jpeg, size):
    """A real JPEG grown to exactly size bytes by a comment segment after its SOI."""
    grow = size - len(jpeg)
    assert 4 <= grow <= 65535 + 2, "cannot grow %d bytes in one segment" % grow
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", grow - 2) + noise(grow - 4, 5) + jpeg[2:]


def with_real_jpeg(cr3, jpeg):
    """The CR3 with a real JPEG (grown to the sample's size) as its full-size JPEG."""
    moov = next(b for b in top_level(cr3) if b[1] == b"moov")
    ((offset, size, _, _, _),) = [t for t in samples(cr3[moov[0]:moov[0] + moov[2]])
                                  if t[4] == b"JPEG"]
    return cr3[:offset] + jpeg_of_size(jpeg, size) + cr3[offset + size:], offset, size


def split(data, cut, gap):
    """data written in two pieces: data[:cut], then gap (foreign bytes), then the rest.

    What a card holds after a deletion: the file's first clusters, another file's,
    then its own again."""
    return data[:cut] + gap + data[cut:]


def faststart(movie):
    """A movie with its moov moved before mdat (as cameras and +faststart write it),
    its chunk offsets moved with the data."""
    boxes = top_level(movie)
    (moov_at, _, moov_size, _), = [b for b in boxes if b[1] == b"moov"]
    moov = bytearray(movie[moov_at:moov_at + moov_size])
    for name, at in find_boxes(bytes(moov), 8, len(moov), {b"stco", b"co64"}):
        width = 8 if name == b"co64" else 4
        (count,) = struct.unpack_from(">I", moov, at + 12)
        for i in range(count):
            field = at + 16 + i * width
            value = struct.unpack_from(">Q" if width == 8 else ">I", moov, field)[0]
            struct.pack_into(">Q" if width == 8 else ">I", moov, field, value + moov_size)
    (mdat_at, _, _, _), = [b for b in boxes if b[1] == b"mdat"]
    rest = [movie[o:o + s] for o, n, s, _ in boxes if o >= mdat_at and n != b"moov"]
    return movie[:mdat_at] + bytes(moov) + b"".join(rest)


def scatter(data, cuts, gaps):
    """data written in len(cuts) + 1 pieces, cut at cuts, with gaps[i] (foreign bytes)
    after piece i: what a card holds of a file written over the holes of deleted ones."""
    out, last = b"", 0
    for cut, gap in zip(cuts, gaps):
        out += data[last:cut] + gap
        last = cut
    return out + data[last:]


def exfat_boot_sector(cluster, heap_sectors):
    """The boot sector of an exFAT file system (what the reassembly reads of it: the
    cluster heap's first sector, bytes per sector and sectors per cluster as powers
    of two)."""
    sector = bytearray(512)
    sector[0:3] = b"\xeb\x76\x90"
    sector[3:11] = b"EXFAT   "
    sector[88:92] = heap_sectors.to_bytes(4, "little")
    sector[108] = 9                                     # 512-byte sectors
    sector[109] = (cluster // 512).bit_length() - 1
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def _rotate_add16(data, skip=()):
    value = 0
    for index, byte in enumerate(data):
        if index in skip:
            continue
        value = ((value >> 1) | ((value & 1) << 15)) + byte
        value &= 0xFFFF
    return value


def exfat_entry_set(name, cluster, size, contiguous=True, when=(2024, 5, 1, 12, 30, 10),
                    deleted=False, attributes=0x20):
    """The directory entries exFAT writes for one file (File, Stream Extension, File
    Name entries), with the checksums of its specification; deleted: as a deletion
    leaves them (the in-use bit of each type cleared)."""
    year, month, day, hour, minute, second = when
    stamp = ((year - 1980) << 25 | month << 21 | day << 16 | hour << 11 | minute << 5
             | second // 2)
    units = name.encode("utf-16-le")
    parts = [units[i:i + 30] for i in range(0, len(units), 30)]
    file_entry = bytearray(32)
    file_entry[0], file_entry[1] = 0x85, 1 + len(parts)
    file_entry[4:6] = attributes.to_bytes(2, "little")          # archive, or folder
    for at in (8, 12, 16):
        file_entry[at:at + 4] = stamp.to_bytes(4, "little")
    stream = bytearray(32)
    stream[0], stream[1], stream[3] = 0xC0, 0x01 | (0x02 if contiguous else 0), len(name)
    stream[4:6] = _rotate_add16(name.upper().encode("utf-16-le")).to_bytes(2, "little")
    stream[8:16] = size.to_bytes(8, "little")
    stream[20:24] = cluster.to_bytes(4, "little")
    stream[24:32] = size.to_bytes(8, "little")
    names = b"".join(b"\xc1\x00" + part.ljust(30, b"\0") for part in parts)
    entries = bytearray(bytes(file_entry) + bytes(stream) + names)
    entries[2:4] = _rotate_add16(entries, skip=(2, 3)).to_bytes(2, "little")
    if deleted:
        for at in range(0, len(entries), 32):
            entries[at] &= 0x7F
    return bytes(entries)


CAMERA_FOLDERS = ("DCIM", "DCIM/100CANON")


class MtoolsCard:
    """A FAT32 card image made by mkfs.vfat (with folders, made first) and written
    with mtools as a camera
    writes: each file goes to the first free clusters (FSInfo's next-free hint is
    reset before every copy), so a file written after a deletion fills the hole
    and runs on past the files after it. format() is a quick format."""

    def __init__(self, path, size_mb=80, sectors_per_cluster=2, folders=()):
        self.path = Path(path)
        self.size_mb = size_mb
        self.sectors_per_cluster = sectors_per_cluster
        self.env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"}
        with open(str(self.path), "wb") as f:
            f.truncate(size_mb << 20)
        self.format()
        for folder in folders:
            self.mkdir(folder)

    def _run(self, *command):
        subprocess.run(command, check=True, capture_output=True, env=self.env)

    def format(self):
        """A quick format: new boot sector, FATs and root; the data area stays."""
        self._run("mkfs.vfat", "-F", "32", "-S", "512", "-s", str(self.sectors_per_cluster),
                  "-n", "EOS_DIGITAL", "-i", "1234ABCD", str(self.path))

    def _first_free_next(self):
        with open(str(self.path), "r+b") as f:
            boot = f.read(512)
            fsinfo = int.from_bytes(boot[48:50], "little")
            f.seek(fsinfo * 512 + 492)
            f.write(b"\xff\xff\xff\xff")

    def mkdir(self, folder):
        self._first_free_next()
        self._run("mmd", "-i", str(self.path), "::/" + folder)

    def copy(self, card_path, data, when=(2024, 5, 1, 12, 30, 10)):
        """Write data as card_path, with the modification time when (UTC)."""
        self._first_free_next()
        source = self.path.with_name("source.bin")
        source.write_bytes(data)
        stamp = calendar.timegm(tuple(when) + (0, 0, 0))
        os.utime(str(source), (stamp, stamp))
        self._run("mcopy", "-m", "-i", str(self.path), str(source), "::/" + card_path)
        source.unlink()

    def delete(self, card_path):
        self._run("mdel", "-i", str(self.path), "::/" + card_path)

    def image(self):
        return self.path.read_bytes()


class ExfatCard:
    """An exFAT card image: mkfs.exfat makes it (a quick format, again by format()),
    and a small writer here puts folders and files in, as a camera does: each one
    in one run of clusters (NoFatChain), its entry set in its folder's cluster."""

    FIRST_CLUSTER = 64              # past what mkfs.exfat uses (bitmap, up-case, root)

    def __init__(self, path, size_mb=64, cluster=4096):
        self.path = Path(path)
        with open(str(self.path), "wb") as f:
            f.truncate(size_mb << 20)
        self.cluster_size = cluster
        self.format()

    def format(self):
        subprocess.run(["mkfs.exfat", "-c", str(self.cluster_size), "-L", "EOS_DIGITAL",
                        str(self.path)], check=True, capture_output=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        boot = self.path.read_bytes()[:512]
        self.heap = int.from_bytes(boot[88:92], "little") * 512
        self.root = int.from_bytes(boot[96:100], "little")
        self.folders = {"": self.root}
        self.sets = {}                  # card path -> offset of its entry set
        self.next_cluster = self.FIRST_CLUSTER

    def offset_of(self, cluster):
        return self.heap + (cluster - 2) * self.cluster_size

    def _write(self, at, data):
        with open(str(self.path), "r+b") as f:
            f.seek(at)
            f.write(data)

    def _add_set(self, folder, entries, path):
        """Write entries into the first free slots of the folder's cluster."""
        at = self.offset_of(self.folders[folder])
        cluster = self.path.read_bytes()[at:at + self.cluster_size]
        slot = next(pos for pos in range(0, self.cluster_size, 32)
                    if cluster[pos] == 0 and pos + len(entries) <= self.cluster_size)
        self._write(at + slot, entries)
        self.sets[path] = (at + slot, len(entries))

    def _allocate(self, size):
        first = self.next_cluster
        self.next_cluster += max(1, -(-size // self.cluster_size))
        return first

    def mkdir(self, path, when=(2024, 5, 1, 12, 0, 0)):
        folder, _, name = path.rpartition("/")
        cluster = self._allocate(self.cluster_size)
        self._write(self.offset_of(cluster), bytes(self.cluster_size))
        self._add_set(folder, exfat_entry_set(name, cluster, self.cluster_size, when=when,
                                              attributes=0x10), path)
        self.folders[path] = cluster

    def copy(self, path, data, when=(2024, 5, 1, 12, 30, 10)):
        folder, _, name = path.rpartition("/")
        cluster = self._allocate(len(data))
        self._write(self.offset_of(cluster), data)
        self._add_set(folder, exfat_entry_set(name, cluster, len(data), when=when), path)
        return self.offset_of(cluster)

    def copy_in_pieces(self, path, data, clusters, when=(2024, 5, 1, 12, 30, 10)):
        """Write data into the given clusters, in that order, linked by the FAT."""
        boot = self.path.read_bytes()[:512]
        fat = int.from_bytes(boot[80:84], "little") * 512
        for index, cluster in enumerate(clusters):
            chunk = data[index * self.cluster_size:(index + 1) * self.cluster_size]
            self._write(self.offset_of(cluster), chunk)
            link = clusters[index + 1] if index + 1 < len(clusters) else 0xFFFFFFFF
            self._write(fat + 4 * cluster, link.to_bytes(4, "little"))
        folder, _, name = path.rpartition("/")
        self._add_set(folder, exfat_entry_set(name, clusters[0], len(data), contiguous=False,
                                              when=when), path)
        return self.offset_of(clusters[0])

    def delete(self, path):
        at, length = self.sets.pop(path)
        entries = bytearray(self.path.read_bytes()[at:at + length])
        for pos in range(0, length, 32):
            entries[pos] &= 0x7F
        self._write(at, bytes(entries))


def padded(data, to=4096):
    """data and filler up to the next multiple of to: the next file starts on a cluster."""
    return data + noise(-len(data) % to, seed=len(data))


def resume_card(path, cr3):
    """A card with a file of every fate, in the order a resumed run meets them: JPEGs,
    whole CR3s, a 3GP, a CR3 cut short with a whole JPEG, a MOV, an MP4 written in
    two pieces (its damaged first one waits for the end of the scan to be put back
    together) and a CR3 broken in its header over the files after it, a thumbnail
    taken out of each broken CR3, and a CR3 the dump's end cuts. Returns path."""
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    movie = corpus_file("gopro_karma.mp4")
    parts = [4096, padded(jpeg), padded(cr3), padded(corpus_file("mei_sample.3gp")),
             padded(cr3[:3000000]), padded(corpus_file("mei_Nikon_D70.jpg")),
             padded(corpus_file("exiv2_sample_640x360.mov")),
             padded(split(movie, 65536, noise(8192, seed=3))),
             padded(split(padded(cr3), 32768, padded(corpus_file("exiftool_Canon.jpg")))),
             padded(jpeg), padded(cr3), cr3[:4000000]]
    build_dump(path, *parts)
    return path


HOSTILE_MODEL = b"<script>alert(1)</scr> "          # as long as "Canon EOS DIGITAL REBEL"


def every_kind_card(path, cr3):
    """A whole CR3, a JPEG with an Exif thumbnail, a small JPEG whose camera model is
    markup, an MP4, a WAV, a JPEG cut by zeros, a HIF, MOV, AVI, CR2, DNG, CRW and 7z,
    and a CR3 the dump cuts short. Returns path."""
    small = corpus_file("exiftool_Canon.jpg").replace(b"Canon EOS DIGITAL REBEL", HOSTILE_MODEL)
    big = corpus_file("mei_Canon_PowerShot_G11.jpg")
    broken = big[:200000] + bytes(300000) + big[500000:]
    parts = [cr3, big, small, corpus_file("gopro_karma.mp4"),
             corpus_file("exiv2_Free_Test_Data_500KB_WAV.wav"), broken,
             corpus_file("exiv2_Canon.HIF"), corpus_file("exiv2_sample_640x360.mov"),
             corpus_file("mei_100_0306.AVI"), corpus_file("exiftool_CanonRaw.cr2"),
             corpus_file("exiftool_DNG.dng"),
             corpus_file("imagemeta_CRW.CRW"), corpus_file("filetype_fixture.7z")]
    layout = [4096]
    for part in parts:
        layout += [part, -len(part) % 512 + 4096]
    layout += [cr3[:1 << 20]]
    build_dump(path, *layout)
    return path
