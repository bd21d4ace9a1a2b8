"""Promises about the project itself: one stdlib file, and CI runs the README's tests."""

import ast
import re
import subprocess
import sys

import pytest

from conftest import PROJECT, SCRIPT


def test_script_imports_only_the_standard_library():
    if not hasattr(sys, "stdlib_module_names"):
        pytest.skip("needs Python 3.10+ to list the standard library")
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names)


def readme_test_command():
    text = (PROJECT / "README.rst").read_text(encoding="utf-8")
    block = re.search(r"Run the tests.*?::\n\n((?:    [^\n]+\n)+)", text, re.S)
    assert block, "README.rst has no 'Run the tests ...::' block"
    return [line.strip() for line in block.group(1).splitlines()]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (PROJECT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = readme_test_command()
    start = ci.index(commands[0])
    assert ci[start:start + len(commands)] == commands


def vermin(path):
    """Run vermin's 3.8 check on path; returns (exit code, output)."""
    pytest.importorskip("vermin")
    p = subprocess.run([sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())",
                        "--no-tips", "--violations", "-t=3.8-", str(path)],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_script_needs_nothing_newer_than_python_3_8(tmp_path):
    rc, output = vermin(SCRIPT)
    assert rc == 0, output
    newer = tmp_path / "newer.py"
    newer.write_text("print('img1.cr3'.removesuffix('.cr3'))\n")     # a 3.9 method
    assert vermin(newer)[0] != 0


def test_readme_renders_without_warnings():
    docutils_core = pytest.importorskip("docutils.core")
    import io
    warnings = io.StringIO()
    docutils_core.publish_string((PROJECT / "README.rst").read_text(encoding="utf-8"),
                                 writer_name="html",
                                 settings_overrides={"warning_stream": warnings,
                                                     "report_level": 2})
    assert warnings.getvalue() == ""


def test_the_projects_own_corpus_is_what_its_manifest_says():
    # tests/corpus: the files a clone tests itself with, each with its source and a
    # licence that lets it be shipped (the texts in tests/corpus/LICENSES).
    import csv
    import hashlib
    corpus = PROJECT / "tests" / "corpus"
    with open(str(corpus / "MANIFEST.tsv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    files = sorted(p.name for p in corpus.iterdir() if p.is_file() and p.name != "MANIFEST.tsv")
    assert sorted(row["file"] for row in rows) == files
    for row in rows:
        data = (corpus / row["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(row["bytes"]), row["sha256"])
        assert re.match(r"(MIT|BSD|Apache|CC0|free to use)", row["license"]), row["file"]
        assert "@" in row["source"]                 # repository:path@commit
