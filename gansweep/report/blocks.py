"""A generated block in a hand-written markdown page: two marker lines, and only what lies
between them is replaced (gansweep-table --report and --against write such blocks; the prose
around them stays the author's)."""

from __future__ import annotations

from pathlib import Path


class PublishError(ValueError):
    """The report cannot be written as asked (e.g. an existing page without the markers)."""


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
