"""The project is self-contained: nothing points at a file outside the repo, every docs/ page
that code or config names exists, the docs' own links resolve, and the config keys and
options docs/fidelity.md names as switches exist (so the fidelity table cannot go stale
silently when a key is renamed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import REPO, compose_config

DOCS = REPO / "docs"
SKIP_DIRS = {".git", ".venv", "outputs", "data", "multirun", "__pycache__", ".pytest_cache"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt"}
# background notes that were never part of the repo; citing them leaves readers stranded
OUTSIDE = re.compile(r"keras-port\.md|seed-experiment\.md|offline-assets\.md|\.\./shared/")
DOCS_PATH = re.compile(r"docs/[\w.-]+\.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")
GROUPS = ("model", "optimizer", "kernel", "gan_type", "dataset", "noise", "trainer", "fid",
          "logger", "keras")
# `model.bn_axis=keras\|channel`, `keras=2.1.3`, `optimizer.{d,g}.epsilon` (not `models.py`)
MISSING = object()
SWITCH = re.compile(r"`((?:%s)[.=][^`\n]*)`" % "|".join(GROUPS))


def repo_text_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in path.relative_to(REPO).parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return files


def hits(pattern: re.Pattern) -> list[tuple[str, int, str]]:
    found = []
    for path in repo_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in pattern.finditer(line):
                found.append((str(path.relative_to(REPO)), number, match.group(0)))
    return found


@pytest.mark.slow
def test_nothing_cites_files_outside_the_repo():
    here = Path(__file__).relative_to(REPO).as_posix()
    bad = [f"{path}:{number}: {text}" for path, number, text in hits(OUTSIDE) if path != here]
    assert not bad, "cite docs/fidelity.md, docs/provenance.md or docs/study.md instead:\n" + "\n".join(bad)


@pytest.mark.slow
def test_docs_pages_named_anywhere_exist():
    missing = sorted({f"{path}:{number}: {text}" for path, number, text in hits(DOCS_PATH)
                      if not (REPO / text).is_file()})
    assert not missing, "missing docs pages:\n" + "\n".join(missing)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs_links_resolve(page):
    bad = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            bad.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            bad.append(f"{target}: no heading with anchor #{anchor}")
    assert not bad, f"{page.name}: " + "; ".join(bad)


def expand(name: str) -> list[str]:
    """Brace expansion: optimizer.{d,g}.lr -> optimizer.d.lr, optimizer.g.lr."""
    match = re.search(r"\{([^{}]*)\}", name)
    if not match:
        return [name]
    return [expanded for choice in match.group(1).split(",")
            for expanded in expand(name[:match.start()] + choice + name[match.end():])]


def fidelity_switches() -> tuple[set[str], set[tuple[str, str]]]:
    """(config keys, (group, option) pairs) that docs/fidelity.md names in backticks."""
    keys, options = set(), set()
    for token in SWITCH.findall((DOCS / "fidelity.md").read_text()):
        for part in token.split(", "):
            name, eq, values = part.strip().partition("=")
            if name in GROUPS:
                values = values.replace("\\|", "|").split("|")
                options |= {(name, v) for v in values if re.fullmatch(r"[\w.]+", v)}
            else:
                keys |= {key for key in expand(name) if re.fullmatch(r"\w+(\.\w+)+", key)
                         and not key.endswith((".py", ".md", ".yaml"))}
    return keys, options


def test_fidelity_switches_exist():
    import gansweep.conf

    keys, options = fidelity_switches()
    assert keys and options, "docs/fidelity.md names no switches: the parser or the page changed"
    configs = [compose_config(), compose_config(["noise=normal"])]
    missing = [key for key in sorted(keys)
               if all(OmegaConf.select(cfg, key, default=MISSING) is MISSING for cfg in configs)]
    conf = Path(gansweep.conf.__file__).parent
    missing += [f"{group}={option}" for group, option in sorted(options)
                if not (conf / group / f"{option}.yaml").is_file()]
    assert not missing, "docs/fidelity.md names switches the config lacks: " + ", ".join(missing)


def test_long_modules_say_why():
    """No module over 400 lines without a line in its docstring saying why it is long."""
    import ast

    unexplained = []
    for path in sorted((REPO / "gansweep").rglob("*.py")):
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 400 and not re.search(r"\blong\b", doc, re.IGNORECASE):
            unexplained.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert not unexplained, "split these or say at the top why they are long:\n" + "\n".join(unexplained)


def test_readme_stays_short():
    """The README is the two commands and a map; the rest lives in docs/."""
    assert (REPO / "README.md").read_text().count("\n") <= 140
