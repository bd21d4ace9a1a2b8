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


DOCUMENTS = [PROJECT / "README.rst"] + sorted((PROJECT / "docs").glob("*.rst"))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_readme_and_docs_render_without_warnings(document):
    docutils_core = pytest.importorskip("docutils.core")
    import io
    warnings = io.StringIO()
    docutils_core.publish_string(document.read_text(encoding="utf-8"),
                                 writer_name="html",
                                 settings_overrides={"warning_stream": warnings,
                                                     "report_level": 2})
    assert warnings.getvalue() == ""


def test_the_readme_links_every_document_and_stays_short():
    readme = (PROJECT / "README.rst").read_text(encoding="utf-8")
    for document in DOCUMENTS[1:]:
        assert "<docs/%s>`_" % document.name in readme
    assert len(readme.encode("utf-8")) < 14000


def definitions(text, terms):
    """{term: its one-line definition} of an RST definition list in text."""
    found = {}
    for term in terms:
        match = re.search(r"^%s\n    (.+)$" % re.escape(term), text, re.M)
        found[term] = match.group(1) if match else None
    return found


def paragraph_after(text, heading):
    """The first paragraph under heading (its underline), as one line."""
    match = re.search(r"^%s\n[-=~]+\n(.+?)\n\n" % re.escape(heading), text, re.M | re.S)
    return " ".join(match.group(1).split()) if match else None


def test_the_readme_quotes_the_manual_on_verdicts_and_exit_status():
    """The module docstring is the manual the copied script carries: the verdicts'
    wording and the exit statuses are said there, and the README quotes them."""
    import recovercr3
    manual = recovercr3.__doc__
    readme = (PROJECT / "README.rst").read_text(encoding="utf-8")
    verdicts = ["complete", "truncated", "damaged", "repaired", "not saved"]
    assert None not in definitions(manual, verdicts).values()
    assert definitions(readme, verdicts) == definitions(manual, verdicts)
    assert paragraph_after(manual, "Exit status") is not None
    assert paragraph_after(readme, "Exit status") == paragraph_after(manual, "Exit status")


def test_every_option_the_documents_name_is_one_the_tool_has():
    """The options' one source is --help: what the README and docs/ name must be there,
    and docs/reference.rst holds no list of them of its own."""
    import recovercr3
    parser_options = set()
    for action in recovercr3.build_parser()._actions:
        parser_options.update(action.option_strings)
    for document in DOCUMENTS:
        if document.name == "speed.rst":
            continue                    # the bench scripts' options
        named = set(re.findall(r"``(--[a-z][a-z-]+)", document.read_text(encoding="utf-8")))
        assert named - parser_options == set(), document.name
    reference = (PROJECT / "docs" / "reference.rst").read_text(encoding="utf-8")
    assert not re.search(r"^``-i DUMP``", reference, re.M)


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


# --- the shape of recovercr3.py ---------------------------------------------------------

import sections  # noqa: E402


def test_no_section_uses_a_name_a_later_section_defines():
    source = SCRIPT.read_text(encoding="utf-8")
    heads = sections.sections(source)
    assert [number for _, number, _ in heads] == list(range(1, len(heads) + 1))
    assert len(heads) >= 20
    assert sections.forward_uses(source) == []


def test_the_section_check_sees_a_forward_use_even_inside_a_function():
    source = ("# 1. First ---\ndef early():\n    return LATE + len([])\n\n"
              "# 2. Second ---\nLATE = 1\n\ndef late(LATE_OWN=2):\n    LATE_OWN += early()\n")
    assert sections.forward_uses(source) == [(3, "LATE", 1, 2)]


def test_every_section_is_in_the_table_of_contents_and_says_what_it_owns():
    source = SCRIPT.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source))
    toc = re.findall(r"^ +([0-9]+)\. (.+)$", docstring.split("\n\n\n")[0], re.M)
    heads = sections.sections(source)
    assert [(int(n), title) for n, title in toc[:len(heads)]] == \
        [(number, title) for _, number, title in heads]
    lines = source.splitlines()
    silent = [(number, title) for line, number, title in heads
              if not lines[line].startswith("# ")]         # the line under the header
    assert silent == [], "these sections do not open with what they own"


def test_all_names_what_the_tests_and_bench_import():
    """__all__ is what tests and users may import: every name of the module the tests
    and bench scripts reach for is in it, and every name in it exists."""
    import recovercr3
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    defined, modules = set(), set()
    for node in tree.body:
        bound = sections._bound(node)
        if any(isinstance(sub, (ast.Import, ast.ImportFrom)) for sub in ast.walk(node)) \
                and not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            modules |= bound
        else:
            defined |= bound
    used = set()
    for path in [*(PROJECT / "tests").rglob("*.py"), *(PROJECT / "bench").glob("*.py")]:
        used |= set(re.findall(r"\b(?:r|recovercr3)\.([A-Za-z_][A-Za-z_0-9]*)",
                               path.read_text(encoding="utf-8")))
    used = {name for name in used if not name.startswith("__")}
    assert sorted((used & defined) - modules - set(recovercr3.__all__)) == []
    assert [name for name in recovercr3.__all__ if not hasattr(recovercr3, name)] == []
