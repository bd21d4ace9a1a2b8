"""Movies cut before their moov was written (issue 31, in progress): an mdat alone,
walked picture by picture with what a reference movie of the same camera says of its
coding, and a moov written for the pictures found.

The corpus movies here are whole: their moov is what says where each picture is, so a
walk of their mdat that ignores it can be held to it exactly. ffmpeg makes the H.264
and HEVC movies with B pictures (shown in another order than decoded)."""

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recovercr3 as r
from dumpkit import corpus_file

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


def parsed(data):
    carved = r.carve_isobmff(data, 0, len(data), r.StopAfterMdat(), r.ALL_TYPES)
    return carved, r.IsoFile(data, 0, carved.size, carved.boxes, r.read_ftyp(data, 0, len(data)))


def video(f):
    return next(track for track in f.tracks() if track.entry in r.NAL_SAMPLE_ENTRIES)


def coding_of(data):
    """The VideoCoding a reference movie's video track gives, learnt from its samples."""
    _, f = parsed(data)
    track = video(f)
    config = next(track.entry_boxes[name] for name in r.NAL_CONFIGS if name in track.entry_boxes)
    return r.learnt_coding(data, track.samples(), r.video_coding(data, config))


def walked(data, reference, fraction):
    """(the pictures walked in data's mdat cut at fraction, those its moov lists
    wholly before the cut)."""
    carved, f = parsed(data)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    cut = mdat.body + int((mdat.end - mdat.body) * fraction)
    pictures = r.walk_cut_video(data, mdat.body, cut, coding_of(reference), 10 ** 6)
    truth = [(offset, size) for offset, size in video(f).samples() if offset + size <= cut]
    return pictures, truth


@pytest.mark.parametrize("fraction", [0.13, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("name", ["gopro_karma.mp4", "nomexif_meta.mov"])
def test_a_cut_mdats_pictures_are_where_its_moov_would_have_said(name, fraction):
    # the GoPro's pictures lie one a chunk among its sound, timecode and GPS chunks
    # (a gpmd chunk holds bytes that look like a slice's); the phone's after its sound
    movie = corpus_file(name)
    pictures, truth = walked(movie, movie, fraction)
    assert [(offset, size) for offset, size, _ in pictures] == truth
    assert not pictures or pictures[0][2]       # (the phone's first picture is 100 KB)


def test_a_walk_begins_at_a_key_picture_and_learns_the_headers_of_the_reference():
    gopro = corpus_file("gopro_karma.mp4")
    coding = coding_of(gopro)
    assert coding.lead == b"\x09" and coding.pps == frozenset([0])      # each begins with an AUD
    carved, f = parsed(gopro)
    samples = list(video(f).samples())
    keys = [index for index, (offset, size) in enumerate(samples)
            if r.walk_cut_video(gopro, offset, offset + size, coding, 1)]
    assert len(keys) == 46 and keys[0] == 0
    pictures = r.walk_cut_video(gopro, samples[1][0], carved.size, coding, 3)
    assert [(offset, size) for offset, size, _ in pictures] == samples[keys[1]:keys[1] + 3]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([1, 2, 4]), st.booleans())
def test_random_bytes_never_crash_the_walk(data, length_size, hevc):
    coding = r.VideoCoding(length_size, hevc, frozenset([0]))
    pictures = r.walk_cut_video(data, 0, len(data), coding, 100)
    assert all(0 <= offset and offset + size <= len(data) for offset, size, _ in pictures)


def ffmpeg_movie(path, seconds, codec, size="320x240", inband=False, sound="aac"):
    """A movie ffmpeg makes: H.264 or HEVC with B pictures and AAC sound (or 16-bit
    PCM, in a MOV); inband, its SPS and PPS repeated before each key picture (as
    some cameras write)."""
    options = {"h264": ["-c:v", "libx264", "-g", "25", "-bf", "2"]
               + (["-x264-params", "repeat-headers=1"] if inband else []),
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
    pictures, truth = walked(movie, reference, fraction)
    assert [(offset, size) for offset, size, _ in pictures] == truth
    _, f = parsed(reference)
    track = video(f)
    stts = f.child([box for box in f.children(f.top(r.MOOV)) if box.name == b"trak"][
        track.number - 1], b"mdia", b"minf", b"stbl", b"stts")
    delta = r.U32.unpack_from(reference, stts.body + 12)[0]
    shown = r.presentation_order(movie, pictures, coding_of(reference))
    found = r.pcm_track(f)
    assert (found is None) == (sound == "aac")
    mdat = next(box for box in parsed(movie)[0].boxes if box.name == r.MDAT)
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


def plan_for(tmp_path, reference_args, cut_args):
    """repair_plan for a movie made with cut_args, cut after its mdat's first half,
    after a complete reference made with reference_args, in one buffer."""
    reference = ffmpeg_movie(tmp_path / "ref.mp4", 2, *reference_args)
    movie = ffmpeg_movie(tmp_path / "movie.mp4", 3, *cut_args)
    carved = carved_at(movie, 0)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    buf = reference + movie[:(mdat.body + mdat.end) // 2]
    found = r.movie_reference(buf, 0, carved_at(buf, 0))
    return r.repair_plan(buf, movie[:carved.boxes[0].size], len(reference) + mdat.body,
                         len(buf), [found], 10 ** 6)


@needs_ffmpeg
@pytest.mark.parametrize("reference_args, cut_args, why", [
    (("h264",), ("h264",), None),
    (("h264", "640x480"), ("h264",), None),     # (not told apart: see repair_plan)
    (("h264",), ("hevc",), "no complete movie of the card has its ftyp"),
    (("h264", "320x240", True), ("h264", "640x480", True),
     "its own parameter sets are not its reference's"),
])
def test_a_cut_movie_takes_a_reference_coded_as_it_is(tmp_path, reference_args, cut_args,
                                                      why):
    reference, pictures = plan_for(tmp_path, reference_args, cut_args)
    if why is None:
        assert reference is not None and len(pictures) > 10
    else:
        assert (reference, pictures) == (None, why)
