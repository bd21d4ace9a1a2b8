"""The two JPEG decoders: TurboJPEG through ctypes, where the system has it, and the
built-in one (decode_mcus), which stays the reference and the fallback.

A JPEG's data is whole when TurboJPEG decodes it without a warning, or, where it
refuses or cannot read it, when decode_mcus counts its MCUs exactly (mcu_problem).
Where a card splits a file - a JPEG cut, another file's clusters or zeros inside it,
its first piece run into another JPEG's data at a cluster boundary, its frame
declaring another MCU count - the two must agree: hypothesis builds such JPEGs from
real camera files (../shared/corpus, when there) and Pillow-made ones. Bytes of the
JPEG itself lost or changed in place are another matter: libjpeg's fast path reads a
code no table has as an end of block and drops coefficients past the 64th, so it may
decode whole what decode_mcus refuses (never the other way round); that is why a join
chosen among many is proven by decode_mcus alone (test_a_join_chosen_...).
"""

import contextlib
import io
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import recovercr3 as r
from conftest import CLI_PYTHON, SCRIPT, read_outcome
from dumpkit import build_dump, corpus_path, noise, padded

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402  (after the skip)

turbo = pytest.mark.skipif(not r.TURBOJPEG.available(), reason="no TurboJPEG library here "
                           "(Debian/Ubuntu: apt install libturbojpeg0): %s"
                           % r.TURBOJPEG.missing)

CAMERA_JPEGS = ["mei_Canon_EOS_5D.jpg", "mei_Canon_EOS_1000D.jpg", "mei_Nikon_D70.jpg",
                "mei_Canon_PowerShot_G11.jpg", "exiftool_Canon.jpg"]


def pillow_jpeg(size=(480, 320), seed=0, **options):
    """A noisy picture saved as a baseline JPEG (compresses like a photo)."""
    im = Image.frombytes("RGB", size, noise(size[0] * size[1] * 3, seed=seed))
    out = io.BytesIO()
    im.resize((size[0] * 2, size[1] * 2)).resize(size).save(out, "JPEG", **options)
    return out.getvalue()


PILLOW_JPEGS = [pillow_jpeg(seed=1, quality=90),                       # 4:2:0
                pillow_jpeg(seed=2, quality=75, subsampling=0),        # 4:4:4
                pillow_jpeg(seed=3, quality=95, subsampling=1),        # 4:2:2
                pillow_jpeg(seed=4, quality=80, optimize=True),        # own Huffman tables
                pillow_jpeg((333, 251), seed=5, quality=85)]           # partial MCUs
POOL = PILLOW_JPEGS + [corpus_path(name).read_bytes() for name in CAMERA_JPEGS
                       if corpus_path(name).is_file()]


def data_range(data):
    """(start, end) of a whole JPEG's entropy-coded data."""
    return r.baseline_scan(data, r.walk_jpeg(data, 0, len(data))).data


DATA = [data_range(jpeg) for jpeg in POOL]


def inside(index, fraction):
    """An offset in the entropy-coded data of POOL[index]: what the mutations below
    touch (a header broken is no question for the decoders, but for the walk)."""
    start, end = DATA[index]
    return start + int(fraction * (end - start))


def verdicts(data):
    """(TurboJPEG whole, decode_mcus whole) of a JPEG that walks whole, or None for one
    that does not (no data decoding is asked of it)."""
    try:
        walk = r.walk_jpeg(data, 0, len(data))
        if walk.status != r.COMPLETE:
            return None
        scan = r.baseline_scan(data, walk)
        if scan is None or r.restart_problem(data, scan):
            return None
    except r.FormatError:
        return None
    return (r.TURBOJPEG.decodes_whole(data, *scan.jpeg),
            r.mcu_problem(data, scan._replace(jpeg=None)) is None)


@turbo
@pytest.mark.parametrize("index", range(len(POOL)))
def test_whole_jpegs_are_whole_to_both(index):
    assert verdicts(POOL[index]) == (True, True)


@turbo
@pytest.mark.parametrize("name", CAMERA_JPEGS)
def test_camera_jpegs_are_whole_to_both(name):
    path = corpus_path(name)
    if not path.is_file():
        pytest.skip("corpus file %s not available" % name)
    assert verdicts(path.read_bytes()) == (True, True)


def cut(data, at):
    return data[:at] + r.JPEG_EOI


def spliced(data, other, at, other_at):
    """data's first at bytes, then other's from other_at: a JPEG whose first piece
    runs into another one's data (its EOI ends both)."""
    return data[:at] + other[other_at:]


def on_grid(data, other, at, other_at, grid):
    """The same, at a cluster boundary of both, as a card's file system would split."""
    return spliced(data, other, at - at % grid, other_at - other_at % grid)


def frame_size_changed(data, rows):
    """The frame header declares rows more (or fewer) pixel rows: another MCU count."""
    sof = next(i for i in range(2, len(data) - 4) if data[i] == 0xFF and data[i + 1] in
               r.BASELINE_FRAMES)
    height = int.from_bytes(data[sof + 5:sof + 7], "big")
    return data[:sof + 5] + max(1, height + rows).to_bytes(2, "big") + data[sof + 7:]


def inserted(data, at, other):
    """other's bytes (a cluster of another file, zeros) inside data at at: a JPEG
    whose clusters the camera wrote around another file's."""
    return data[:at] + other + data[at:]


def lost(data, at, length):
    """length bytes of the data lost at at."""
    return data[:at] + data[at + length:]


def cluster_of(index, fraction, size):
    """size bytes of POOL[index]'s entropy-coded data, at a cluster boundary."""
    at = inside(index, fraction)
    at -= at % size
    return POOL[index][at:at + size]


CLUSTERS = st.sampled_from([512, 4096, 32768])
POOL_INDEX = st.integers(0, len(POOL) - 1)
JOINS = st.one_of(
    st.builds(lambda i, f: cut(POOL[i], inside(i, f)), POOL_INDEX, st.floats(0, 1)),
    st.builds(lambda i, j, f, g, grid: on_grid(POOL[i], POOL[j], inside(i, f), inside(j, g),
                                               grid),
              POOL_INDEX, POOL_INDEX, st.floats(0, 1), st.floats(0, 1), CLUSTERS),
    st.builds(lambda i, j, f, g, size: inserted(POOL[i], inside(i, f) - inside(i, f) % size,
                                                cluster_of(j, g, size)),
              POOL_INDEX, POOL_INDEX, st.floats(0.05, 1), st.floats(0, 0.9), CLUSTERS),
    st.builds(lambda i, f, size: inserted(POOL[i], inside(i, f) - inside(i, f) % size,
                                          bytes(size)),
              POOL_INDEX, st.floats(0.05, 1), CLUSTERS),
    st.builds(lambda i, rows: frame_size_changed(POOL[i], rows),
              POOL_INDEX, st.sampled_from([-16, -8, -1, 1, 8, 16])))


@turbo
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JOINS)
def test_where_a_join_can_hide_the_decoders_agree(data):
    found = verdicts(data)
    if found is not None:
        turbo_whole, builtin_whole = found
        assert turbo_whole == builtin_whole


def changed(data, at, change):
    data = bytearray(data)
    data[at] ^= change
    return bytes(data)


LOSSES = st.one_of(
    st.builds(lambda i, f, n: lost(POOL[i], inside(i, f), n),
              POOL_INDEX, st.floats(0, 0.99), st.sampled_from([1, 7, 512, 4096])),
    st.builds(lambda i, f, change: changed(POOL[i], inside(i, f), change),
              POOL_INDEX, st.floats(0, 0.99), st.integers(1, 255)))


@turbo
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LOSSES)
def test_bytes_lost_or_changed_in_place_pass_turbojpeg_only_where_they_may(data):
    # decode_mcus refuses a code no table has and a run past the 64th coefficient;
    # libjpeg-turbo's fast path reads the first as an end of block and drops the
    # second, so it may decode whole what decode_mcus refuses - never the other way
    # round; and mcu_problem calls such a JPEG whole exactly where TurboJPEG does.
    found = verdicts(data)
    if found is not None:
        turbo_whole, builtin_whole = found
        assert turbo_whole or not builtin_whole
        scan = r.baseline_scan(data, r.walk_jpeg(data, 0, len(data)))
        assert (r.mcu_problem(data, scan) is None) == turbo_whole
        assert (r.mcu_problem(data, scan, strict=True) is None) == builtin_whole


# Found by the test above (hypothesis, seed-independent): a JPEG with 7 bytes of its
# data lost that libjpeg-turbo decodes whole, and decode_mcus does not.
@turbo
def test_a_join_chosen_among_many_is_proven_by_the_built_in_decoder_alone():
    data = lost(POOL[0], inside(0, 0.0078125), 7)
    if verdicts(data) != (True, False):
        pytest.skip("this machine's Pillow or libjpeg-turbo makes another case of it")
    again = r.carve_again(data, "jpg", r.Options(r.StopAfterMdat(), frozenset(["jpg"])))
    assert again.status == r.DAMAGED                            # carve_again: strict
    assert not r.jpeg_decodes(data, 0, len(data))
    scan = r.baseline_scan(data, r.walk_jpeg(data, 0, len(data)))
    assert r.mcu_problem(data, scan) is None                    # TurboJPEG's word
    assert r.mcu_problem(data, scan, strict=True) is not None


def run(dump, out, decoder):
    env = dict(os.environ, RECOVERCR3_TURBOJPEG=decoder)
    p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", str(dump), "-o", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    return p, read_outcome(p.returncode, p.stderr, out)


@turbo
def test_a_card_gives_the_same_files_and_verdicts_with_either_decoder(tmp_path):
    a, b = PILLOW_JPEGS[0], PILLOW_JPEGS[2]
    dump = tmp_path / "card.img"
    pad = 512 * 3
    build_dump(dump, pad, padded(a, 512), padded(cut(b, len(b) // 2), 512),
               padded(on_grid(a, b, len(a) // 2, len(b) // 3, 512), 512), padded(b, 512),
               padded(frame_size_changed(a, 16), 512), pad)
    p1, with_turbo = run(dump, tmp_path / "turbo", "")
    p2, builtin = run(dump, tmp_path / "builtin", "none")
    assert p1.returncode == p2.returncode == 0
    rows = [[(row["type"], row["offset"], row["status"], row["detail"], row["sha256"])
             for row in outcome.rows] for outcome in (with_turbo, builtin)]
    assert rows[0] == rows[1]
    assert [row[2] for row in rows[0]] == ["complete", "damaged", "damaged", "complete",
                                           "damaged"]
    logs = [(tmp_path / name / "recovercr3.log").read_text() for name in ("turbo", "builtin")]
    assert "=== JPEG data is decoded by TurboJPEG" in logs[0]
    assert ("=== JPEG data is decoded by the built-in decoder (RECOVERCR3_TURBOJPEG=none)"
            in logs[1])


def test_without_the_library_the_built_in_decoder_checks_alone(monkeypatch):
    monkeypatch.setenv("RECOVERCR3_TURBOJPEG", "/nowhere/libturbojpeg.so.0")
    decoder = r.TurboJpeg()
    assert not decoder.available()
    assert decoder.describe() == ("JPEG data is decoded by the built-in decoder "
                                  "(/nowhere/libturbojpeg.so.0 not found)")
    assert not decoder.decodes_whole(PILLOW_JPEGS[0], 0, len(PILLOW_JPEGS[0]))


def whole_problem(data, scan):
    """decode_mcus' word on the scan's data decoded whole, interval by interval (as
    mcu_problem did before it decoded a chunk at a time): the reference."""
    left = scan.mcus
    for first, end in r.intervals(data, *scan.data):
        count = min(left, scan.restart) if scan.restart else left
        coded = data[first:end].replace(r.STUFFED_FF, b"\xff")
        used, _, problem, _ = r.decode_mcus(coded, count, scan.blocks)
        if problem:
            return problem
        if coded[-(-used // 8):].strip(b"\xff"):
            return "%d bytes after the last MCU" % (len(coded) - used // 8)
        left -= count
    return "%d MCUs missing" % left if left else None


SMALL = st.integers(0, len(PILLOW_JPEGS) - 1)      # decoded in Python in a blink
SMALL_MUTATIONS = st.one_of(
    st.builds(lambda i: POOL[i], SMALL),
    st.builds(lambda i, f: cut(POOL[i], inside(i, f)), SMALL, st.floats(0, 1)),
    st.builds(lambda i, j, f, g, grid: on_grid(POOL[i], POOL[j], inside(i, f), inside(j, g),
                                               grid),
              SMALL, SMALL, st.floats(0, 1), st.floats(0, 1), CLUSTERS),
    st.builds(lambda i, f, size: inserted(POOL[i], inside(i, f), bytes(size)),
              SMALL, st.floats(0.05, 1), st.sampled_from([7, 512])),
    st.builds(lambda i, f, n: lost(POOL[i], inside(i, f), n),
              SMALL, st.floats(0, 0.99), st.sampled_from([1, 7, 512])),
    st.builds(lambda i, f, change: changed(POOL[i], inside(i, f), change),
              SMALL, st.floats(0, 0.99), st.integers(1, 255)),
    st.builds(lambda i, rows: frame_size_changed(POOL[i], rows),
              SMALL, st.sampled_from([-16, -1, 1, 16])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SMALL_MUTATIONS, st.integers(16, 4096))
def test_decoding_a_chunk_at_a_time_says_what_decoding_it_whole_says(data, chunk):
    # The built-in decoder holds one chunk of a JPEG's data at a time (memory stays
    # flat whatever its size): each chunk goes on from the last whole MCU of the one
    # before. Every word it says - whole, the MCU where a code fails, the bytes after
    # the last MCU, the MCUs missing - is the one decoding the data whole says, for
    # chunks of any size (they end anywhere, in an FF 00 too).
    scan = scan_of(data)
    if scan is not None:
        with chunks_of(chunk):
            assert r.mcu_problem(data, scan, strict=True) == whole_problem(data, scan)


def scan_of(data):
    """The JpegScan of a (maybe broken) baseline JPEG, or None."""
    try:
        return r.baseline_scan(data, r.walk_jpeg(data, 0, len(data)))
    except r.FormatError:
        return None


@contextlib.contextmanager
def chunks_of(size):
    """Decode (and search) DECODE_CHUNK = size bytes at a time in the block."""
    real = r.DECODE_CHUNK
    r.DECODE_CHUNK = size
    try:
        yield
    finally:
        r.DECODE_CHUNK = real


@pytest.mark.parametrize("name", CAMERA_JPEGS[:2])
def test_a_camera_jpeg_cut_decodes_a_chunk_at_a_time_as_whole(monkeypatch, name):
    if not corpus_path(name).is_file():
        pytest.skip("%s is not in ../shared/corpus" % name)
    data = corpus_path(name).read_bytes()
    monkeypatch.setattr(r, "DECODE_CHUNK", 4093)
    start, end = data_range(data)
    for jpeg in (data, cut(data, (start + end) // 2), lost(data, (start + end) // 3, 7)):
        scan = r.baseline_scan(jpeg, r.walk_jpeg(jpeg, 0, len(jpeg)))
        assert r.mcu_problem(jpeg, scan, strict=True) == whole_problem(jpeg, scan)


def test_a_jpeg_of_restart_intervals_decodes_a_chunk_at_a_time_too(monkeypatch):
    jpeg = pillow_jpeg(seed=6, quality=85)
    with_restarts = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(with_restarts, "JPEG", quality=85, restart_marker_blocks=3)
    data = with_restarts.getvalue()
    scan = r.baseline_scan(data, r.walk_jpeg(data, 0, len(data)))
    assert scan.restart and whole_problem(data, scan) is None
    monkeypatch.setattr(r, "DECODE_CHUNK", 100)
    assert r.mcu_problem(data, scan, strict=True) is None
    start, end = scan.data
    broken = data[:(start + end) // 2] + bytes(200) + data[(start + end) // 2 + 200:]
    assert r.mcu_problem(broken, scan, strict=True) == whole_problem(broken, scan) is not None


class InMemory:
    """A dump held in memory, as the reassembly reads one (read, size)."""

    def __init__(self, data):
        self.data, self.size = data, len(data)

    def read(self, offset, size):
        return self.data[offset:offset + size]


def decoded_whole(data, at, end, scan, skip, mcus):
    """What decode_coded says, from all of data[at:end] decoded in one go (as putting
    a JPEG together did before it read a chunk at a time): the reference."""
    coded = data[at:end]
    marker = r.DATA_MARKER.search(coded)
    cut = marker.start() if marker else len(coded)
    stream = r.unstuff(coded[:cut])
    d = r.decode_mcus(stream.data, mcus, scan.blocks, skip)
    return r.Coded(d.problem, d.mcus, at + stream.raw_index(d.bits // 8), d.bits % 8,
                   at + stream.raw_index(min(len(stream.data), d.stop // 8)),
                   d.problem is None and not stream.data[-(-d.bits // 8):].strip(b"\xff"),
                   at + cut if marker and d.problem is None else None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SMALL_MUTATIONS, st.integers(16, 4096), st.integers(0, 4000), st.floats(0, 1),
       st.floats(0, 1))
def test_a_jpeg_put_together_decodes_a_chunk_at_a_time_as_whole(data, chunk, tail, where,
                                                                 upto):
    # Putting a JPEG together decodes its rest from the dump, up to its first marker:
    # a chunk at a time (the rest may be tens of MB), with the same words and the
    # same places (where it fails, where its last whole MCU ends) as in one go; from
    # its first MCU, or from an MCU inside its data, and up to any end.
    scan = scan_of(data)
    if scan is None:
        return
    data += noise(tail, seed=tail)              # what follows it on the card
    start = scan.data[0]
    first = decoded_whole(data, start, len(data), scan, 0, scan.mcus)
    # go on from the end of a whole MCU, as a Resume does
    resume_at, skip, done = start, 0, 0
    if where > 0.5 and first.mcus > 2:
        part = decoded_whole(data, start, start + int((first.at - start) * where) + 1, scan,
                             0, scan.mcus)
        resume_at, skip, done = part.at, part.skip, part.mcus
    end = resume_at + int((len(data) - resume_at) * upto) + 1
    layout = r.Layout(InMemory(data), 0, r.Budget(1 << 40))
    with chunks_of(chunk):
        assert r.decode_coded(layout, resume_at, end, scan, skip, scan.mcus - done) == \
            decoded_whole(data, resume_at, end, scan, skip, scan.mcus - done)
