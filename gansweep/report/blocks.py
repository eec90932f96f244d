"""A generated block in a hand-written markdown page: two marker lines, and only what lies
between them is replaced (gansweep-table --report and --against write such blocks; the prose
around them stays the author's)."""

from __future__ import annotations

import re
from pathlib import Path

# a section names the markers and the figures' files: no path, nothing that ends a comment
SECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*(-[A-Za-z0-9_.]+)*")


class PublishError(ValueError):
    """The report cannot be written as asked (e.g. an existing page without the markers)."""


def check_section(section: str | None) -> None:
    """PublishError unless ``section`` is empty or a safe name (letters, digits, '.', '_' and
    single '-' between them, at most 64): it goes into file names and an HTML comment."""
    if section and (len(section) > 64 or not SECTION.fullmatch(section)):
        raise PublishError(f"--section {section!r} is not a safe name. Fix: letters, digits, "
                           "'.', '_' and '-' (not leading, not doubled), e.g. --section seed5ep")


def write_probe(folder: Path) -> OSError | None:
    """None if ``folder`` can be created and a file written in it, else the OSError that
    says why (so a read-only folder is refused before any file is written)."""
    probe = folder / ".gansweep-write-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return exc
    return None


def check_page(path: Path, section: str | None, figures: Path | None = None) -> None:
    """PublishError now, before anything is drawn or written, where ``splice`` would refuse
    the page (an existing file without the block's markers), ``section`` is unsafe, or the
    page's or the figures' folder cannot be written."""
    check_section(section)
    if path.exists():
        splice(path, "", section)
    for folder, option in ((path.parent, "--report"), (figures, "--figures")):
        # one still to be made is made later (an error then is one line too)
        if folder is not None and folder.is_dir() and (exc := write_probe(folder)) is not None:
            raise PublishError(f"cannot write into {folder} ({exc.strerror or exc}). "
                               f"Fix: a writable {option} path")


def markers(section: str | None) -> tuple[str, str]:
    name = f" {section}" if section else ""
    return (f"<!-- gansweep-table --report{name}: generated from the sweep dirs, "
            "rerun the command instead of editing -->",
            f"<!-- end of gansweep-table --report{name} -->")


def splice(path: Path, block: str, section: str | None) -> str:
    """The page with ``block`` between its markers (a new page: just the block)."""
    begin, end = markers(section)
    text = f"{begin}\n{block}\n{end}"
    if not path.exists():
        return text + "\n"
    old = path.read_text()
    start = old.find(begin)
    stop = old.find(end, start) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise PublishError(f"{path} exists without the markers of a generated block; put\n"
                           f"{begin}\n{end}\non their own lines where the block goes, or "
                           "write to a new file")
    return old[:start] + text + old[stop + len(end):]
