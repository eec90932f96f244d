"""The answer at the top of a results page, generated: ``python -m gansweep.report.summary_page``.

    python -m gansweep.report.summary_page docs/results/summary.yaml --report docs/results.md

A reader asks first whether the reproduction held. This block answers on one screen: a
study's presets beside its published numbers and ours at each budget measured, then each of
the study's observations (its module's ``OBSERVATIONS``) with the numbers that bear on it.
A spec (YAML) names the sources (a records folder, ``gansweep.report.records``, at one
budget; the card they ran on; the page's generated block they come from), the presets
table's columns and, per observation, which sources and metrics to read and the verdict.
Every number is read from the records with the analysis the linked blocks use
(``gansweep.report.publish.analyse``); the verdicts are the spec's words, a person's,
printed beside the numbers they rest on. The page must already hold the blocks: each
source links to its block's heading, and a block not generated from the source's records
is refused. Same records, spec and page, same bytes (tests/test_summary_page.py).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from gansweep.report import grouping, publish, studies
from gansweep.report.blocks import PublishError, check_page, markers, splice
from gansweep.report.markdown import finite, table

SECTION = "summary"
TITLE = "Did the reproduction hold?"


class SummaryError(ValueError):
    """The spec cannot be read as asked (an unknown source, claim or block)."""


@dataclass(frozen=True)
class Source:
    """One budget of one records folder, as the spec names it."""

    name: str
    records: Path
    epochs: int | None
    machine: str
    block: str


@dataclass(frozen=True)
class Spec:
    study: str
    title: str
    sources: dict[str, Source]
    columns: list[tuple[str, str]]  # the presets table: (source, metric)
    observations: list[tuple[str, list[tuple[str, str]], str]]  # claim, reads, verdict


def _reads(value, where: str, sources: dict) -> list[tuple[str, str]]:
    """'SOURCE METRIC' entries as (source, metric), each source one of ``sources``."""
    if not isinstance(value, list) or not value:
        raise SummaryError(f"{where}: a list of 'SOURCE METRIC' entries, not {value!r}. "
                           "Fix: e.g. [gpu26 fid_inception]")
    out = []
    for entry in value:
        parts = str(entry).split()
        if len(parts) != 2:
            raise SummaryError(f"{where}: {entry!r} is not 'SOURCE METRIC'. Fix: e.g. "
                               "'gpu26 fid_inception'")
        if parts[0] not in sources:
            raise SummaryError(f"{where}: source {parts[0]!r} is not under sources "
                               f"({', '.join(sources)}). Fix: name one of them or add it")
        out.append((parts[0], parts[1]))
    return out


def read_spec(path: Path) -> Spec:
    """The spec at ``path``; records folders are relative to its folder."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SummaryError(f"cannot read the spec {path} ({exc}). Fix: a readable YAML "
                           "file (docs/results/summary.yaml shows the keys)") from None
    if not isinstance(raw, dict) or not {"study", "sources", "presets",
                                          "observations"} <= set(raw):
        raise SummaryError(f"{path}: a mapping with study, sources, presets and observations. "
                           "Fix: see docs/results/summary.yaml")
    sources = {}
    for name, entry in (raw["sources"] or {}).items():
        entry = entry or {}
        if not isinstance(entry, dict) or not {"records", "machine", "block"} <= set(entry):
            raise SummaryError(f"sources.{name}: records, machine and block (epochs: "
                               "optional). Fix: see docs/results/summary.yaml")
        records = Path(path).parent / str(entry["records"])
        if not records.is_dir():
            raise SummaryError(f"sources.{name}.records: {records} is not a folder. Fix: a "
                               "records folder (python -m gansweep.report.records) beside "
                               "the spec")
        epochs = entry.get("epochs")
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise SummaryError(f"sources.{name}.epochs: {epochs!r} is not a number of epochs. "
                               "Fix: a positive integer, or leave it out for every budget")
        sources[str(name)] = Source(str(name), records, epochs, str(entry["machine"]),
                                    str(entry["block"]))
    observations = []
    for i, entry in enumerate(raw["observations"] or []):
        if not isinstance(entry, dict) or not {"claim", "read", "verdict"} <= set(entry):
            raise SummaryError(f"observations[{i}]: claim, read and verdict. Fix: see "
                               "docs/results/summary.yaml")
        observations.append((str(entry["claim"]),
                             _reads(entry["read"], f"observations[{i}].read", sources),
                             " ".join(str(entry["verdict"]).split())))
    return Spec(str(raw["study"]), str(raw.get("title") or TITLE), sources,
                _reads(raw["presets"], "presets", sources), observations)


# ----------------------------------------------------------------------------- the page
def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text (before de-duplication)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def block_anchors(page: str) -> dict[str, tuple[str, str]]:
    """Per generated block of ``page`` (by its section name): the anchor of its first heading
    (GitHub's, a repeated heading numbered -1, -2, ...) and the block's text."""
    seen: dict[str, int] = {}
    out, section, fenced, text = {}, None, False, []
    begin = re.compile(r"<!-- gansweep-table --report ?(\S*?): generated")
    for line in page.splitlines():
        opened = begin.match(line)
        if opened:
            section, text = opened.group(1), []
            out[section] = ("", "")
            continue
        if section is not None and line == markers(section or None)[1]:
            out[section] = (out[section][0], "\n".join(text))
            section = None
            continue
        if section is not None:
            text.append(line)
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            base = slug(line.lstrip("#"))
            anchor = base if base not in seen else f"{base}-{seen[base]}"
            seen[base] = seen.get(base, 0) + 1
            if section is not None and not out[section][0]:
                out[section] = (anchor, "")
    return out


def link_of(source: Source, blocks: dict[str, tuple[str, str]], page: Path) -> str:
    """The anchor of the block ``source`` names, after checking it reads the same records."""
    if source.block not in blocks:
        raise SummaryError(f"sources.{source.name}.block: {page} holds no generated block "
                           f"{source.block!r}. Fix: one of {', '.join(sorted(blocks)) or 'none'}")
    anchor, text = blocks[source.block]
    if not anchor:
        raise SummaryError(f"sources.{source.name}.block: block {source.block!r} of {page} "
                           "has no heading to link. Fix: generate it with a --title")
    if f"`{source.records.resolve().name}`" not in text:
        raise SummaryError(f"sources.{source.name}: block {source.block!r} of {page} is not "
                           f"generated from `{source.records.name}`. Fix: name the block "
                           "generated from these records")
    return anchor


# ----------------------------------------------------------------------------- the numbers
def label(source: Source, study: publish.Study) -> str:
    """'26 epochs, seed 0, one H200': the budget and seeds from the records, the card from
    the spec."""
    ok = study.frame[study.frame["status"] == "ok"]
    epochs = sorted({int(e) for e in ok["epochs_done"].dropna()})
    seeds = sorted({s for s in ok["seed"].dropna()}, key=grouping.order_key)
    ints = [int(s) for s in seeds] if all(finite(s) and float(s).is_integer()
                                          for s in seeds) else []
    if len(seeds) == 1:
        seed_text = f"seed {publish.seed_text(seeds[0])}"
    elif len(ints) == len(seeds) > 2 and ints == list(range(ints[0], ints[-1] + 1)):
        seed_text = f"seeds {ints[0]}-{ints[-1]}"
    else:
        seed_text = "seeds " + ", ".join(publish.seed_text(s) for s in seeds)
    budget = "/".join(map(str, epochs)) or "-"
    return f"{budget} epochs, {seed_text}, {source.machine}"


class Reader:
    """Each (source, metric) analysed once, as its block analyses it."""

    def __init__(self, spec: Spec):
        self.spec, self.cache = spec, {}

    def __call__(self, source: str, metric: str) -> publish.Study:
        if (source, metric) not in self.cache:
            s = self.spec.sources[source]
            try:
                self.cache[source, metric] = publish.analyse([s.records], metric,
                                                             epochs=s.epochs)
            except FileNotFoundError as exc:
                raise SummaryError(f"{source} {metric}: {exc}. Fix: read a metric these "
                                   "records hold") from None
        return self.cache[source, metric]


def rho_text(study: publish.Study) -> str:
    m = study.rho_means
    if math.isnan(m["rho"]):
        return f"- ({m['n']} settings)"
    return f"{m['rho']:.2f}" + ("" if math.isnan(m["low"]) else
                                f" [{m['low']:.2f}, {m['high']:.2f}]")


def presets_table(spec: Spec, read: Reader, links: dict[str, str], module) -> str:
    columns = [(source, metric, read(source, metric)) for source, metric in spec.columns]
    rows: dict[str, dict] = {}
    for _, _, study in columns:
        for _, g in study.groups.iterrows():
            row = rows.setdefault(g["group"], {"published": g["published"],
                                               "row": publish.study_row(g, study.frame)})
            if pd.isna(row["published"]):
                row["published"] = g["published"]
    order = sorted(rows, key=lambda k: (pd.isna(rows[k]["published"]),
                                        rows[k]["published"] if pd.notna(rows[k]["published"])
                                        else 0, k))
    published = pd.Series([rows[k]["published"] for k in order], dtype=float)
    study_rank = published.rank(method="min")
    header = ["preset", "the study's row", f"{module.PUBLISHED_LABEL} (rank)"] + [
        f"[`{metric}`, {label(spec.sources[source], study)}](#{links[source]})"
        for source, metric, study in columns]
    body = []
    for i, name in enumerate(order):
        cells = [name, rows[name]["row"], "-" if pd.isna(published[i]) else
                 f"{published[i]:g} ({int(study_rank[i])})"]
        for _, metric, study in columns:
            found = study.groups[study.groups["group"] == name]
            g = found.iloc[0] if len(found) else None
            text = "not run" if g is None else module.value_text(g, metric)
            cells.append(text if g is None or text == "-" else
                         f"{text} ({grouping.rank_text(g)})")
        body.append(cells)
    body.append(["rank agreement with the study (Spearman rho)", "", ""]
                + [rho_text(study) for _, _, study in columns])
    return table(header, body)


def render(spec: Spec, page: Path) -> str:
    """The block's markdown, its links to the blocks of ``page``."""
    module = studies.load(spec.study)
    missing = [a for a in ("OBSERVATIONS", "observe", "value_text") if not hasattr(module, a)]
    if missing:
        raise SummaryError(f"study {spec.study}: its module has no {', '.join(missing)}, so it "
                           "names no observations to answer. Fix: a study that does (keras2018)")
    blocks = block_anchors(page.read_text())
    used = dict.fromkeys([s for s, _ in spec.columns]
                         + [s for _, reads, _ in spec.observations for s, _ in reads])
    links = {s: link_of(spec.sources[s], blocks, page) for s in used}
    read = Reader(spec)
    folders = ", ".join(f"`{r}`" for r in dict.fromkeys(
        spec.sources[s].records.resolve().name for s in used))
    lines = [f"## {spec.title}", "",
             f"Generated by `python -m gansweep.report.summary_page` from the records in "
             f"{folders}, read as the linked blocks read them: ours at the final epoch of each "
             "budget, mean ± half the 95% Student-t interval over the seeds that finished; "
             "(rank) among the presets of the column, `=`: its interval overlaps another's "
             "(one seed has none). The verdicts are a person's words, beside the numbers "
             "they rest on.", "", presets_table(spec, read, links, module), "",
             "### The study's observations", ""]
    for claim, reads, verdict in spec.observations:
        if claim not in module.OBSERVATIONS:
            raise SummaryError(f"observation {claim!r} is not one of study {spec.study}'s. "
                               f"Fix: one of {', '.join(module.OBSERVATIONS)}")
        lines.append(f"- **{module.OBSERVATIONS[claim]}** {verdict}")
        by_source: dict[str, list[str]] = {}  # a line per source, its metrics in turn
        for source, metric in reads:
            try:
                said = module.observe(claim, read(source, metric))
            except ValueError as exc:
                raise SummaryError(f"{claim}: {exc}") from None
            by_source.setdefault(source, []).append(said)
        for source, texts in by_source.items():
            first = next(metric for s, metric in reads if s == source)
            lines.append(f"  - [{label(spec.sources[source], read(source, first))}]"
                         f"(#{links[source]}): " + "; ".join(texts))
    return "\n".join(lines)


def publish_summary(spec_path: Path | str, report: Path | str) -> str:
    """Write the block into ``report`` (a page holding its markers and the linked blocks);
    return the block."""
    report = Path(report)
    spec = read_spec(Path(spec_path))
    if not report.is_file():
        raise SummaryError(f"{report} is not a page: the summary links the blocks it holds. "
                           "Fix: name the results page (docs/results.md)")
    check_page(report, SECTION)
    block = render(spec, report)
    report.write_text(splice(report, block, SECTION))
    return block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gansweep.report.summary_page",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="the summary's spec (docs/results/summary.yaml)")
    parser.add_argument("--report", type=Path, required=True,
                        help="the page: holds the block's markers and the blocks it links")
    args = parser.parse_args(argv)
    try:
        publish_summary(args.spec, args.report)
    except (SummaryError, PublishError, studies.StudyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {exc.filename or args.report} ({exc.strerror or exc}). "
              "Fix: free space or permissions there", file=sys.stderr)
        return 1
    print(f"Report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
