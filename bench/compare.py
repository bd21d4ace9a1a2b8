#!/usr/bin/env python3
"""Two versions of recovercr3 on the same cards and dumps: are their reports the same?

    python3 bench/compare.py --before OLD/recovercr3.py [--after recovercr3.py]
                             [--seeds 1-20] [--scenarios deletions,formatted]
                             [--shapes 512:4096,2100:32768] [--dumps A.img,B.img]
                             [--options "--name-by original"] [--workdir DIR]
                             [--hostile all|none]

Each card is built by ../shared/bench/mkcard.py (as bench/sweep.py builds them: same
media and seed, same card); --dumps adds any other images, and --hostile the hostile
dumps of tests/hostile.py (at their default sizes). The before version's report of
each image is kept in the work directory, under the sha256 of that script, so a second
comparison against the same before runs the after version alone. Both versions run on each
with the same options; the row says whether the two reports are identical byte for
byte (the file names, offsets, verdicts, details and sha256 of every file) and how
long each run took. Cards over --keep-cards-mb are deleted after use, outputs always.
A change meant to keep behaviour (a faster decoder, a rebuilt file) must leave every
row "same"; the exit status is 1 when any differs.
"""

import argparse
import filecmp
import hashlib
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sweep  # noqa: E402  (its cards, seeds and shapes)
sys.path.insert(0, str(HERE.parent / "tests"))
import hostile  # noqa: E402  (its dumps)


def run(script, image, out, options):
    """(wall seconds, exit status) of one run into out (made empty first)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.monotonic()
    status = subprocess.run([sys.executable, str(script), "-q", "-i", str(image), "-o",
                             str(out)] + options, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode
    return time.monotonic() - start, status


def hostile_dump(workdir, name):
    """The dump of tests/hostile.py's case name, built once into workdir."""
    path = workdir / "hostile" / (hashlib.sha256(name.encode()).hexdigest()[:12] + ".img")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hostile.CASES[name]())
    return path


def before_report(script, workdir, name, image, options):
    """(report path or None, wall seconds or 0 when kept, exit status) of the before run."""
    key = hashlib.sha256(script.read_bytes() + repr(options).encode()).hexdigest()[:12]
    kept = workdir / ("before-" + key) / hashlib.sha256(name.encode()).hexdigest()[:16]
    if not (kept / "status").is_file():
        out = workdir / "compare-before"
        wall, status = run(script, image, out, options)
        kept.mkdir(parents=True, exist_ok=True)
        report = out / "recovercr3-report.csv"
        if report.is_file():
            shutil.copy(str(report), str(kept / "report.csv"))
        (kept / "status").write_text(str(status))
        shutil.rmtree(out, ignore_errors=True)
    else:
        wall = 0.0
    report = kept / "report.csv"
    return (report if report.is_file() else None), wall, int((kept / "status").read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, default=HERE.parent / "recovercr3.py")
    p.add_argument("--seeds", type=sweep.seeds, default=sweep.seeds("1-20"))
    p.add_argument("--scenarios", default="deletions,formatted")
    p.add_argument("--shapes", type=sweep.shapes, default=sweep.shapes("512:4096,2100:32768"))
    p.add_argument("--dumps", default="", help="comma-separated images to compare on too")
    p.add_argument("--options", default="--name-by original",
                   help="recovercr3 options for both runs")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/recovercr3-sweep"))
    p.add_argument("--keep-cards-mb", type=int, default=600)
    p.add_argument("--hostile", default="all", choices=["all", "none"])
    a = p.parse_args()
    if not sweep.MEDIA.is_dir():
        subprocess.run(["bash", str(sweep.BENCH / "media.sh"), str(sweep.MEDIA)], check=True)
    options = shlex.split(a.options)
    images = [(Path(d).name, Path(d), False) for d in a.dumps.split(",") if d]
    if a.hostile == "all":
        images += [("hostile: " + name, None, False) for name in hostile.CASES]
    for size_mb, cluster in a.shapes:
        for scenario in filter(None, a.scenarios.split(",")):
            for seed in a.seeds:
                name = "%s_%d_%d_%d" % (scenario, size_mb, cluster, seed)
                card = a.workdir / "cards" / (name + ".img")
                images.append((name, card, size_mb > a.keep_cards_mb))
    print("image\treports\tbefore_s\tafter_s\tbefore_rc\tafter_rc", flush=True)
    differ = 0
    for name, image, throw_away in images:
        if image is None:
            image = hostile_dump(a.workdir, name.split(": ", 1)[1])
        elif not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            scenario, size_mb, cluster, seed = name.rsplit("_", 3)
            sweep.make_card(image, scenario, int(size_mb), int(cluster), int(seed))
        before, wall_b, rc_b = before_report(a.before, a.workdir, name, image, options)
        out = a.workdir / "compare-after"
        wall_a, rc_a = run(a.after, image, out, options)
        reports = [before, out / "recovercr3-report.csv"]
        same = (rc_a == rc_b and before is not None and reports[1].is_file()
                and filecmp.cmp(str(reports[0]), str(reports[1]), shallow=False))
        differ += not same
        if not same:
            kept = a.workdir / ("differs-" + name)
            shutil.rmtree(kept, ignore_errors=True)
            kept.mkdir(parents=True)
            for which, report in zip(("before", "after"), reports):
                if report is not None and report.is_file():
                    shutil.copy(str(report), str(kept / (which + ".csv")))
        print("%s\t%s\t%.2f\t%.2f\t%d\t%d" % (name, "same" if same else "DIFFER", wall_b,
                                              wall_a, rc_b, rc_a), flush=True)
        shutil.rmtree(out, ignore_errors=True)
        if throw_away:
            for path in (image, Path(str(image) + ".truth.tsv")):
                if path.exists():
                    path.unlink()
    print("%d of %d images give the same report" % (len(images) - differ, len(images)))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
