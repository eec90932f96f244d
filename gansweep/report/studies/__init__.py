"""Studies: published results a sweep is read against, as plug-ins of the comparison table.

A run names its study in its config (``reference.study``, set by a preset such as
``conf/experiment/seed_standard.yaml``, and recorded in the run's ``summary.json``); the table
(``gansweep.report.table``) loads the module of each study its rows name and lets it add columns,
ranks and findings. A sweep whose runs name no study gets the generic table only.

A study module (``gansweep.report.studies.<name>``, or any importable dotted module path) provides:

* ``COLUMNS``: the per-job columns it adds, in display order (the full table);
* ``COMPACT``: those of them shown in the compact table of table.html;
* ``SETTINGS``: those that say which published row a job is compared to (equal within a
  group of seeds, like the run's own settings);
* ``PUBLISHED``: the column holding the published number (drawn beside ours in the chart)
  and ``PUBLISHED_LABEL``, what that number is;
* optionally ``PUBLISHED_METRIC``: our metric of the same kind as the published number (e.g.
  ``fid_inception``); the generated report shows it beside the published number when the
  report ranks by another;
* ``job_columns(config, row) -> dict``: the added columns of one job, from its recorded config
  and its generic row;
* ``annotate(frame, metric)``: frame-wide columns (e.g. published ranks), in place;
* ``findings(frame, metric) -> list[str]``: plain sentences for below the table;
* optionally ``OBSERVATIONS`` (the published claims by name), ``observe(claim, study)`` (the
  numbers of one ``gansweep.report.publish.Study`` that bear on a claim) and
  ``value_text(group, metric)``: what the answer at the top of a results page reads
  (``gansweep.report.summary_page``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

REQUIRED = ("COLUMNS", "COMPACT", "SETTINGS", "PUBLISHED", "PUBLISHED_LABEL",
            "job_columns", "annotate", "findings")


class StudyError(ValueError):
    """A run names a study that cannot be loaded."""


def study_name(config: dict | None) -> str | None:
    """The study a run's recorded config names, or None.

    Records written before studies were plug-ins carry the 2018 study's row under
    ``reference`` without a ``study`` key: those are keras2018 rows."""
    reference = (config or {}).get("reference")
    if not isinstance(reference, dict):
        return None
    if reference.get("study"):
        return str(reference["study"])
    return "keras2018" if reference.get("row") else None


def load(name: str) -> ModuleType:
    """The study module called ``name`` (gansweep.report.studies.<name>, else a dotted path)."""
    candidates = [f"gansweep.report.studies.{name}"] if "." not in name else []
    candidates.append(name)
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that module does not exist: try the next spelling
            raise
        missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
        if missing:
            raise StudyError(f"reference.study={name}: module {module_name} lacks "
                             f"{', '.join(missing)}. Fix: define them (see gansweep.report.studies)")
        return module
    raise StudyError(f"reference.study={name}: no module gansweep.report.studies.{name} or {name}. "
                     "Fix: name a module under gansweep/report/studies/ (e.g. keras2018) or an "
                     "importable dotted path")
