"""Hostile dumps: small inputs whose tables declare far more than they hold.

Each builder returns the bytes of a dump of about `mb` megabytes (at least). They
are shared by tests/test_hostile.py (small, under a memory cap) and by
bench/hostile.py (larger, timed). None needs the corpus.
"""

import lzma
import struct
import zlib

from dumpkit import box, exfat_entry_set, ftyp, noise

MB = 1 << 20
SECTOR = 512


def fullbox(name, payload, version=0, flags=0):
    return box(name, struct.pack(">I", (version << 24) | flags) + payload)


def sample_table(entry, sample_size, count, chunk_offset, per_chunk=None):
    """An stbl: one sample entry, stsz (constant size or count zeros), stsc, co64."""
    stsd = fullbox(b"stsd", struct.pack(">I", 1) + box(entry, bytes(8)))
    if sample_size:
        stsz = fullbox(b"stsz", struct.pack(">II", sample_size, count))
    else:
        stsz = fullbox(b"stsz", struct.pack(">II", 0, count) + bytes(4 * count))
    stsc = fullbox(b"stsc", struct.pack(">IIII", 1, 1, per_chunk or count, 1))
    co64 = fullbox(b"co64", struct.pack(">IQ", 1, chunk_offset))
    return box(b"stbl", stsd + stsz + stsc + co64)


def movie(brand, stbl, mdat_payload):
    """ftyp + moov(trak/mdia/minf/stbl) + mdat, the chunk offset pointing into mdat."""
    head = ftyp(brand, brand)
    trak = box(b"trak", box(b"mdia", box(b"minf", stbl)))
    return head + box(b"moov", trak) + box(b"mdat", mdat_payload)


def cr3_declaring_4g_samples(mb=1):
    """A CR3 whose CTMD track declares 2^32-1 samples of 6 bytes, and whose mdat is
    full of valid 6-byte CTMD records: every sample checks out, and there is no end."""
    records = struct.pack("<IH", 6, 1) * (mb * MB // 6)
    draft = movie(b"crx ", sample_table(b"CTMD", 6, 0xFFFFFFFF, 0), records)
    mdat_body = len(draft) - len(records)
    return movie(b"crx ", sample_table(b"CTMD", 6, 0xFFFFFFFF, mdat_body), records)


def heif_billion_extents(mb=1):
    """An iloc whose field widths are all zero: 65535 items of 65535 empty extents."""
    items = 65535
    body = struct.pack(">BBH", 0, 0, items)             # widths 0, base/index 0, count
    body += struct.pack(">HHH", 1, 0, 65535) * items    # id, data reference, extents
    iloc = fullbox(b"iloc", body)
    meta = fullbox(b"meta", fullbox(b"hdlr", bytes(4) + b"pict" + bytes(13)) + iloc)
    data = ftyp(b"heic", b"mif1", b"heic") + meta + box(b"mdat", noise(16))
    return data + noise(max(0, mb * MB - len(data)))


def tiff_header(entries, next_ifd=0):
    """A little-endian TIFF header and IFD0 at 8 with entries [(tag, type, count, value)]."""
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHII", tag, kind, count, value)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", next_ifd)


def tiff_many_subifds(mb=8):
    """A TIFF whose SubIFDs tag lists millions of pointers (to one IFD)."""
    count = mb * MB // 4
    table_at = 8 + 2 + 3 * 12 + 4
    strip_at = table_at + 4 * count
    head = tiff_header([(0x0111, 4, 1, strip_at), (0x0117, 4, 1, 16),
                        (0x014A, 4, count, table_at)])
    return head + struct.pack("<I", 8) * count + noise(16)


def tiff_ten_million_strips(mb=80):
    """A TIFF of millions of one-byte strips (10 M at 80 MB)."""
    count = mb * MB // 8
    offsets_at = 8 + 2 + 2 * 12 + 4
    counts_at = offsets_at + 4 * count
    data_at = counts_at + 4 * count
    head = tiff_header([(0x0111, 4, count, offsets_at), (0x0117, 4, count, counts_at)])
    return head + struct.pack("<I", data_at) * count + struct.pack("<I", 1) * count + b"\0"


def crw_runs_of_0a30(mb=4):
    """A CRW header followed by runs of the 0x300a type code its table search looks for."""
    return b"II\x1a\0\0\0HEAPCCDR" + bytes(12) + b"\x0a\x30" * (mb * MB // 2)


def dense_ftyp(mb=1):
    """ftyp boxes back to back: every one starts a candidate whose walk meets the next."""
    one = ftyp(b"isom", b"isom")
    return one * (mb * MB // len(one))


def tiny_boxes_after_mdat(mb=8):
    """A movie followed by 8-byte free boxes to the end."""
    head = movie(b"isom", sample_table(b"avc1", 16, 1, 0), noise(64))
    return head + box(b"free", b"") * (mb * MB // 8)


def fragments_after_mdat(mb=8):
    """A movie followed by empty moof/mdat pairs."""
    head = movie(b"isom", sample_table(b"avc1", 16, 1, 0), noise(64))
    return head + (box(b"moof", b"") + box(b"mdat", b"")) * (mb * MB // 16)


def stsz_of_16m_entries(mb=64):
    """A movie whose stsz really holds 2^24 sizes (64 MB of table)."""
    count = min(1 << 24, mb * MB // 4)
    return movie(b"isom", sample_table(b"avc1", 0, count, 0, per_chunk=1), noise(64))


def riff_of_empty_junk(mb=8):
    """An AVI whose first LIST is followed by millions of empty JUNK chunks."""
    chunks = b"LIST" + struct.pack("<I", 4) + b"hdrl"
    chunks += (b"JUNK" + bytes(4)) * (mb * MB // 8)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"AVI " + chunks


def jpeg_of_empty_app0(mb=4):
    """A JPEG whose header is millions of empty APP0 segments, and no image."""
    return b"\xff\xd8" + b"\xff\xe0\x00\x02" * (mb * MB // 4)


def truncated_files_everywhere(mb=2):
    """A sector-aligned movie start in every sector, each declaring a huge mdat."""
    one = ftyp(b"isom", b"isom") + struct.pack(">I4sQ", 1, b"mdat", 1 << 40)
    return (one + noise(SECTOR - len(one))) * (mb * MB // SECTOR)


def jpegs_everywhere(mb=64):
    """A JPEG start (and broken header) in every sector: dense candidates everywhere."""
    one = b"\xff\xd8\xff\xe0\x00\x10JFIF\0" + bytes(5) + b"\xff\x00"
    return (one + noise(SECTOR - len(one))) * (mb * MB // SECTOR)


def lzma_bomb(mb=1):
    """A 7z cut before its end header whose first stream inflates to 256 MiB of zeros
    (some 4,000 times its packed size: the salvage stops at 64 times)."""
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 26, "lc": 3, "lp": 0, "pb": 2}]
    encoder = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=filters)
    zeros = bytes(16 * MB)
    stream = b"".join(encoder.compress(zeros) for _ in range(16)) + encoder.flush()
    fields = struct.pack("<QQI", len(stream) + 1000, 100, 0)          # the end header is lost
    start = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(fields)) + fields
    data = start + stream
    return data + noise(max(0, mb * MB - len(data)))


def many_cut_7z(mb=4):
    """A 7z cut before its end header (its stream: 64 KiB of text) in every 4 KiB:
    thousands of archives, each one salvaged."""
    text = b"".join(b"line %d of a text the camera never wrote\n" % i for i in range(1600))
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16, "lc": 3, "lp": 0, "pb": 2}]
    stream = lzma.compress(text[:1 << 16], format=lzma.FORMAT_RAW, filters=filters)
    fields = struct.pack("<QQI", len(stream) + 1000, 100, 0)          # the end header is lost
    start = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(fields)) + fields
    one = start + stream
    one += noise(-len(one) % 4096)
    return one * (mb * MB // len(one))


def fat32_boot(cluster_sectors=1, reserved=32, fat_sectors=64, total=1 << 22):
    """A FAT32 boot sector (512-byte sectors), root in cluster 2."""
    sector = bytearray(SECTOR)
    sector[3:11] = b"MSWIN4.1"
    sector[11:16] = struct.pack("<HBH", SECTOR, cluster_sectors, reserved)
    sector[16] = 1
    sector[32:48] = struct.pack("<IIHHI", total, fat_sectors, 0, 0, 2)
    sector[82:90], sector[510:512] = b"FAT32   ", b"\x55\xaa"
    return bytes(sector)


def dir_entry(name, attributes, cluster, size=0):
    return struct.pack("<11sBBBHHHHHHHI", name, attributes, 0, 0, 0, 0, 0, cluster >> 16, 0,
                       0, cluster & 0xFFFF, size)


def folders_everywhere(mb=4):
    """A FAT32 card whose every data sector is a folder whose parent is the next one,
    naming the next as its child, with a FAT in which every cluster links to the
    next: loops of folders, chains as long as the card, for every folder."""
    reserved, fat_sectors = 32, 64
    clusters = (mb * MB) // SECTOR
    fat = b"\xf8\xff\xff\x0f\xff\xff\xff\x0f" + b"".join(
        struct.pack("<I", number + 1) for number in range(2, fat_sectors * SECTOR // 4))
    data = b"".join(
        (dir_entry(b".          ", 0x10, number) + dir_entry(b"..         ", 0x10, number + 1)
         + dir_entry(b"LOOP       ", 0x10, number + 1)
         + dir_entry(b"IMG_0001JPG", 0x20, number, 1 << 20)).ljust(SECTOR, b"\0")
        for number in range(2, 2 + clusters))
    return fat32_boot(1, reserved, fat_sectors) + bytes((reserved - 1) * SECTOR) + fat + data


def exfat_sets_everywhere(mb=4):
    """Valid exFAT entry sets back to back, each naming another folder, after an
    exFAT boot sector: a sieve that keeps them all would hold millions."""
    boot = bytearray(SECTOR)
    boot[3:11], boot[510:512] = b"EXFAT   ", b"\x55\xaa"
    boot[80:100] = struct.pack("<IIIII", 24, 8, 32, 1 << 20, 2)
    boot[108:110] = bytes([9, 0])
    sets = b"".join(exfat_entry_set("F%d" % n, 3 + n, 4096, attributes=0x10 if n % 2 else 0x20)
                    for n in range(256))
    body = sets * (mb * MB // len(sets) + 1)
    return bytes(boot) + bytes(31 * SECTOR) + body[:mb * MB]


def boot_marks_everywhere(mb=4):
    """A FAT32 boot sector in every sector, each pointing its FAT at another one."""
    return fat32_boot(8, 7, 1) * (mb * MB // SECTOR)


def ts_packet(pid, counter, start=False, packet=188):
    head = struct.pack(">BHB", 0x47, (0x4000 if start else 0) | pid, 0x10 | counter & 0xF)
    return (bytes(4) if packet == 192 else b"") + head + b"\0" + bytes(183)


def a_table_packet_every_packet(mb=4):
    """An M2TS whose every packet is a PAT in step: a table on every third sector."""
    return b"".join(ts_packet(0, n, True, 192) for n in range(mb * MB // 192 + 1))


def a_table_packet_every_sector_jumping(mb=4):
    """A stream start on every sector, each jumping the counter the one before left."""
    sector = b"".join(ts_packet(0, n * 5, n == 0) for n in range(2)) + bytes(SECTOR - 376)
    return sector * (mb * MB // SECTOR)


def mxf_of_tiny_klvs(mb=4):
    """A header partition pack in every sector, its KLVs 17 bytes each, running over
    the next ones."""
    key = bytes.fromhex("060e2b34020501010d01020101020400")
    pack = key + bytes([0x83]) + (88).to_bytes(3, "big") + bytes(88)
    tiny = bytes.fromhex("060e2b34010101020301021001000000") + b"\0"
    sector = pack + tiny * ((SECTOR - len(pack)) // len(tiny))
    sector += bytes(SECTOR - len(sector))
    return sector * (mb * MB // SECTOR)


def raf_x3f_headers_everywhere(mb=4):
    """RAF headers pointing 1 GiB out and X3F headers with no directory, every sector."""
    raf = bytearray(b"FUJIFILMCCD-RAW ".ljust(SECTOR, b"\0"))
    struct.pack_into(">6I", raf, 84, 148, 1 << 29, 160, 1 << 29, 200, 1 << 29)
    x3f = b"FOVb".ljust(SECTOR, b"\0")
    return (bytes(raf) + x3f) * (mb * MB // (2 * SECTOR))


CASES = {
    "cr3 declaring 2^32-1 samples": cr3_declaring_4g_samples,
    "iloc with zero widths, 4G extents": heif_billion_extents,
    "TIFF SubIFDs of millions": tiff_many_subifds,
    "TIFF of 10M strips": tiff_ten_million_strips,
    "CRW then runs of 0a 30": crw_runs_of_0a30,
    "dense back-to-back ftyp": dense_ftyp,
    "8-byte free boxes after mdat": tiny_boxes_after_mdat,
    "moof/mdat pairs after mdat": fragments_after_mdat,
    "stsz of 2^24 entries": stsz_of_16m_entries,
    "RIFF of empty JUNK chunks": riff_of_empty_junk,
    "JPEG of empty APP0 segments": jpeg_of_empty_app0,
    "truncated files everywhere": truncated_files_everywhere,
    "a JPEG start in every sector": jpegs_everywhere,
    "LZMA bomb in a cut 7z": lzma_bomb,
    "a cut 7z in every 4 KiB": many_cut_7z,
    "a folder in every sector": folders_everywhere,
    "exFAT entry sets everywhere": exfat_sets_everywhere,
    "a boot sector in every sector": boot_marks_everywhere,
    "a PAT in every packet of an M2TS": a_table_packet_every_packet,
    "a jumping stream start in every sector": a_table_packet_every_sector_jumping,
    "MXF of 17-byte KLVs, a header in every sector": mxf_of_tiny_klvs,
    "RAF and X3F headers everywhere": raf_x3f_headers_everywhere,
}
