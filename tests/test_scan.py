"""The scan: one pass for every format, worker processes, the progress line."""

import io
import os
import pty
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

import recovercr3 as r
from conftest import CLI_PYTHON, SCRIPT, read_outcome, recover
from dumpkit import build_dump, corpus_file, padded, sha256


def card_of_many_regions(path, eos_r_cr3):
    """A dump of ~5 scan regions with files of every family, some across region ends."""
    files = [eos_r_cr3, corpus_file("gopro_karma.mp4"), corpus_file("mei_Canon_EOS_5D.jpg"),
             corpus_file("exiv2_flame.avi"), corpus_file("imagemeta_CRW.CRW"),
             corpus_file("exiftool_Nikon.nef"), corpus_file("filetype_fixture.7z"),
             eos_r_cr3[:7000000], corpus_file("exiv2_Canon.HIF")]
    parts = []
    for i, data in enumerate(files):
        parts += [512 * (1 + 3 * i), data, (-len(data)) % 512]
    build_dump(path, r.SCAN_REGION - 4096, *parts, r.SCAN_REGION, seed=5)
    assert os.path.getsize(path) > 4 * r.SCAN_REGION


def test_one_job_and_several_give_the_same_files_report_and_log(tmp_path, eos_r_cr3):
    card_of_many_regions(tmp_path / "card.img", eos_r_cr3)
    one = recover(tmp_path / "card.img", tmp_path / "one", "--jobs", "1")
    three = recover(tmp_path / "card.img", tmp_path / "three", "--jobs", "3")
    assert len(one.rows) >= 9
    assert one.rows == three.rows and one.outputs == three.outputs
    cap = "[INFO] --jobs 3: this machine has %d CPU(s), so %d scan processes\n" % (
        os.cpu_count(), os.cpu_count())
    if os.cpu_count() < 3:                  # --jobs is capped at the CPU count, and says so
        assert three.log.startswith(cap)
        three = three._replace(log=three.log[len(cap):])
    assert one.log.replace(str(tmp_path / "one"), str(tmp_path / "three")) == three.log


def test_candidates_are_found_across_region_ends(tmp_path):
    jpeg = corpus_file("exiftool_Canon.jpg")
    movie = corpus_file("mei_sample.3gp")
    # the movie's ftyp straddles the first region's end; the JPEG starts the second
    build_dump(tmp_path / "card.img", r.SCAN_REGION - 6, movie,
               r.SCAN_REGION - len(movie) + 6, jpeg, 9999)
    for jobs in ("1", "2"):
        out = recover(tmp_path / "card.img", tmp_path / jobs, "--jobs", jobs)
        assert out.shas() == [sha256(movie), sha256(jpeg)]


@pytest.mark.parametrize("shift", [-1, 0, 1])
def test_a_movie_that_starts_where_a_region_ends_is_found_once(tmp_path, shift):
    # its ftyp is searched for past the region's end (a box straddling it is the
    # region's), but a file that starts at the end is the next region's alone: it
    # was saved twice (img1.mp4 and img2.mp4, the same offset)
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", r.SCAN_REGION + shift, movie, 9999)
    for jobs in ("1", "2"):
        out = recover(tmp_path / "card.img", tmp_path / jobs, "--jobs", jobs)
        assert [row["offset"] for row in out.rows] == [str(r.SCAN_REGION + shift)]
        assert out.shas() == [sha256(movie)]


class FakeClock:
    """time.monotonic for a Log, moved on by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def progress_lines(steps, total=1_000_000_000):
    """What the progress line says after each (seconds later, bytes done) step."""
    stream, clock = io.StringIO(), FakeClock()
    log = r.Log(stream, progress=True, clock=clock)
    said = []
    for later, done in steps:
        clock.now += later
        before = len(stream.getvalue())
        log.progress(done, total, 3)
        said.append(stream.getvalue()[before:].replace(r.CLEAR_LINE, ""))
    return said


def test_progress_line_is_replaced_by_log_lines():
    stream = io.StringIO()
    log = r.Log(stream, progress=True)
    log.progress(500_000_000, 1_000_000_000, 3)
    log.info("Saving x")
    text = stream.getvalue()
    assert text == (r.CLEAR_LINE + "0.5 of 1.0 GB (50%), 3 file(s) found, estimating the "
                    "time left" + r.CLEAR_LINE + "[INFO] Saving x\n")


def test_the_time_left_waits_for_a_rate_then_follows_a_steady_one():
    # 10 MB every half second (20 MB/s) over 2 GB: nothing is said of the time left
    # before 3 s (5% would be 100 MB), though 20 MB/s is known after the second update
    steps = [(0.1, 0)] + [(0.5, 10_000_000 * n) for n in range(1, 9)]
    said = progress_lines(steps, total=2_000_000_000)
    assert said[0] == "0.0 of 2.0 GB (0%), 3 file(s) found, estimating the time left"
    assert said[1] == ("0.0 of 2.0 GB (0%), 20 MB/s, 3 file(s) found, "
                       "estimating the time left")
    assert all(line.endswith("estimating the time left") for line in said[:6])
    assert said[6] == "0.1 of 2.0 GB (3%), 20 MB/s, 3 file(s) found, 0:01:37 left"
    assert said[7].endswith("0:01:36 left")


def test_the_time_left_comes_early_on_a_fast_scan():
    # 5% of what was left when the scan began is enough, however soon: here after
    # one second, of a scan that began (resumed) at 400 MB
    said = progress_lines([(0.1, 400_000_000), (0.5, 420_000_000), (0.5, 430_000_000)])
    assert said[1].endswith("estimating the time left")
    assert said[2] == "0.4 of 1.0 GB (43%), 36 MB/s, 3 file(s) found, 0:00:15 left"


def test_one_slow_block_moves_the_time_left_a_little():
    steps = [(0.1, 0)] + [(0.5, 10_000_000 * n) for n in range(1, 10)]
    steady = progress_lines(steps + [(0.5, 100_000_000)])[-1]
    slowed = progress_lines(steps + [(5.0, 100_000_000)])[-1]
    assert steady.endswith("0:00:45 left")
    # a block ten times slower: 2 MB/s for the last update alone, 16.4 smoothed
    assert slowed == "0.1 of 1.0 GB (10%), 16 MB/s, 3 file(s) found, 0:00:54 left"


def test_updates_come_at_most_every_half_second():
    said = progress_lines([(0.1, 0), (0.2, 1000), (0.2, 2000), (0.2, 3000)])
    assert [bool(line) for line in said] == [True, False, False, True]


def test_no_progress_line_without_a_terminal(tmp_path):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"))
    p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", str(tmp_path / "card.img"),
                        "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert "\r" not in p.stderr and "MB/s" not in p.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_on_a_terminal_unless_quiet(tmp_path, quiet):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"), 1 << 20)
    leader, follower = pty.openpty()
    command = [CLI_PYTHON, str(SCRIPT), "-i", str(tmp_path / "card.img"),
               "-o", str(tmp_path / "out")] + (["-q"] if quiet else [])
    p = subprocess.run(command, stderr=follower, stdout=subprocess.DEVNULL, timeout=60)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert p.returncode == 0 and b"Restored 1 file(s)" in output
    assert (b"file(s) found, estimating the time left" in output) is not quiet


# --- memory: a scan process keeps mapped only what it reads now -----------------------

@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1 << 30), st.integers(0, 1 << 24),
       st.sets(st.integers(0, (1 << 18) - 1), max_size=8), st.integers(1, 1 << 31))
def test_the_pages_let_go_miss_what_is_read_and_the_guarded_ones(first, length, pages, size):
    page = r.mmap.PAGESIZE
    guarded = {p * page for p in pages if p * page < size}
    ranges = r.pages_to_let_go(first, first + length, guarded, size)
    kept = set()
    for low, high in ranges:
        assert low % page == 0 and 0 <= low < high <= size      # madvise's rule
        kept.add((low, high))
    for (low, high), (low2, _) in zip(ranges, ranges[1:]):
        assert high <= low2                                      # in order, apart
    for low, high in ranges:
        assert high <= first - first % page or low >= first + length   # never what is read
        assert not any(low <= g < high for g in guarded)
    covered = sum(high - low for low, high in ranges)
    outside = size - min(size, first + length + r.MAPPED_AROUND + page) + min(size, first)
    assert covered >= outside - (len(guarded) + 1) * page      # the rest is given back


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_scan_process_gives_back_what_carving_a_large_file_mapped(tmp_path):
    # 64 MiB of pages read through the map, as carving a large file reads them: the
    # thread gives them back within a few of its turns.
    build_dump(tmp_path / "dump", 64 << 20)
    script = ("import sys, time; sys.path.insert(0, %r); import recovercr3 as r\n"
              "def rss_file_kb():\n"
              "    with open('/proc/self/status') as f:\n"
              "        return next(int(line.split()[1]) for line in f\n"
              "                    if line.startswith('RssFile:'))\n"
              "r._start_scan_process(%r, 64 << 20, r.Options(None, frozenset()))\n"
              "buf = r._scan[0]\n"
              "before = rss_file_kb()\n"
              "r._carving(0)\n"
              "for at in range(0, 64 << 20, 4096):\n"
              "    buf[at]\n"
              "time.sleep(0.2)\n"
              "print(rss_file_kb() - before)\n" % (str(SCRIPT.parent), str(tmp_path / "dump")))
    p = subprocess.run([CLI_PYTHON, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) < 8 << 10                  # KiB: of 64 MiB read, under 8 kept


def peak_mb_of_each_process(command):
    """{pid: peak RSS in MB} of a command and of every process it starts, sampled
    from /proc while it runs (VmHWM: the peak of each since its exec; a child's
    ru_maxrss would start at this big test process's size, as its fork copied it)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = {}

    def family(pid):
        found = [pid]
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                for child in f.read().split():
                    found += family(int(child))
        return found

    while proc.poll() is None:
        try:
            for pid in family(proc.pid):
                with open("/proc/%d/status" % pid) as f:
                    status = dict(line.split(":", 1) for line in f)
                if "VmHWM" in status:
                    peaks[pid] = max(peaks.get(pid, 0), int(status["VmHWM"].split()[0]) >> 10)
        except (OSError, ValueError):
            pass                                # a process ended between two reads
        time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr.read()
    return peaks


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_a_whole_run_stays_under_64_mb_in_every_process(tmp_path, eos_r_cr3):
    # The main process and each scan process, while a movie is carved (its samples
    # read), 29 MB CR3s are copied and hashed, and the search passes 40 MB of noise
    # (the version before this test peaked at 67 MB in its main process).
    movie = corpus_file("gopro_karma.mp4")
    build_dump(tmp_path / "card.img", 4096, eos_r_cr3, 4096, movie, 40 << 20, eos_r_cr3, 4096)
    peaks = peak_mb_of_each_process([CLI_PYTHON, str(SCRIPT), "-q", "-i",
                                     str(tmp_path / "card.img"), "-o", str(tmp_path / "out")])
    assert len(peaks) >= 2                      # the main process and its scan process(es)
    assert max(peaks.values()) < 64, peaks


def test_spawned_scan_processes_find_the_script(tmp_path, eos_r_cr3):
    # Where scan processes are spawned (macOS, Windows) they import the script by its
    # path: the script then runs as itself, not handed over to a module run.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(
        "import multiprocessing\nmultiprocessing.set_start_method('spawn')\n")
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    build_dump(tmp_path / "card.img", 4096, padded(eos_r_cr3, 512), jpeg, 40 << 20)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    copied = tmp_path / "recover-my-card.py"           # as a user copies it: no module name
    copied.write_bytes(SCRIPT.read_bytes())
    # an interpreter outside the test environment, where no recovercr3 is installed
    python = CLI_PYTHON if CLI_PYTHON != sys.executable else getattr(
        sys, "_base_executable", sys.executable)
    p = subprocess.run([python, str(copied), "-q", "-i", str(tmp_path / "card.img"),
                        "-o", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=300, env=env, cwd=str(tmp_path))     # not beside the script
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert [sha256(f.read_bytes()) for f in sorted((tmp_path / "out").glob("img*"))] == [
        sha256(eos_r_cr3), sha256(jpeg)]


# The first pass (the directory sieve's) searches each region too; the second one
# carves what it found without searching or reading the region again, and hashes
# each file in the scan process that carved it, so the writer copies with sendfile.

def test_the_second_pass_carves_the_candidates_of_the_first_and_searches_nothing(
        tmp_path, monkeypatch, eos_r_cr3):
    card_of_many_regions(tmp_path / "card.img", eos_r_cr3)
    size = os.path.getsize(tmp_path / "card.img")
    whole = recover(tmp_path / "card.img", tmp_path / "whole")
    searched = tmp_path / "searched"        # by the scan processes, forked with the patch

    def find_and_note(buf, first, stop, *args, **kwargs):
        with open(str(searched), "a") as f:
            f.write("%d %d\n" % (first, stop))
        return real_find(buf, first, stop, *args, **kwargs)

    real_find = r.candidates_in
    monkeypatch.setattr(r, "candidates_in", find_and_note)
    again = recover(tmp_path / "card.img", tmp_path / "again", "--jobs", "2")
    assert again.rows == whole.rows and again.outputs == whole.outputs
    regions = sorted(tuple(map(int, line.split())) for line in searched.read_text().split("\n")
                     if line)
    assert regions == [(first, min(first + r.SCAN_REGION, size))
                       for first in range(0, size, r.SCAN_REGION)]     # once each


def test_candidates_past_the_bounds_are_searched_for_again(tmp_path, monkeypatch):
    # A region denser with magic than a card's, or a dump with more candidates than
    # memory keeps: those regions are searched in the second pass, with the same files.
    jpeg = corpus_file("exiftool_Canon.jpg")
    movie = corpus_file("mei_sample.3gp")
    parts = [1024]
    for _ in range(3):
        parts += [jpeg, (-len(jpeg)) % 512, movie, (-len(movie)) % 512 + 512]
    build_dump(tmp_path / "card.img", *parts, r.SCAN_REGION + 4096)
    plain = recover(tmp_path / "card.img", tmp_path / "plain")
    assert plain.shas() == [sha256(jpeg), sha256(movie)] * 3
    kept = r.Candidates()
    monkeypatch.setattr(r, "MAX_KEPT_CANDIDATES", 5)
    kept.keep((0, 10), [(1, "ftyp")] * 4)
    kept.keep((10, 20), [(11, "ftyp")] * 2)            # 6 in all: not kept
    assert kept.of((0, 10)) == [(1, "ftyp")] * 4 and kept.of((10, 20)) is None
    kept.keep((20, 30), None)                           # a dense region: not kept
    assert kept.of((20, 30)) is None
    monkeypatch.setattr(r, "MAX_KEPT_CANDIDATES", 1 << 20)
    monkeypatch.setattr(r, "MAX_REGION_CANDIDATES", 2)
    dense = recover(tmp_path / "card.img", tmp_path / "dense", "--jobs", "1")
    assert dense.rows == plain.rows and dense.outputs == plain.outputs


def test_a_scan_process_hashes_what_it_carved(tmp_path):
    data = bytes(range(256)) * 4096
    path = tmp_path / "dump.bin"
    path.write_bytes(data)
    carved = r.Carved(1000, 500000, "jpg", "jpg", r.COMPLETE, "", [])
    fd = os.open(str(path), os.O_RDONLY)
    try:
        hashed = r.hash_carved(fd, bytearray(4096), carved)
        assert hashed.sha256 == (1000, 500000, sha256(data[1000:501000]))
        assert r.known_digest(hashed).hexdigest() == sha256(data[1000:501000])
        past_the_end = carved._replace(offset=len(data) - 10)
        assert r.hash_carved(fd, bytearray(4096), past_the_end) == past_the_end
    finally:
        os.close(fd)
    assert r.hash_carved(fd, bytearray(4096), carved) == carved     # a read that fails
    # the digest is of those bytes only: a file cut, lengthened or put together since
    # is hashed again by the writer
    assert r.known_digest(hashed._replace(size=499999)) is None
    assert r.known_digest(hashed._replace(offset=999)) is None
    assert r.known_digest(hashed._replace(pieces=((1000, 100), (2000, 499900)))) is None
    assert r.known_digest(carved) is None


def test_the_writer_copies_with_sendfile_what_a_scan_process_hashed(tmp_path, monkeypatch):
    jpeg = corpus_file("exiftool_Canon.jpg")
    movie = corpus_file("mei_sample.3gp")
    build_dump(tmp_path / "card.img", 1024, jpeg, 1000, movie, 4096)
    copies = []
    real_copy = r.Dump.copy_to

    def copy_and_note(self, fd, start, size, checkpoint, digest=None):
        copies.append((start, size, digest is not None, self.sendfile_ok))
        return real_copy(self, fd, start, size, checkpoint, digest)

    monkeypatch.setattr(r.Dump, "copy_to", copy_and_note)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.shas() == [sha256(jpeg), sha256(movie)]
    assert [row["sha256"] for row in out.rows] == out.shas()
    # (where, how much, whether the writer hashes it, whether it may use sendfile)
    assert copies == [(1024, len(jpeg), False, hasattr(os, "sendfile")),
                      (1024 + len(jpeg) + 1000, len(movie), False, hasattr(os, "sendfile"))]
    copies.clear()
    careful = recover(tmp_path / "card.img", tmp_path / "careful", "--careful-read")
    assert careful.outputs == out.outputs and careful.rows == out.rows
    assert [writer_hashes for _, _, writer_hashes, _ in copies] == [True, True]


def large_jpeg(seed=7):
    """A baseline JPEG of some 20 MB (noise at quality 95: a 48 MP camera's size)."""
    Image = pytest.importorskip("PIL.Image")
    import io as bytes_io
    size = (4800, 3600)
    out = bytes_io.BytesIO()
    Image.frombytes("RGB", size, r_noise(size[0] * size[1] * 3, seed)).save(
        out, "JPEG", quality=95)
    return out.getvalue()


def r_noise(size, seed):
    from dumpkit import noise
    return noise(size, seed=seed)


def jpeg_around_another(path, big, cluster=4096):
    """A card (no boot sector: every cluster size is tried) where a camera wrote big
    around a whole JPEG still there: big's first 2 MiB, the other one, big's rest."""
    small = corpus_file("mei_Nikon_D70.jpg")
    cut = 512 * cluster
    build_dump(path, cluster, big[:cut], padded(small, cluster), padded(big[cut:], cluster),
               cluster)
    return small


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_a_large_file_put_back_together_keeps_every_process_under_64_mb(tmp_path):
    # A 20 MB JPEG in two pieces is put back together: its coded data is decoded a
    # chunk at a time, and the file joined is checked from a scratch file whose pages
    # are given back as they are read (the version before this test peaked at 92 MB
    # on the bench's card of seed 13, 167 MB before that).
    big = large_jpeg()
    assert len(big) > 16 << 20
    small = jpeg_around_another(tmp_path / "card.img", big)
    peaks = peak_mb_of_each_process([CLI_PYTHON, str(SCRIPT), "-q", "-i",
                                     str(tmp_path / "card.img"), "-o", str(tmp_path / "out")])
    out = read_outcome(0, "", tmp_path / "out")
    assert [(row["status"], row["detail"]) for row in out.rows] == [
        ("complete", "reassembled from 2 pieces around img2.jpg"), ("complete", "")]
    assert out.shas() == [sha256(big), sha256(small)]
    assert not [p for p in (tmp_path / "out").iterdir() if "scratch" in p.name]
    assert max(peaks.values()) < 64, peaks


def test_a_file_put_together_in_memory_or_from_a_scratch_file_is_the_same(tmp_path,
                                                                          monkeypatch):
    big = large_jpeg(seed=8)[:6 << 20]          # cut: its rest is looked for, not found
    whole = large_jpeg(seed=9)
    jpeg_around_another(tmp_path / "card.img", whole)
    build_dump(tmp_path / "cut.img", 4096, big, 4096)
    for card in ("card.img", "cut.img"):
        scratch = recover(tmp_path / card, tmp_path / (card + ".scratch"))
        monkeypatch.setattr(r, "MAX_JOINED_IN_MEMORY", 1 << 40)
        memory = recover(tmp_path / card, tmp_path / (card + ".memory"))
        monkeypatch.undo()
        assert scratch.rows == memory.rows and scratch.outputs == memory.outputs
    assert scratch.rows[0]["status"] != "complete"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"\x01", b"\xff").replace(
           b"\x02", b"\xd3")), st.integers(1, 40), st.integers(0, 20), st.integers(0, 300))
def test_a_search_a_chunk_at_a_time_finds_what_one_search_finds(data, chunk, pos, end):
    # Markers that straddle two chunks, FF FF D3, FF at the end: every match, once.
    real = r.DECODE_CHUNK
    r.DECODE_CHUNK = chunk
    try:
        for pattern in (r.RESTART_MARKER, r.JPEG_MARKER_AFTER_DATA):
            want = [m.span() for m in pattern.finditer(data, pos, end)]
            assert [m.span() for m in r.search_chunked(pattern, data, pos,
                                                       min(end, len(data)))] == want
    finally:
        r.DECODE_CHUNK = real


def test_salvaged_7z_streams_are_carved_without_scan_processes(tmp_path, monkeypatch):
    # A card of cut 7z archives: each one's salvaged stream is carved in the main
    # process (a file this run wrote), not by a pool of scan processes started and
    # stopped for each: thousands of them took minutes.
    import hostile
    (tmp_path / "card.img").write_bytes(hostile.many_cut_7z(1)[:3 * 4096] + bytes(4096))
    pools = []
    real = r.Dump._scan_processes

    def note_pool(self, jobs, options):
        pools.append(self.path)
        return real(self, jobs, options)

    monkeypatch.setattr(r.Dump, "_scan_processes", note_pool)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.rc == 0, out.log
    assert [row["type"] for row in out.rows] == ["7z"] * 3
    salvaged = sorted((tmp_path / "out").rglob("*.salvaged*"))
    assert len(salvaged) >= 3 and set(pools) == {str(tmp_path / "card.img")}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 9000), max_size=12), st.integers(0, 9000), st.integers(0, 9000))
def test_memmem_finds_ftyp_where_the_regular_expression_does(tmp_path_factory, places, first,
                                                             end):
    # The scan processes search their map with the C library's memmem where there is
    # one; every ftyp, at any byte, overlapping the bounds or not, is the same one.
    data = bytearray(noise_bytes(9004))
    for at in places:
        data[at:at + 4] = r.FTYP
    path = tmp_path_factory.mktemp("memmem") / "dump"
    path.write_bytes(bytes(data))
    with open(str(path), "rb") as f:
        import mmap
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if sys.platform.startswith("linux"):
        assert r.MEMMEM.function() is not None          # glibc has it: it is what runs
    try:
        assert list(r.MEMMEM.ftyps(buf, first, end)) == [
            hit.start() for hit in r.FTYP_SEARCH.finditer(bytes(data), first, end)]
    finally:
        buf.close()


def noise_bytes(size):
    from dumpkit import noise
    return noise(size, seed=size)
