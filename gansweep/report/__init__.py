"""The comparison table (``gansweep-table``), the torch-free side of gansweep: it reads the
files that runs wrote and never imports the training code.

- ``table``: one row per job (settings, metrics, status), ranks, findings;
- ``repeats``: dirs holding the same run (one identity) count once;
- ``grouping``: seeds of one setting grouped, with 95% intervals and ranks;
- ``render``: table.md (pandas' markdown) and table.html (a Jinja2 template);
- ``plots``: curves, ranking chart, montage (matplotlib);
- ``aggregate``: the command and the Hydra callback that builds all of them;
- ``studies``: published results shown beside ours (``keras2018``: the 2018 study);
- ``publish``, ``records``, ``summary_page``: a results page's generated blocks, the records
  they regenerate from, and the answer at its top.
"""
