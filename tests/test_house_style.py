"""House style of everything that ships: the project speaks about its product only, in British spelling,
and result files carry no absolute paths of the machine that wrote them.

Scanned: README, CHANGELOG, DEVELOPERS, docs/, benchmarks/, examples/, index/, training/ (text results and
recipes), the package (model cards, data notes, configs; in Python the comments and string literals, so that
code identifiers such as SQLAlchemy's ``Session`` or pytest's ``scope="session"`` are not prose) and tests/.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".md", ".py", ".toml", ".sh", ".json", ".jsonl", ".txt", ".cfg", ".ini", ""}
SCANNED = ("README.md", "CHANGELOG.md", "DEVELOPERS.md", "docs/", "benchmarks/", "examples/", "index/", "training/",
           "crystalsearch/", "tests/", ".ci/")  # fmt: skip
THIS = Path(__file__).resolve()
VENDORED = ("crystalsearch/html/static/3Dmol",)  # other projects' files shipped as they are (with their licence)

# -- words about how the work was organised, not about the product ------------------------------------------------
PROCESS = re.compile(
    r"\bsessions?\b"  # "session 5", "this session"
    r"|\bissues?[- ]?#?\d+"  # "issue 14", "issue-14", "issues 12"
    r"|\b(?:the|this|that) issue\b|\bissue's\b"  # "the issue asks"
    r"|\bhelpers?\b"  # "a helper", "helpers"
    r"|\bsitting\b",
    re.IGNORECASE,
)
# Legitimate uses of "session": other libraries' and the operating system's sessions, named as such.
PROCESS_ALLOWED = re.compile(
    r"\b(?:SQLAlchemy|ORM|database|pytest|POSIX|process) sessions?\b|\bsession-scoped\b|^[\"']session[\"']$",
    re.IGNORECASE,
)

# -- American spellings of our own words (British throughout) -----------------------------------------------------
AMERICAN = re.compile(
    r"\b(?:normaliz|standardiz|optimiz|analyz|organiz|recogniz|initializ|serializ|visualiz|summariz|minimiz|"
    r"maximiz|parameteriz|featuriz|characteriz|randomiz|vectoriz|regulariz|generaliz|utiliz|prioritiz|"
    r"emphasiz|categoriz|customiz|stabiliz|symmetriz|tokeniz|behavior|color|center|neighbor|"
    r"labeled|labeling|modeling|favor|honor|gray|fiber)\w*",
    re.IGNORECASE,
)
# Other projects' names that keep their spelling (the text around them is still British). Identifiers with an
# underscore or a dot (``n_neighbors``, ``get_all_neighbors``, ``StandardScaler``...) are code, not prose.
THIRD_PARTY = {
    "featurize",  # matminer's method and class family (BaseFeaturizer)
    "featurizer",
    "featurizers",
    "characterization",  # the title of a cited paper (crystalsearch/data/NOTICE)
}
AMERICAN_ALLOWED_CONTEXT = re.compile(
    r"NearestNeighbors|kneighbors|--n-neighbors"  # sklearn; UMAP's n_neighbors as `plot umap` names it
    r"|\b(?:background-)?color\s*[:=]|text-align|(?:lower|upper) center"  # CSS; matplotlib keywords and locations
    r"|CrystalNN\w*|SpacegroupAnalyzer|Optimizer\b"  # pymatgen, matminer, torch class names
)

# -- absolute paths of the machine that wrote a result ------------------------------------------------------------
ABSOLUTE = re.compile(r"(?<![\w.~])/(?:work|tmp|root|home|Users)/[\w.-]")
RESULT_ROOTS = ("training/", "index/", "docs/", "crystalsearch/models/")


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", *SCANNED], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S607 - git from PATH, fixed arguments
    if out.returncode != 0:  # not a git checkout (an sdist): scan the folders as they are
        files = [p for s in SCANNED for p in ((ROOT / s).rglob("*") if s.endswith("/") else [ROOT / s])]
    else:
        files = [ROOT / line for line in out.stdout.splitlines()]
    return [p for p in files if p.is_file() and p.suffix in TEXT_SUFFIXES and p.resolve() != THIS
            and not _rel(p).startswith(VENDORED)]  # fmt: skip


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def _python_prose(text: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and string literal of a Python source."""
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
        elif re.fullmatch(r"[rbuRBU]?([\"'])\w*\1", tok.string):
            continue  # a key or a name ("normalized" in a stored manifest), not prose
        elif tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            for i, line in enumerate(tok.string.splitlines()):
                yield tok.start[0] + i, line


def prose(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """The human-language text of a file, line by line (Python: comments and strings only)."""
    if path.suffix == ".py":
        try:
            yield from _python_prose(text)
            return
        except (tokenize.TokenError, SyntaxError):
            pass
    yield from enumerate(text.splitlines(), start=1)


def _strip_code(line: str) -> str:
    """A line without markdown code spans and without identifiers (words joined by ``_``, ``.`` or ``=``)."""
    line = re.sub(r"``.*?``|`[^`]*`", " ", line)
    return re.sub(r"\w*[_.=]\w[\w.=]*", " ", line)


def process_words(path: Path, text: str) -> list[str]:
    found = []
    for n, line in prose(path, text):
        for m in PROCESS.finditer(line):
            if PROCESS_ALLOWED.search(line.strip()):
                continue
            found.append(f"{_rel(path)}:{n}: {m.group()!r} in {line.strip()[:100]!r}")
    return found


def american_spellings(path: Path, text: str) -> list[str]:
    found = []
    for n, line in prose(path, text):
        if AMERICAN_ALLOWED_CONTEXT.search(line):
            line = AMERICAN_ALLOWED_CONTEXT.sub(" ", line)
        for m in AMERICAN.finditer(_strip_code(line)):
            if m.group() not in THIRD_PARTY:
                found.append(f"{_rel(path)}:{n}: {m.group()!r} in {line.strip()[:100]!r}")
    return found


def absolute_paths(path: Path, text: str) -> list[str]:
    return [f"{_rel(path)}:{n}: {line.strip()[:100]!r}" for n, line in enumerate(text.splitlines(), 1)
            if ABSOLUTE.search(line)]  # fmt: skip


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


@pytest.fixture(scope="module")
def files() -> list[tuple[Path, str]]:
    found = [(p, _read(p)) for p in _tracked()]
    assert len(found) > 100  # the scan sees the project
    return found


def test_the_project_speaks_about_its_product_only(files: list[tuple[Path, str]]) -> None:
    bad = [hit for p, text in files for hit in process_words(p, text)]
    assert not bad, "process words in shipped text:\n" + "\n".join(bad)


def test_british_spelling(files: list[tuple[Path, str]]) -> None:
    bad = [hit for p, text in files if p.suffix != ".jsonl" for hit in american_spellings(p, text)]
    assert not bad, "American spellings (British throughout):\n" + "\n".join(bad)


def test_result_files_record_no_machine_paths(files: list[tuple[Path, str]]) -> None:
    rel = [(p, t) for p, t in files if str(p.relative_to(ROOT)).startswith(RESULT_ROOTS)]
    bad = [hit for p, text in rel for hit in absolute_paths(p, text)]
    assert not bad, "absolute machine paths in result files:\n" + "\n".join(bad)


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    last = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert last.startswith("pip install torch") and "pytest" in last
    assert f"\n{last}\n" in readme


# -- the checks themselves catch what they are for ----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "The heads were retrained in session 6.",
        "Calibrated intervals (issue 14 items 2, 3, 5).",
        "the issue asks for 2 of 3",
        "a helper wrote this table",
        "results from this sitting",
        "# Issue-9 protocol",
    ],
)
def test_planted_process_words_are_caught(tmp_path: Path, line: str) -> None:
    md = tmp_path / "notes.md"
    assert process_words(md, f"# Notes\n\n{line}\n")
    py = tmp_path / "mod.py"
    assert process_words(py, f'"""Module."""\n\nX = 1  # {line}\n')
    assert process_words(py, f'def f() -> None:\n    """{line}"""\n')


@pytest.mark.parametrize(
    "source",
    [
        'import pytest\n\n\n@pytest.fixture(scope="session")\ndef x() -> int:\n    return 1\n',
        "from sqlalchemy.orm import Session\n\n\ndef s(engine) -> Session:\n    return Session(engine)\n",
        '"""Rows of one SQLAlchemy session; see pymatgen#2593 and issues/2593 upstream."""\n',
        "# workers start in POSIX sessions of their own (setsid)\n",
    ],
)
def test_legitimate_uses_pass(tmp_path: Path, source: str) -> None:
    assert not process_words(tmp_path / "ok.py", source)


def test_planted_spellings_and_paths_are_caught(tmp_path: Path) -> None:
    md = tmp_path / "README.md"
    assert american_spellings(md, "Embeddings are normalized before the search.\n")
    assert american_spellings(md, "The behavior of the flag.\n")
    assert not american_spellings(md, "Embeddings are normalised; `sklearn.preprocessing.normalize`, n_neighbors.\n")
    py = tmp_path / "plot.py"
    assert not american_spellings(py, 'ax.scatter(x, y, color="k")  # colour by class\n')
    assert american_spellings(py, "# color by class\n")
    assert absolute_paths(md, '"heads": "/work/main/crystalsearch/models/heads/band_gap"\n')
    assert absolute_paths(md, "crystalsearch train heads --out /tmp/heads/x\n")
    assert not absolute_paths(md, '"heads": "crystalsearch/models/heads/band_gap"\n')
