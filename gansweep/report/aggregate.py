"""The comparison table of a sweep, as files: ``gansweep-table`` and the multirun callback.

    gansweep-table outputs/multirun/2026-11-28_10-00-00 [more sweep or run dirs ...]

Works on any sweep dir, finished or not: a job's status comes from its summary.json
(ok, running, diverged, failed with the first line of its error, interrupted), ``stopped``
for a job whose process died without a word (resumable), ``missing`` for a job dir
without a summary. Writes, into the (first) dir: ``table.csv``, ``table.md`` (sample grids
linked), ``table.html`` (self-contained report: ranking chart, compact table, every column
one click away; ``gansweep.report.render``), ``montage.png`` (final grids side by side, labelled),
``ranking.png`` and each job's ``curves.png``. Rows that differ only in seed are grouped
(``gansweep.report.grouping``: mean, std, n, 95% Student-t interval per metric, ranks with ties):
``table_groups.csv``, the first section of ``table.md``/``table.html`` when some setting has
several seeds, and the sweep's
``curves_<metric>.png`` and ``precision_recall_<extractor>.png`` (``gansweep.report.plots``).
The rows come from ``gansweep.report.table``; runs that name a published study
(``reference.study``) get its columns and findings (``gansweep.report.studies``).
Runs automatically at the end of every multirun (``AggregateCallback``).

    gansweep-table <sweep dirs ...> --report docs/results.md [--figures docs/results] ...

writes instead a study's generated markdown block (over seeds, beside the published ranking,
with figures) and nothing into the sweep dirs: ``gansweep.report.publish``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback

from gansweep.report import (blocks, grouping, halving, plots, publish, render, search,
                             search_page)
from gansweep.report.studies import StudyError
from gansweep.report.table import collect, findings, frame_studies, primary_metric

__all__ = ["aggregate", "collect", "primary_metric", "AggregateCallback", "main"]


class OutputError(OSError):
    """The table's output folder cannot be written."""


def unwritable(out: Path, exc: OSError) -> OutputError:
    """The one line for a table that cannot be written (a read-only sweep dir, a full disk)."""
    named = exc.filename and Path(exc.filename) not in (out, out / ".gansweep-write-probe")
    where = f"{exc.filename}: " if named else ""
    return OutputError(f"cannot write the table into {out} ({where}{exc.strerror or exc}). "
                       "Fix: choose a writable folder with --out")


def aggregate(roots: list[Path | str], out_dir: Path | str | None = None,
              echo: bool = True) -> pd.DataFrame:
    roots = [Path(r) for r in roots]
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a sweep or run directory")
    out = Path(out_dir) if out_dir else roots[0]
    if (exc := blocks.write_probe(out)) is not None:  # before any file is written
        raise unwritable(out, exc)
    frame = collect(roots)
    if frame.empty:
        raise FileNotFoundError(f"no jobs (folders with .hydra/ or summary.json) under "
                                f"{', '.join(map(str, roots))}")
    try:
        return _write(frame, roots, out, echo)
    except OutputError:
        raise
    except OSError as exc:  # e.g. the disk filled up half-way
        raise unwritable(out, exc) from None


def _write(frame: pd.DataFrame, roots: list[Path], out: Path, echo: bool) -> pd.DataFrame:
    """The table files into ``out`` and each job's curves.png into its dir (where it can)."""
    unwritten = []
    for path in frame["path"]:  # each job's curves.png, in its own dir
        try:
            plots.plot_curves(Path(path))
        except OSError as exc:
            unwritten.append(f"{path} ({exc.strerror or exc})")
    if unwritten:  # a read-only sweep tabled elsewhere with --out: the table still comes
        print(f"warning: curves.png not written into {len(unwritten)} job dir(s), e.g. "
              f"{unwritten[0]}; the table files are written to {out}", file=sys.stderr)
    metric = primary_metric(frame)
    studies = frame_studies(frame)
    settings = tuple(c for s in studies for c in s.SETTINGS)
    published = [(s.PUBLISHED, s.PUBLISHED_LABEL) for s in studies]
    notes = findings(frame)
    frame.to_csv(out / "table.csv", index=False)
    groups = grouping.group_seeds(frame, metric, settings)
    groups.to_csv(out / "table_groups.csv", index=False)
    chart = plots.ranking_chart(groups, metric, out, published)
    metric_cols = grouping.metric_columns(frame)
    pictures = plots.metric_curves(groups, metric_cols, out) + plots.precision_recall(groups, out)
    # the over-seeds table only where some setting has several seeds (as table.html): with one
    # seed per setting every interval is unknown and it would repeat the runs as ties
    seeded = bool(len(groups)) and int(groups["jobs"].max()) > 1
    markdown = (f"## Settings over seeds\n\n{render.groups_markdown(groups, settings)}\n\n"
                f"## Per seed\n\n{render.runs_markdown(frame, out)}" if seeded else
                f"## Runs\n\n{render.runs_markdown(frame, out)}")
    rungs = halving.markdown(roots[0])  # a successive-halving sweep's rungs
    if rungs:
        markdown = f"{rungs}\n\n{markdown}"
    (out / "table.md").write_text(markdown + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    plots.montage(frame, out / "montage.png", metric)
    compact = tuple(c for s in studies for c in s.COMPACT)
    (out / "table.html").write_text(render.to_html(
        frame, groups, notes, f"gansweep: {out}", chart, pictures, metric, compact, settings,
        halving.html_parts(roots[0])))
    if echo:  # the answer in a few lines; every column is in table.md / table.html
        print(render.summary_text(groups, metric, published, notes))
        print(f"\nTable: {out / 'table.md'} | {out / 'table.html'} | {out / 'table.csv'} "
              f"(per seed) | {out / 'table_groups.csv'} (over seeds)")
    return frame


class AggregateCallback(Callback):
    """Hydra callback: build the comparison table when a multirun ends."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            try:
                aggregate([sweep_dir])
            except Exception as exc:  # noqa: BLE001 - a table problem must not fail the sweep
                print(f"gansweep-table failed on {sweep_dir}: {exc}", file=sys.stderr)


class _Hidden:
    """An argument group whose options parse but stay out of ``--help``: gansweep-table's
    page-publishing options, which ``gansweep-table-report --help`` shows."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser

    def add_argument(self, *args, **kwargs):
        return self.parser.add_argument(*args, **{**kwargs, "help": argparse.SUPPRESS})


def report_main(argv: list[str] | None = None) -> int:
    """``gansweep-table-report``: a results page's generated blocks (``--report PATH``), the
    options ``gansweep-table --help`` leaves out to stay one screen."""
    return main(argv, publishing=True)


def main(argv: list[str] | None = None, publishing: bool = False) -> int:
    parser = argparse.ArgumentParser(
        prog="gansweep-table-report" if publishing else "gansweep-table",
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=None if publishing else "A results page's generated blocks (--report PAGE and "
        "its options):\n  gansweep-table-report --help")
    parser.add_argument("dirs", nargs="+", help="sweep or run directories")
    parser.add_argument("--out", help="where to write the table files (default: the first dir)")
    report = parser.add_argument_group(
        "report", "--report PATH writes a study's markdown block (gansweep.report.publish) "
        "instead of the table files, and nothing into the dirs") if publishing else _Hidden(parser)
    report.add_argument("--report", metavar="PATH", help="the markdown file: a new file, or one "
                        "holding the block's markers (only the block is replaced)")
    report.add_argument("--figures", metavar="DIR", help="where the PNGs go (default: the "
                        "report's folder); linked by relative paths")
    report.add_argument("--title", default=publish.TITLE,
                        help="the block's heading ('' for none; default: %(default)s)")
    report.add_argument("--section", help="a name for the block's markers (several blocks in "
                        "one page) and its figures' names")
    report.add_argument("--command", help="the command that ran the sweep, shown verbatim")
    report.add_argument("--commit", help="the commit the sweep ran at, shown verbatim")
    report.add_argument("--machine", help="the machine it ran on, shown verbatim")
    report.add_argument("--metric", help="the metric to rank by (default: the table's primary "
                        "metric, e.g. fid_lenet)")
    report.add_argument("--against", metavar="GRID_DIR",
                        help="with one halving sweep dir and --report: read it against the "
                        "full grid's sweep dir (cost, winners, regret, rung agreement; "
                        "gansweep.report.search)")
    report.add_argument("--epochs", type=int, metavar="N",
                        help="only the jobs trained to trainer.epochs=N (a sweep extended to a "
                        "larger budget holds both budgets' runs)")
    report.add_argument("--slope-epochs", type=int, metavar="K",
                        help="fit each run's end slope to its last K evaluations (default: "
                        f"{publish.slopes.LAST})")
    report.add_argument("--resamples", type=int, default=publish.RESAMPLES,
                        help="bootstrap resamples of the seeds for rho's interval "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.report and args.out:
        parser.error("--out is the table files' folder: with --report, use --figures")
    if not args.report and any((args.figures, args.section, args.command, args.commit,
                                args.machine, args.metric, args.against,
                                args.epochs is not None, args.slope_epochs is not None)):
        parser.error("--figures, --section, --command, --commit, --machine, --metric, "
                     "--epochs, --slope-epochs and --against go with --report")
    if args.slope_epochs is not None and args.slope_epochs < 2:
        parser.error(f"--slope-epochs {args.slope_epochs}: a slope needs at least 2 "
                     "evaluations; pass --slope-epochs 2 or more")
    if args.against and (len(args.dirs) != 1 or args.figures or args.metric
                         or args.slope_epochs is not None):
        parser.error("--against reads one halving sweep dir against one grid dir (it ranks by "
                     "the sweep's own objective, draws no figures and fits no slopes): "
                     "gansweep-table "
                     "<halving dir> --against <grid dir> --report PAGE")
    try:
        if args.against:
            search_page.publish(args.dirs[0], args.against, args.report,
                                search_page.TITLE if args.title == publish.TITLE
                                else args.title or None,
                                args.command, args.commit, args.machine, args.section)
            print(f"Report: {args.report}")
        elif args.report:
            publish.publish(args.dirs, args.report, args.figures, args.title or None,
                            args.command, args.commit, args.machine, args.metric,
                            args.resamples, args.section, args.epochs,
                            args.slope_epochs or publish.slopes.LAST)
            print(f"Report: {args.report}")
        else:
            aggregate(args.dirs, args.out)
    except (FileNotFoundError, OutputError, StudyError, blocks.PublishError,
            search.SearchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a report page or figure that cannot be written half-way
        print(f"error: cannot write {exc.filename or 'the output'} ({exc.strerror or exc}). "
              "Fix: free space or permissions there, or write elsewhere", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
