"""Every test a document cites (``tests/test_x.py::test_name``, or ``::test_name`` after
one in the same table cell or sentence) exists: the failure tables in README.md and
docs/*.md stay backed by real tests."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
CITE = re.compile(r"(tests/test_\w+\.py)?::(test_\w+)")


def citations(text: str) -> list[tuple[str, str]]:
    """(test file, test name) pairs; a bare ``::name`` belongs to the file named last in
    the same table cell or line."""
    found = []
    for cell in re.split(r"\||\n", text):
        current = None
        for match in CITE.finditer(cell):
            current = match.group(1) or current
            if current is not None:
                found.append((current, match.group(2)))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_cited_tests_exist(doc):
    missing = [f"{path}::{name}" for path, name in citations(doc.read_text())
               if not (ROOT / path).is_file()
               or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)]
    assert not missing, f"{doc.name} cites tests that do not exist: {missing}"


def test_the_failure_tables_cite_tests():
    cited = {c for doc in DOCS for c in citations(doc.read_text())}
    assert len(cited) >= 20
