"""The project is self-contained: nothing points at a file outside the repo, every docs/ page
that code or config names exists, the docs' and the README's links resolve, every section
that code, config or docs cite by name (``docs/<page>.md, "Heading"``, ``README "Heading"``) is a
heading there, every ``gansweep.x.y`` named anywhere resolves, every repo path named exists,
and the config keys and options docs/fidelity.md names as switches exist (so none of these
pointers can go stale silently when a module, heading or key is renamed)."""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
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


def headings(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of a Markdown page's headings; a `#` line in a code block is none."""
    found, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append((number, line.lstrip("#").strip()))
    return found


def anchors(page: Path) -> set[str]:
    return {slug(text) for _, text in headings(page)}


PAGES = [*sorted(DOCS.glob("*.md")), REPO / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
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


# --- pointers by name: sections, modules, paths -------------------------------------------
# Where pointers are written: the code, the config, the docs (tests/ cite the same way but
# are checked by running them).
def pointer_files(*suffixes: str) -> list[Path]:
    files = [*sorted((REPO / "gansweep").rglob("*.py")), *sorted((REPO / "examples").rglob("*.py")),
             *sorted((REPO / "conf").rglob("*.yaml")), *PAGES]
    return [f for f in files if "__pycache__" not in f.parts and f.suffix in suffixes]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def one_line(text: str) -> str:
    """A phrase that wraps over lines (of prose or of `#` comments) as it reads."""
    return " ".join(re.sub(r"\n\s*#*", " ", text).split())


def heading_names(heading: str) -> set[str]:
    """What a heading may be cited as: itself, or its title before ": " or " (" (so
    "bf16 training" cites "bf16 training: speed and effect on results")."""
    heading = one_line(heading.replace("`", "")).casefold()
    return {heading, heading.split(": ")[0], heading.split(" (")[0]}


def section_line(page: Path, cited: str) -> int | None:
    """The line of the heading that `cited` names on `page`, or None."""
    cited = one_line(cited.replace("`", "")).casefold()
    return next((number for number, text in headings(page) if cited in heading_names(text)), None)


# README "Extending", (README, "Extending"), docs/study.md, "Networks", results.md ("2-D ...")
SEP = r"[,:]?[\s#]*\(?[\s#]*"
QUOTED = r'"([A-Za-z0-9`][^"\n]{0,80}(?:\n[^"\n]{0,80})?)"'
FILE_SECTION = re.compile(r"""(?<![\w/."'`-])(README(?:\.md)?|(?:docs/)?[\w-]+\.md)""" + SEP + QUOTED)
# in a page: (below, "bf16 training"), "Against the seed's own step" above, ("Earlier runs", below)
BELOW_ABOVE = re.compile(r"\b(above|below),?\s+" + QUOTED)
QUOTED_ABOVE = re.compile(QUOTED + r",?\s+(above|below)\b")
SEE_QUOTED = re.compile(r"\b[Ss]ee\s+" + QUOTED)
# "(see FID)", "see Reliability": a section by a bare word, which no reader can follow
SEE_BARE = re.compile(r"\b[Ss]ee\s+([A-Z][A-Za-z-]*)\b(?![\w./(\]\"`-])")


def cited_page(name: str) -> Path:
    if name.startswith("README"):
        return REPO / "README.md"
    return REPO / name if name.startswith("docs/") else DOCS / name


def section_references() -> list[tuple[str, Path, str, str | None]]:
    """(where, page cited, section, "above"/"below"/None) for every section cited by name."""
    refs = []
    for path in pointer_files(".py", ".yaml", ".md"):
        text = path.read_text()
        for match in FILE_SECTION.finditer(text):
            refs.append((f"{rel(path)}:{line_of(text, match.start())}",
                         cited_page(match.group(1)), match.group(2), None))
        if path.suffix != ".md":
            continue  # "above"/"below" in code point at code
        for pattern, section, direction in ((BELOW_ABOVE, 2, 1), (QUOTED_ABOVE, 1, 2),
                                            (SEE_QUOTED, 1, None)):
            for match in pattern.finditer(text):
                # a page named just before the quote is FILE_SECTION's: `docs/<page>.md, "Y" below`
                if pattern is not BELOW_ABOVE and FILE_SECTION.search(
                        text[max(0, match.start() - 40):match.end()]):
                    continue
                refs.append((f"{rel(path)}:{line_of(text, match.start())}", path,
                             match.group(section), match.group(direction) if direction else None))
    return refs


def test_cited_sections_exist():
    refs = section_references()
    assert len(refs) >= 10, "found almost no section references: the patterns or the pages changed"
    bad = []
    for where, page, section, direction in refs:
        if not page.is_file():
            bad.append(f'{where}: {rel(page)} (cited with "{one_line(section)}") does not exist')
            continue
        at = section_line(page, section)
        cited_from = int(where.rsplit(":", 1)[1])
        if at is None:
            bad.append(f'{where}: {rel(page)} has no heading "{one_line(section)}"')
        elif direction == "below" and at < cited_from or direction == "above" and at > cited_from:
            bad.append(f'{where}: "{one_line(section)}" is not {direction} (line {at})')
    assert not bad, "cited sections that are not there:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_section_cited_by_a_bare_word(page):
    """'(see FID)' names no page and no heading: cite a link or docs/<page>.md, "Heading"."""
    text = page.read_text()
    bad = [f"{rel(page)}:{line_of(text, m.start())}: {m.group(0)}"
           for m in SEE_BARE.finditer(text) if m.group(1) != "README"]
    assert not bad, "write a link or a quoted heading instead:\n" + "\n".join(bad)


DOTTED = re.compile(r"(?<![\w.])gansweep(?:\.[A-Za-z_]\w*)+")


def resolves(name: str) -> bool:
    """`name` imports as a module, or is an attribute reachable from the longest module
    prefix of it that imports (gansweep.fid.FidEvaluator, gansweep.runs.trainer.Run.train)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name + ".").startswith(exc.name + "."):
                continue  # no such module: try a shorter prefix
            raise  # the module exists but needs something missing: say so
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def names_that_are_not_python() -> set[str]:
    """gansweep.* names of other namespaces: OmegaConf resolvers (``${gansweep.dirname:...}``)
    and the MLflow tags gansweep sets (``gansweep.sweep_dir``), each found where it is made."""
    from omegaconf import OmegaConf

    import gansweep.runs.dirs  # noqa: F401 - registers the resolvers

    tags = set(re.findall(r"""["'](gansweep\.\w+)["']""", (REPO / "gansweep/runs/mlflow_logger.py").read_text()))
    candidates = {m.group(0) for path in pointer_files(".py", ".yaml", ".md")
                  for m in DOTTED.finditer(path.read_text())}
    return tags | {name for name in candidates if OmegaConf.has_resolver(name)}


def test_dotted_names_resolve():
    other = names_that_are_not_python()
    files = [*pointer_files(".py", ".yaml", ".md"), REPO / "setup.py", REPO / "pyproject.toml"]
    seen: dict[str, str] = {}
    for path in files:
        text = path.read_text()
        for match in DOTTED.finditer(text):
            seen.setdefault(match.group(0), f"{rel(path)}:{line_of(text, match.start())}")
    assert len(seen) > 50, "found almost no gansweep.* names: the pattern or the tree changed"
    bad = [f"{where}: {name}" for name, where in sorted(seen.items())
           if name not in other and not resolves(name)]
    assert not bad, "gansweep.* names that neither import nor are attributes:\n" + "\n".join(bad)


def prose(path: Path) -> str:
    """What a file says to a reader: a page or a YAML whole; of Python, its comments and
    docstrings (a string the code uses is the code's business)."""
    text = path.read_text()
    if path.suffix != ".py":
        return text
    said = [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            said.append(ast.get_docstring(node, clean=False) or "")
    return "\n".join(said)


# gansweep/fid/lenet.py, conf/experiment/seed_*.yaml, gansweep/report/studies/<study>.py
REPO_PATH = re.compile(r"(?<![\w/.-])((?:gansweep|conf|tests|examples|scripts)/[\w./*<>-]*)")


def test_repo_paths_named_exist():
    """Paths from the repo root (or, in examples/, from the example's own folder) exist; a
    `*` or a `<placeholder>` must match something."""
    bad = set()
    for path in pointer_files(".py", ".yaml", ".md"):
        for match in REPO_PATH.finditer(prose(path)):
            named = match.group(1).rstrip(".,-")
            pattern = re.sub(r"<[^<>/]*>", "*", named)
            roots = [REPO, path.parent] if rel(path).startswith("examples/") else [REPO]
            if not any(next(root.glob(pattern), None) if "*" in pattern else (root / named).exists()
                       for root in roots):
                bad.add(f"{rel(path)}: {named}")
    assert not bad, "paths named that are not in the repo:\n" + "\n".join(sorted(bad))


# docs/fidelity.md's "gansweep" column and the like: `models.py`: `KerasBatchNorm`, `tf_same_padding`
FILE_SYMBOLS = re.compile(r"`([\w/]+\.py)`: ((?:`[^`\n]+`(?:, )?)+)")


def test_symbols_named_in_files_are_there():
    """Each `file.py`: `name` in the docs: the file (under gansweep/ unless a path is given)
    exists and every part of each dotted name occurs in it."""
    bad, checked = [], 0
    for page in PAGES:
        text = page.read_text()
        for match in FILE_SYMBOLS.finditer(text):
            name = match.group(1)
            source = REPO / name if "/" in name else REPO / "gansweep" / name
            where = f"{rel(page)}:{line_of(text, match.start())}"
            if not source.is_file():
                bad.append(f"{where}: no {rel(source)}")
                continue
            code = source.read_text()
            for symbol in re.findall(r"`([^`]+)`", match.group(2)):
                if not re.fullmatch(r"\w+(\.\w+)*", symbol):
                    continue  # an expression, not a name
                checked += 1
                missing = [part for part in symbol.split(".") if not re.search(rf"\b{part}\b", code)]
                if missing:
                    bad.append(f"{where}: {symbol} is not in {rel(source)}")
    assert checked > 10, "found almost no `file.py`: `name` pointers: the pattern or the pages changed"
    assert not bad, "\n".join(bad)


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
