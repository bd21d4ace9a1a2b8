"""Movies cut before their moov was written (a dead battery, a pulled card): an mdat
alone, walked picture by picture with what a reference movie of the same camera says
of its coding, and a moov written for the pictures found, in repaired/.

No cut movie of a camera's is in the corpora: the cut ones here are whole movies (the
corpus's GoPro and iPhone ones, and ffmpeg's) with their moov taken out and their data
cut, so that the moov they had says exactly where each picture is, and the walk that
ignores it is held to it. ffmpeg makes the H.264 and HEVC movies with B pictures
(shown in another order than decoded)."""

import functools
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recovercr3 as r
from conftest import PROJECT, recover, run_cli
from dumpkit import build_dump, corpus_file, sha256

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


def parsed(data):
    carved = r.carve_isobmff(data, 0, len(data), r.StopAfterMdat(), r.ALL_TYPES)
    return carved, r.IsoFile(data, 0, carved.size, carved.boxes, r.read_ftyp(data, 0, len(data)))


def video(f):
    return next(track for track in f.tracks() if track.entry in r.NAL_SAMPLE_ENTRIES)


def reader(data):
    """read(offset, size) over data, as the dump gives its bytes."""
    return lambda offset, size: bytes(data[offset:offset + size])


def coding_of(data):
    """The VideoCoding a reference movie's video track gives, learnt from its samples."""
    return r.movie_reference(reader(data), 0, len(data)).coding


def walk(data, start, end, coding, most=10 ** 6):
    return r.walk_cut_movie(reader(data), start, end, coding, most)


PROOF = 16      # bytes of the next picture that hold its first units' headers
NO_PROOF = 6    # fewer than a length, a header and a byte: nothing to read


def whole_pictures(f, cut, zeros=False):
    """(the (offset, size) of the pictures of f's video track a walk of its data cut
    at cut gives: those wholly before it, but the last when what follows it does
    not prove it whole: nothing, or the next picture's start (its first units'
    headers), after other tracks' whole chunks, if any. Other bytes (another
    track's chunk, cut) may be the picture's own, run into old data: it is left
    out; and [that last one] where 6 to 15 bytes of the next picture may or may
    not hold enough of them, else []). zeros: the cut is followed by zeros (a
    card never written there), which prove the last whole picture whole."""
    samples = list(video(f).samples())
    whole = [(offset, size) for offset, size in samples if offset + size <= cut]
    if zeros:
        return whole, []
    after = whole[-1][0] + whole[-1][1] if whole else cut
    following = min([offset for offset, _ in samples if offset >= after] + [cut])
    if after < cut and cut - following < PROOF:
        last = whole.pop()
        return whole, [last] if cut - following >= NO_PROOF else []
    return whole, []


def held_to(pictures, truth):
    """pictures [(offset, size, key?)] are the truth (whole_pictures) gives."""
    whole, maybe = truth
    assert [(offset, size) for offset, size, _ in pictures] in (whole, whole + maybe)


def walked(data, reference, fraction):
    """(the pictures walked in data's mdat cut at fraction, those its moov lists
    wholly before the cut)."""
    carved, f = parsed(data)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    cut = mdat.body + int((mdat.end - mdat.body) * fraction)
    pictures = walk(data, mdat.body, cut, coding_of(reference)).pictures
    return pictures, whole_pictures(f, cut)


@pytest.mark.parametrize("fraction", [0.13, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("name", ["gopro_karma.mp4", "nomexif_meta.mov"])
def test_a_cut_mdats_pictures_are_where_its_moov_would_have_said(name, fraction):
    # the GoPro's pictures lie one a chunk among its sound, timecode and GPS chunks
    # (a gpmd chunk holds bytes that look like a slice's); the phone's after its sound
    movie = corpus_file(name)
    pictures, truth = walked(movie, movie, fraction)
    held_to(pictures, truth)
    assert not pictures or pictures[0][2]       # (the phone's first picture is 100 KB)


def test_a_walk_begins_at_a_key_picture_and_learns_the_headers_of_the_reference():
    gopro = corpus_file("gopro_karma.mp4")
    coding = coding_of(gopro)
    assert coding.lead == b"\x09" and coding.pps == frozenset([0])      # each begins with an AUD
    carved, f = parsed(gopro)
    samples = list(video(f).samples())
    keys = [index for index, (offset, size) in enumerate(samples)
            if walk(gopro, offset, offset + size, coding, 1).pictures]
    assert len(keys) == 46 and keys[0] == 0
    pictures = walk(gopro, samples[1][0], carved.size, coding, 3).pictures
    assert [(offset, size) for offset, size, _ in pictures] == samples[keys[1]:keys[1] + 3]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([1, 2, 4]), st.booleans())
def test_random_bytes_never_crash_the_walk(data, length_size, hevc):
    coding = r.VideoCoding(length_size, hevc, frozenset([0]))
    pictures = walk(data, 0, len(data), coding, 100).pictures
    assert all(0 <= offset and offset + size <= len(data) for offset, size, _ in pictures)


def ffmpeg_movie(path, seconds, codec, size="320x240", inband=False, sound="aac", keyint=25):
    """A movie ffmpeg makes: H.264 or HEVC with B pictures and AAC sound (or 16-bit
    PCM, in a MOV); inband, its SPS and PPS repeated before each key picture (as
    some cameras write); a key picture every keyint at most (H.264: exactly)."""
    options = {"h264": ["-c:v", "libx264", "-g", str(keyint), "-sc_threshold", "0", "-bf", "2"]
               + (["-x264-params", "repeat-headers=1"] if inband else []),
               "h264-slices": ["-c:v", "libx264", "-g", "25", "-bf", "2", "-x264-params",
                               "slices=4"],
               "hevc": ["-c:v", "libx265", "-x265-params", "log-level=error:bframes=3:keyint=25",
                        "-tag:v", "hvc1"]}[codec]
    made = subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                           "testsrc2=size=%s:rate=25:duration=%d" % (size, seconds), "-f", "lavfi",
                           "-i", "sine=frequency=440:sample_rate=48000:duration=%d" % seconds,
                           *options,
                           "-pix_fmt", "yuv420p", "-ac", "2"]
                          + (["-c:a", "aac", "-b:a", "64k"] if sound == "aac"
                             else ["-c:a", "pcm_s16le"]) + [str(path)],
                          capture_output=True)
    if made.returncode:
        pytest.skip("ffmpeg cannot make %s here: %s" % (codec, made.stderr[-200:]))
    return path.read_bytes()


def frames(path):
    """{time: md5} of every decoded picture of path's video, as ffmpeg gives them."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v",
                          "-fps_mode", "passthrough", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split(",") for line in out.splitlines() if not line.startswith("#")]
    return {int(row[2]): row[-1].strip() for row in rows}


def pcm(path):
    """The sound of path, decoded to 16-bit PCM."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f",
                           "s16le", "-"], capture_output=True, check=True).stdout


@needs_ffmpeg
@pytest.mark.parametrize("fraction", [0.2, 0.45, 0.6, 1.0])
@pytest.mark.parametrize("codec, sound", [("h264", "aac"), ("hevc", "aac"), ("h264", "pcm")])
def test_a_cut_movie_rebuilt_on_a_references_moov_plays_its_pictures(tmp_path, codec, sound,
                                                                      fraction):
    # a reference of the same settings (another movie of the camera), the cut one's
    # mdat walked, a moov written for its pictures: it plays without an error, holds
    # a picture for each one the cut mdat holds whole, and each is the original's at
    # its time (B pictures shown in their order: the picture order counts). PCM
    # sound, whole frames between the pictures, comes back too: the original's first
    # frames; AAC sound does not (its frames have no marks)
    suffix = ".mp4" if sound == "aac" else ".mov"
    reference = ffmpeg_movie(tmp_path / ("ref" + suffix), 2, codec, sound=sound)
    movie = ffmpeg_movie(tmp_path / ("movie" + suffix), 5, codec, sound=sound)
    found = r.movie_reference(reader(reference), 0, len(reference))
    carved, _ = parsed(movie)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    cut = mdat.body + int((mdat.end - mdat.body) * fraction)
    walked = walk(movie, mdat.body, cut, found.coding)
    pictures = walked.pictures
    held_to(pictures, whole_pictures(parsed(movie)[1], cut))
    f, track, delta = found.f, found.track, found.delta
    shown = r.presentation_order(walked.heads, found.coding)
    found = r.pcm_track(f)
    assert (found is None) == (sound == "aac")
    chunks = found and r.sound_chunks(mdat.body, pictures, found[1])
    header, runs = r.repaired_movie_header(f, track, pictures, delta, shown,
                                           found and found + (chunks,))
    repaired = tmp_path / ("movie.repaired" + suffix)
    repaired.write_bytes(header + b"".join(movie[offset:offset + size] for offset, size in runs))
    errors = subprocess.run(["ffmpeg", "-v", "error", "-i", str(repaired), "-f", "null", "-"],
                            capture_output=True, text=True).stderr
    assert errors == ""
    got, original = frames(repaired), frames(tmp_path / ("movie" + suffix))
    assert len(got) == len(pictures)
    assert {time: original[time] for time in got} == got
    if sound == "pcm":
        sound_bytes = pcm(repaired)
        assert len(sound_bytes) == sum(size for _, size in chunks) > 0
        assert sound_bytes == pcm(tmp_path / ("movie" + suffix))[:len(sound_bytes)]


def carved_at(buf, start):
    return r.carve_isobmff(buf, start, len(buf), r.StopAfterMdat(), r.ALL_TYPES)


def plan_for(tmp_path, reference_args, cut_args, adjust=lambda reference: reference):
    """repair_plan for a movie made with cut_args, cut after its mdat's first half,
    after a complete reference made with reference_args (its MovieReference changed
    by adjust), in one buffer."""
    reference = ffmpeg_movie(tmp_path / "ref.mp4", 2, *reference_args)
    movie = ffmpeg_movie(tmp_path / "movie.mp4", 3, *cut_args)
    carved = carved_at(movie, 0)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    buf = reference + movie[:(mdat.body + mdat.end) // 2]
    found = adjust(r.movie_reference(reader(buf), 0, len(reference)))
    return r.repair_plan(reader(buf), movie[:carved.boxes[0].size], len(reference) + mdat.body,
                         len(buf), [found], 10 ** 6)


OTHER_MODE = "its pictures are not of the size of those of the movies with its ftyp (another mode)"


@needs_ffmpeg
@pytest.mark.parametrize("reference_args, cut_args, why", [
    (("h264",), ("h264",), None),
    (("hevc",), ("hevc",), None),
    (("h264",), ("hevc",), "no complete movie of the card has its ftyp"),
    (("h264", "320x240", True), ("h264", "640x480", True),
     "its own parameter sets are not those of the movies of the card with its ftyp"),
    # the same SPS field widths, not repeated in the stream: the pictures' sizes
    (("h264", "1280x720"), ("h264",), OTHER_MODE),
    # (pictures more than 4 times the reference's largest are no NAL units of its)
    (("h264",), ("h264", "1280x720"),
     "no picture coded as a movie of the card with its ftyp begins its data"),
    (("hevc", "1280x720"), ("hevc",), OTHER_MODE),
])
def test_a_cut_movie_takes_a_reference_coded_as_it_is(tmp_path, reference_args, cut_args,
                                                      why):
    reference, walked = plan_for(tmp_path, reference_args, cut_args)
    if why is None:
        assert reference is not None and len(walked.pictures) > 10
    else:
        assert (reference, walked) == (None, why)


# The whole run: a card's dump with a complete movie (the reference) and one cut by a
# dead battery, carved and rebuilt by recovercr3 as a user runs it. No complete movie
# of a camera's is in the corpora but these: the cut one is a copy of a whole movie
# with its moov taken out, cut at a random point, its mdat's size as the camera
# opened it (0, a 64-bit 0, or the size it meant to reach).

MDAT_OPENED = {"zero": struct.pack(">I4s", 0, b"mdat"),
               "large zero": struct.pack(">I4sQ", 1, b"mdat", 0),
               "meant": struct.pack(">I4sQ", 1, b"mdat", 1 << 32)}


def cut_by_battery(movie, fraction, opened, zeros=False):
    """(movie's bytes as a camera leaves them when it stops at fraction of its mdat:
    the boxes before mdat but moov, the mdat opened as opened says, its data up to
    there; where that data begins; the whole pictures it holds, in the dump's order,
    and the one that may or may not be proven whole (see whole_pictures), from the
    cut movie's start)."""
    carved, f = parsed(movie)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    head = b"".join(movie[box.offset:box.end] for box in carved.boxes
                    if box.offset < mdat.offset and box.name != r.MOOV)
    cut = mdat.body + int((mdat.end - mdat.body) * fraction)
    shift = len(head) + len(MDAT_OPENED[opened]) - mdat.body
    whole = [[(offset + shift, size) for offset, size in pictures]
             for pictures in whole_pictures(f, cut, zeros)]
    return head + MDAT_OPENED[opened] + movie[mdat.body:cut], mdat.body + shift, whole


@functools.lru_cache(maxsize=None)
def camera_movie(kind):
    """(a reference, another movie of the same camera and mode) of kind: corpus
    movies (a second recording: the same file) or ffmpeg's."""
    if kind == "gopro":
        movie = corpus_file("gopro_karma.mp4")
        return movie, movie
    if kind == "iphone":
        movie = corpus_file("nomexif_meta.mov")
        return movie, movie
    if not shutil.which("ffmpeg"):
        pytest.skip("needs ffmpeg")
    codec, sound, suffix, inband = {"h264 aac": ("h264", "aac", ".mp4", False),
                                    "hevc aac": ("hevc", "aac", ".mp4", False),
                                    "h264 pcm": ("h264", "pcm", ".mov", False),
                                    "h264 slices": ("h264-slices", "aac", ".mp4", False)}[kind]
    folder = pathlib.Path(tempfile.mkdtemp(prefix="cut-movies-"))
    return (ffmpeg_movie(folder / ("ref" + suffix), 2, codec, sound=sound, inband=inband),
            ffmpeg_movie(folder / ("movie" + suffix), 4, codec, sound=sound, inband=inband))


def played(path):
    """What ffmpeg says decoding path through: "" when it plays."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True).stderr


@needs_ffmpeg
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(fraction=st.floats(0.03, 1.0), opened=st.sampled_from(sorted(MDAT_OPENED)),
       zeros=st.booleans())
@pytest.mark.parametrize("kind", ["gopro", "iphone", "h264 aac", "hevc aac", "h264 pcm",
                                  "h264 slices"])
def test_a_movie_cut_by_a_dead_battery_plays_again(tmp_path_factory, kind, fraction, opened,
                                                   zeros):
    # the GoPro's has its sound, timecode and GPS (gpmd) tracks; the iPhone's its
    # sound and metadata; ffmpeg's H.264 and HEVC with B pictures, AAC or PCM sound,
    # and an H.264 of four slices a picture (a cut picture is left out whole). The
    # dump ends with the cut, or zeros follow it (a card never written there)
    reference, movie = camera_movie(kind)
    cut, first, (whole, maybe) = cut_by_battery(movie, fraction, opened, zeros)
    work = tmp_path_factory.mktemp("card")
    build_dump(work / "card.img", 8192, reference, 4096 - len(reference) % 4096, cut,
               *[bytes(128 << 10)] * zeros)
    outcome = recover(work / "card.img", work / "out")
    rows = {row["status"]: row for row in outcome.rows}
    assert outcome.rc == 0
    assert rows["complete"]["file"] == "img1" + SUFFIX[kind]
    assert sha256((work / "out" / rows["truncated"]["file"]).read_bytes()) == sha256(
        cut + bytes(128 << 10) * zeros)
    if not whole + maybe:               # not one whole picture: nothing to rebuild
        assert "not rebuilt" in rows["truncated"]["detail"] and "repaired" not in rows
        return
    if maybe and "repaired" in rows and rows["repaired"]["detail"].startswith(
            "the {:,d} pictures".format(len(whole) + 1)):
        whole = whole + maybe
    if not whole:
        assert "not rebuilt" in rows["truncated"]["detail"] and "repaired" not in rows
        return
    assert "rebuilt beside it" in rows["truncated"]["detail"]
    repaired = work / "out" / rows["repaired"]["file"]
    assert rows["repaired"]["file"] == "repaired/img2.repaired" + SUFFIX[kind]
    assert rows["repaired"]["detail"].startswith(
        "the {:,d} pictures".format(len(whole)))
    assert played(repaired) == ""
    # its mdat holds the cut movie's pictures, byte for byte (and PCM sound, its
    # bytes before and between them: all of its data up to its last whole picture)
    data = repaired.read_bytes()
    payload = cut[first:whole[-1][0] + whole[-1][1]] if kind == "h264 pcm" else \
        b"".join(cut[offset:offset + size] for offset, size in whole)
    assert data.endswith(r.BOX_HEADER.pack(len(payload) + 8, r.MDAT) + payload)
    got, original = frames(repaired), frames_of(movie, SUFFIX[kind])
    assert len(got) == len(whole)
    assert {time: original[time] for time in got} == got


SUFFIX = {"gopro": ".mp4", "iphone": ".mov", "h264 aac": ".mp4", "hevc aac": ".mp4",
          "h264 pcm": ".mov", "h264 slices": ".mp4"}


@functools.lru_cache(maxsize=None)
def frames_of(movie, suffix):
    folder = pathlib.Path(tempfile.mkdtemp(prefix="cut-movies-"))
    (folder / ("movie" + suffix)).write_bytes(movie)
    return frames(folder / ("movie" + suffix))


def card_with(work, *movies):
    """A dump of movies (bytes), each on a 4 KiB cluster, and the run's Outcome."""
    parts = [8192]
    for movie in movies:
        parts += [movie, -len(movie) % 4096 or 4096]
    build_dump(work / "card.img", *parts[:-1])
    return recover(work / "card.img", work / "out")


@needs_ffmpeg
def test_a_cut_movie_is_rebuilt_on_a_reference_found_after_it(tmp_path):
    # the battery died in the first movie; the camera went on with a new one after
    # it: the cut movie waits for the end of the scan, when every movie is known
    reference, movie = camera_movie("h264 aac")
    cut, _, (whole, _) = cut_by_battery(movie, 0.5, "zero")
    outcome = card_with(tmp_path, cut, reference)
    rows = {row["status"]: row for row in outcome.rows}
    assert rows["repaired"]["file"] == "repaired/img1.repaired.mp4"
    assert "an index built on that of img2.mp4" in rows["repaired"]["detail"]
    assert played(tmp_path / "out" / rows["repaired"]["file"]) == ""
    assert len(frames(tmp_path / "out" / rows["repaired"]["file"])) == len(whole)


@needs_ffmpeg
@pytest.mark.parametrize("reference_args, why", [
    (None, "no complete movie of the card has its ftyp"),
    (("hevc",), "no complete movie of the card has its ftyp"),
    (("h264", "1280x720"), OTHER_MODE),
])
def test_a_cut_movie_without_its_cameras_reference_is_left_as_it_is(tmp_path, reference_args,
                                                                   why):
    movie = ffmpeg_movie(tmp_path / "movie.mp4", 3, "h264")
    cut, _, _ = cut_by_battery(movie, 0.7, "zero")
    others = [ffmpeg_movie(tmp_path / "ref.mp4", 2, *reference_args)] if reference_args else []
    outcome = card_with(tmp_path, *others, cut)
    (row,) = [row for row in outcome.rows if row["status"] != "complete"]
    assert row["status"] == "truncated" and row["detail"].endswith("; not rebuilt: " + why)
    assert "players cannot open this file, and it could not be rebuilt" in row["meaning"]
    assert sha256((tmp_path / "out" / row["file"]).read_bytes()) == sha256(cut)
    assert not (tmp_path / "out" / "repaired").exists()


@needs_ffmpeg
def test_a_rebuilt_movie_is_kept_by_the_next_run_and_shown_on_the_sheet(tmp_path):
    reference, movie = camera_movie("h264 pcm")
    cut, _, (whole, _) = cut_by_battery(movie, 0.6, "meant")
    first = card_with(tmp_path, reference, cut)
    (repaired,) = [row for row in first.rows if row["status"] == "repaired"]
    seconds = len(whole) / 25
    assert repaired["detail"].startswith("the {:,d} pictures ({:.1f} s)".format(
        len(whole), seconds))
    assert "and its sound" in repaired["detail"]
    # in plain words: what it is, how long, and which to watch
    (cut_row,) = [row for row in first.rows if row["status"] == "truncated"]
    assert repaired["meaning"] == (
        "A copy of the cut movie {} rebuilt to play: {:,d} pictures, {:.1f} seconds, with "
        "its sound. Its pictures are the camera's, byte for byte; its index is borrowed "
        "from a whole movie of the same camera. Watch this one.".format(
            cut_row["file"], len(whole), seconds))
    assert cut_row["meaning"].endswith("A copy that plays was rebuilt in repaired/: watch "
                                       "that one.")
    sheet = (tmp_path / "out" / "index.html").read_text()
    assert "repaired/img2.repaired.mov" in sheet
    dry = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "dry", "--dry-run")
    assert "Would save %s" % (tmp_path / "dry" / "repaired" / "img2.repaired.mov") in dry.stderr
    assert not (tmp_path / "dry" / "repaired").exists()
    again = recover(tmp_path / "card.img", tmp_path / "out")
    assert "Kept, as an earlier run saved it: %s" % (
        tmp_path / "out" / "repaired" / "img2.repaired.mov") in again.log
    assert sorted(p.name for p in (tmp_path / "out" / "repaired").iterdir()) == [
        "img2.repaired.mov"]
    assert re.search(r"\[INFO\] Nothing new: \d+ file\(s\) already in .*, listed in %s$" % (
        re.escape(str(tmp_path / "out" / "recovercr3-report.csv"))), again.log)  # as they were
    assert sha256((tmp_path / "out" / repaired["file"]).read_bytes()) == repaired["sha256"]


@pytest.mark.parametrize("mine, theirs, agree", [
    ((25, 25), (25, 25), True),
    ((25, 25), (12, 12), False),        # other fixed intervals: other modes
    ((25, 25), (0, 120), False),        # 120 pictures without a key: not every 25
    ((0, 120), (25, 25), False),
    ((0, 26), (0, 28), True),           # placed by the scene (x265): nothing to compare
    ((25, 25), (0, 20), True),          # a short movie: no run longer than 25
])
def test_key_pictures_tell_a_cameras_modes_apart(mine, theirs, agree):
    assert r.rhythms_agree(mine, theirs) == agree


def test_a_key_rhythm_is_an_interval_only_when_keys_come_regularly():
    every = lambda n, count: [index % n == 0 for index in range(count)]  # noqa: E731
    assert r.key_rhythm(every(25, 100)) == (25, 25)
    assert r.key_rhythm(every(25, 40)) == (0, 25)           # one step: not yet a rhythm
    assert r.key_rhythm([True] + [False] * 119) == (0, 120)
    assert r.key_rhythm([i in (0, 22, 47, 73) for i in range(100)]) == (0, 27)


@needs_ffmpeg
def test_the_nearest_reference_of_another_mode_is_passed_over_for_the_right_one(tmp_path):
    # the movie before the cut one on the card is of the same size and brands but
    # another mode (a key picture every 250, not every 25): its index would give
    # the cut movie the wrong timing of key pictures, so the one further away is
    # taken (a 1080p movie of ffmpeg's took a 720p one's index so, before)
    right = ffmpeg_movie(tmp_path / "right.mp4", 2, "h264")
    other = ffmpeg_movie(tmp_path / "other.mp4", 4, "h264", keyint=250)
    movie = ffmpeg_movie(tmp_path / "movie.mp4", 4, "h264")
    cut, _, (whole, _) = cut_by_battery(movie, 0.9, "zero")
    outcome = card_with(tmp_path, right, other, cut)
    (repaired,) = [row for row in outcome.rows if row["status"] == "repaired"]
    assert "an index built on that of img1.mp4" in repaired["detail"]
    assert len(frames(tmp_path / "out" / repaired["file"])) == len(whole)


CTRL_C_IN_REPAIR = """
import os, signal, sys
sys.path.insert(0, {project!r})
import recovercr3
real = recovercr3.repaired_movie_header

def header_then_ctrl_c(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)         # a stop asked for as the movie is rebuilt
    return real(*args, **kwargs)

recovercr3.repaired_movie_header = header_then_ctrl_c
sys.exit(recovercr3._main(sys.argv[1:]))
"""


@needs_ffmpeg
def test_ctrl_c_while_a_movie_is_rebuilt_then_the_same_command_goes_on(tmp_path):
    # the stop leaves no half movie and a report true to the disk; the same command
    # again rebuilds it, and ends with the report of a run never stopped
    reference, movie = camera_movie("h264 aac")
    cut, _, _ = cut_by_battery(movie, 0.6, "zero")
    fresh = card_with(tmp_path, reference, cut)
    out = tmp_path / "stopped"
    stopped = subprocess.run([sys.executable, "-c", CTRL_C_IN_REPAIR.format(
        project=str(PROJECT)), "-i", str(tmp_path / "card.img"), "-o", str(out)],
        capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr
    assert not list(out.rglob("*.part")) and not (out / "repaired").exists()
    again = run_cli("-i", tmp_path / "card.img", "-o", out)
    assert again.returncode == 0, again.stderr
    newest = out / r.newest_report(out).rpartition("/")[2]
    assert newest.name == "recovercr3-report-2.csv"
    assert newest.read_bytes() == (tmp_path / "out" / "recovercr3-report.csv").read_bytes()
    assert [row["status"] for row in fresh.rows] == ["complete", "truncated", "repaired"]


@needs_ffmpeg
def test_a_cut_movie_may_have_the_picture_sizes_of_any_movie_of_its_mode(tmp_path):
    # a mode's movies of other scenes code their pictures larger or smaller: the
    # cut one's are held to each complete movie's of its coding, and one will do
    tiny = (1, 1, 0)                    # a movie of black pictures, say
    also = lambda reference: reference._replace(sizes=(tiny,) + reference.sizes)  # noqa: E731
    only = lambda reference: reference._replace(sizes=(tiny,))  # noqa: E731
    assert plan_for(tmp_path, ("h264",), ("h264",), also)[0] is not None
    assert plan_for(tmp_path, ("h264",), ("h264",), only) == (None, OTHER_MODE)


def test_a_walk_in_windows_finds_what_a_walk_of_the_whole_data_does(monkeypatch):
    # a cut mdat of gigabytes is read a window at a time (4 times what a picture
    # and a gap may span): here windows of 2 MB over the GoPro's 4 MB
    movie = corpus_file("gopro_karma.mp4")
    carved, f = parsed(movie)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    coding = coding_of(movie)
    whole = walk(movie, mdat.body, mdat.end, coding)
    reads = []
    monkeypatch.setattr(r, "MIN_WALK_WINDOW", 0)

    def read(offset, size):
        reads.append(size)
        return movie[offset:offset + size]
    windowed = r.walk_cut_movie(read, mdat.body, mdat.end, coding, 10 ** 6)
    assert len(reads) > 1 and windowed == whole
    held_to(windowed.pictures, whole_pictures(f, mdat.end))
