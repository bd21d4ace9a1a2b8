"""The pieces of a split file, found from its own marks: the pure functions of the
section "Putting a split file back together", over bytes built here."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recovercr3 as r
from dumpkit import corpus_file, noise

CLUSTER = 4096


class Bytes:
    """A dump held in memory: what find_pieces reads through."""

    def __init__(self, data):
        self.data = data
        self.size = len(data)

    def read(self, offset, size):
        return self.data[offset:offset + size]


def tagged(at, tag):
    """A mark that holds where the 8 bytes tag lie."""
    return r.Mark(at, len(tag), lambda data: data == tag)


def file_with_tags(size, every):
    """A file of noise with a distinct 8-byte tag every `every` bytes, and its marks."""
    data = bytearray(noise(size, seed=5))
    marks = []
    for at in range(0, size - 8, every):
        tag = b"TAG%05d" % (at // every)
        data[at:at + 8] = tag
        marks.append(tagged(at, tag))
    return bytes(data), marks


def test_pieces_are_found_where_the_marks_hold_again_pinned_by_a_file_start():
    data, marks = file_with_tags(40 * CLUSTER, 1000)
    gap = noise(3 * CLUSTER, seed=8)
    dump = data[:10 * CLUSTER] + gap + data[10 * CLUSTER:]
    known = r.Known([], [10 * CLUSTER])                 # a file begins in the gap
    pieces = r.find_pieces(Bytes(dump), 0, len(data), 0, marks, (CLUSTER, 0), known,
                           r.Budget(1 << 30))
    assert pieces == [(0, 10 * CLUSTER), (13 * CLUSTER, 30 * CLUSTER)]


def test_a_split_nothing_pins_is_not_guessed():
    data, marks = file_with_tags(40 * CLUSTER, 3 * CLUSTER)    # marks far apart
    dump = data[:10 * CLUSTER] + noise(2 * CLUSTER, seed=8) + data[10 * CLUSTER:]
    with pytest.raises(r.Unproven, match="split somewhere between"):
        r.find_pieces(Bytes(dump), 0, len(data), 0, marks, (CLUSTER, 0), r.Known([], []),
                      r.Budget(1 << 30))


def test_the_rest_is_never_taken_from_a_complete_file():
    data, marks = file_with_tags(20 * CLUSTER, 1000)
    dump = data[:5 * CLUSTER] + bytes(CLUSTER) + data[5 * CLUSTER:]
    known = r.Known([(6 * CLUSTER, 26 * CLUSTER)], [])   # a complete file lies there
    with pytest.raises(r.Unproven):
        r.find_pieces(Bytes(dump), 0, len(data), 0, marks, (CLUSTER, 0), known,
                      r.Budget(1 << 30))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.tuples(st.integers(0, 3000), st.binary(
    min_size=1, max_size=8)), max_size=12), st.integers(0, 3000))
def test_random_marks_over_random_bytes_never_crash(dump, spots, size):
    marks = sorted((tagged(at, tag) for at, tag in spots), key=lambda mark: mark.at)
    try:
        pieces = r.find_pieces(Bytes(dump), 0, size, 0, marks, (512, 0), r.Known([], []),
                               r.Budget(1 << 24))
    except r.Unproven:
        return
    assert sum(length for _, length in pieces) == size


def test_known_files_answer_where_they_lie_and_begin():
    known = r.Known([(100, 200), (150, 300), (500, 600)], [50, 700])
    assert known.taken_end(0, 100) is None and known.taken_end(0, 101) == 300
    assert known.taken_end(300, 500) is None and known.taken_end(599, 650) == 600
    assert known.next_taken(301) == 500 and known.next_taken(601) == float("inf")
    assert known.begins(50) and known.begins(500) and not known.begins(150)


def test_the_cluster_size_is_what_the_files_starts_share():
    base = 5251072
    starts = [base + n * 32768 for n in (0, 3, 7, 8, 12, 20, 33, 34)]
    assert r.shared_grid(starts) == r.Geometry(32768, base % 32768)
    assert r.shared_grid(starts[:7]) == r.Geometry()           # too few to tell
    assert r.shared_grid(starts + [base + 100]) == r.Geometry()  # off every grid


@given(st.binary(max_size=300).map(lambda b: b.replace(b"\xff", b"\xff\x00", 3)))
def test_unstuffed_bytes_map_back_to_where_they_were_written(raw):
    stream = r.unstuff(raw)
    for index, byte in enumerate(stream.data):
        assert raw[stream.raw_index(index)] == byte


def test_decoding_goes_on_from_the_mcu_a_split_cuts():
    # Decoded from the start, or from the MCU that holds byte 200000 on: the same MCUs.
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    scan = r.baseline_scan(jpeg, r.walk_jpeg(jpeg, 0, len(jpeg)))
    start, end = scan.data
    whole = r.decode_from(jpeg[start:end], scan, 0, scan.mcus)
    assert (whole.mcus, whole.problem) == (scan.mcus, None)
    stream = r.unstuff(jpeg[start:200000])
    head = r.decode_mcus(stream.data, scan.mcus, scan.blocks)
    resume = start + stream.raw_index(head.bits // 8)
    rest = r.decode_from(jpeg[resume:end], scan, head.bits % 8, scan.mcus - head.mcus)
    assert (head.mcus + rest.mcus, rest.problem) == (scan.mcus, None)


def test_a_file_is_laid_over_the_free_clusters_past_the_known_files():
    # Known files at clusters 3-4 and 7 (its last cluster part-filled): a file of
    # 6.5 clusters from cluster 0 takes 0-2, 5-6 and 8-9.
    known = r.Known([(3 * CLUSTER, 5 * CLUSTER), (7 * CLUSTER, 7 * CLUSTER + 100)], [])
    assert r.free_runs(known, 0, 6 * CLUSTER + 2048, CLUSTER, 100 * CLUSTER) == [
        (0, 3 * CLUSTER), (5 * CLUSTER, 2 * CLUSTER), (8 * CLUSTER, CLUSTER + 2048)]
    assert r.free_runs(known, 0, 6 * CLUSTER, CLUSTER, 8 * CLUSTER) is None   # past the end


def test_a_jpeg_or_blank_cluster_bounds_a_split_from_both_ends():
    # The file's first piece is clusters 0-9 (noise, like raw data); a JPEG's coded
    # data (each FF followed by 00) lies at cluster 10, and a blank cluster right
    # before its next piece: of the splits 4..14 (in clusters) only 10 is left.
    coded = (b"\x12\xff\x00\x34" * 1024)[:CLUSTER]
    dump = noise(10 * CLUSTER, seed=3) + coded + noise(3 * CLUSTER, seed=4) + bytes(CLUSTER) \
        + noise(20 * CLUSTER, seed=5)
    gap = 5 * CLUSTER                   # the next piece begins at cluster 15
    splits = [at * CLUSTER for at in range(4, 15)]
    assert r.clear_of_foreign(Bytes(dump), splits, 0, gap, CLUSTER, r.Budget(1 << 30)) == [
        10 * CLUSTER]


def test_a_guess_takes_the_split_an_old_folder_entry_says_a_file_began_at():
    known = r.Known([], [], entries=[12 * CLUSTER])
    dump = noise(40 * CLUSTER, seed=6)
    splits = [at * CLUSTER for at in range(4, 15)]
    assert r.likely_split(Bytes(dump), splits, [], 0, 5 * CLUSTER, CLUSTER, known) \
        == 12 * CLUSTER
    assert r.likely_split(Bytes(dump), splits, [], 0, 5 * CLUSTER, CLUSTER,
                          r.Known([], [])) == 4 * CLUSTER          # nothing says: the first


def test_a_search_is_charged_for_the_places_it_looks_at():
    # 32 KiB clusters: 64 MiB searched, 2,048 places, charged as 8 MiB
    mark = tagged(0, b"NOTHERE!")
    for step, charged in ((CLUSTER, 64 << 20), (8 * CLUSTER, 8 << 20)):
        budget = r.Budget(1 << 40)
        r.grid_search(Bytes(bytes(64 << 20)), 0, step, 64 << 20, mark, r.Known([], []), budget)
        assert (1 << 40) - budget.left == charged


def test_an_empty_extent_is_no_file_and_a_gap_past_the_dump_is_not_explained():
    # An extent of 0 bytes (a HEIF whose unchecked tail begins at its first byte)
    # once made gap_explained stop short of its next cluster forever.
    known = r.Known([(8 * CLUSTER, 8 * CLUSTER)], [])
    assert known.next_taken(0) == float("inf") and known.taken_end(0, 20 * CLUSTER) is None
    dump = Bytes(bytes(10 * CLUSTER))
    assert r.gap_explained(dump, 0, 10 * CLUSTER, CLUSTER, known)            # all blank
    assert not r.gap_explained(dump, 0, 12 * CLUSTER, CLUSTER, known)    # past its end


def test_a_cr3s_checks_read_its_metadata_records_to_the_last_one(eos_r_cr3):
    # the CTMD sample ends the CR3 (its records, each one's size leading to the next,
    # are checked to its end): a split inside it is seen, so the bytes no check
    # reads are the last record's alone (was the whole sample: bench formatted seed
    # 13's CR3s put together were called not checked over their last 4,107 bytes)
    carved = r.carve_isobmff(eos_r_cr3, 0, len(eos_r_cr3), r.StopAfterMdat(), r.ALL_TYPES)
    tracks = r.IsoFile(eos_r_cr3, 0, carved.size, carved.boxes,
                       r.read_ftyp(eos_r_cr3, 0, carved.size)).tracks()
    (offset, size), = [next(track.samples()) for track in tracks
                       if track.entry == r.CANON_METADATA_ENTRY]
    last = r.ctmd_record_starts(eos_r_cr3, offset, size)[-1]
    assert carved.status == "complete" and offset + size == carved.size
    assert len(r.ctmd_record_starts(eos_r_cr3, offset, size)) > 1
    assert r.last_checkpoint(eos_r_cr3, carved) == last


def test_a_file_put_together_is_damaged_where_its_checks_leave_more_than_a_cluster():
    # bench formatted seed 13 (32 KiB): a movie put together around a picture was
    # complete and wrong, a third piece hiding in the audio its checks do not read
    again = r.Carved(0, 100000, "mov", "mov", "complete", "reassembled from 2 pieces", [])
    assert r.tail_checked(again, r.MIN_CARD_CLUSTER) is again
    assert r.tail_checked(again, r.MIN_CARD_CLUSTER + 1)[4:6] == (
        "damaged", "reassembled from 2 pieces, but its last 4097 bytes are not checked: "
        "another piece may begin in them")
