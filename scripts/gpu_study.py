"""The seed study on an offline GPU machine, scored there, with only its records brought back.

The machine this is written for has Python and torch but no Hydra and no network; each
command takes a limited amount of files with it (the working tree plus a few carried
folders, 64 MiB in all for the H100/H200 machines this project has used) and hands back a
few files of limited size (8 of 16 MiB there). scripts/gpu_prepare.sh builds what travels,
scripts/gpu_check.sh and scripts/gpu_study.sh run there; this script holds both ends of that
exchange, so that each format is written in one place (docs/running.md, "Running on GPUs
and clusters"):

    python scripts/gpu_study.py split               # (here) the Inception weights in parts
    python3 scripts/gpu_study.py env                # (there) the carried wheels importable
    python scripts/gpu_study.py weights             # (there) the parts joined, sha256 checked
    python scripts/gpu_study.py runs <presets> <seeds>  # how many runs a sweep holds
    python scripts/gpu_study.py plan ...            # (there) precision and epochs that fit
    python scripts/gpu_study.py budget <plan> <root> ...  # (there) this command's training
    python scripts/gpu_study.py score <root> fid=inception ...  # (there) gansweep-eval
    python scripts/gpu_study.py export <root> <out> # (there) the records, no samples

The Inception weights (87 MB) do not fit one command's files beside the wheels and MNIST:
``split`` cuts the verified ``default_1.pt`` into ``--parts`` pieces, one folder each
(``.gpu/weights-<k>/default_1.pt.<k>of<n>`` with a SHA256SUMS file; the first smaller by
what the first command carries besides: the wheels and MNIST), each carried by its own
command; the machine keeps what earlier commands brought while it stays up, and ``weights``
joins them into the evaluator's cache (``<fid.cache_dir>/weights/default_1.pt``), refusing in
one line, before any training, where a part is missing or a checksum differs. The study then
scores Inception FID there with ``gansweep-eval`` (``python -m gansweep.runs.rescore``, in several
processes: ``score``), which computes the 60,000-image reference once and caches it on the
machine; ``export`` packs the
sweeps without checkpoints or samples: summaries, metrics, evaluation records, final grids.

This is an operations script of this repository, not part of the installed package. ``env``
and ``runs`` use the standard library only (they run before Hydra is importable); the other
commands import gansweep, torch or Hydra inside the function that needs them, for that
reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRIED = REPO / ".gpu"  # scripts/gpu_prepare.sh builds it
SUMS = "SHA256SUMS"
# not in the archive that comes back: checkpoints, locks, half-written files, and the grids
# drawn during training (samples/0...); samples/final.png stays
LEFT_OUT = ("/checkpoints", ".lock", ".partial", ".tmp")


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- env (there)
def _finds(modules: list[str], env: dict | None = None) -> bool:
    """Whether this Python, started in the repo root with ``env``, finds every module."""
    code = ("import importlib.util as u, sys\n"
            "sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *modules], cwd=REPO, env=env,
                          capture_output=True).returncode == 0


def install_wheels(wheels: list[Path], site: Path) -> str:
    """The wheels installed into ``site`` offline (pip --no-index --target, or unzipped where
    this Python has no pip: pure wheels install by extraction); nothing if already there."""
    stamp = site / ".gansweep-wheels"
    want = "\n".join(f"{w.name} {w.stat().st_size}" for w in wheels)
    if stamp.is_file() and stamp.read_text() == want:
        return f"already in {site}"
    site.mkdir(parents=True, exist_ok=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if pip.returncode == 0:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-compile", "--no-cache-dir", "--upgrade", "--disable-pip-version-check",
               "--target", str(site), *map(str, wheels)]
        done = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "PIP_NO_INDEX": "1"})
        if done.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        how = "pip --no-index --target"
    else:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.infolist():
                    top, _, rest = member.filename.partition("/")
                    if not top.endswith(".data"):
                        archive.extract(member, site)
                    elif rest.startswith(("purelib/", "platlib/")) and not member.is_dir():
                        target = site / rest.partition("/")[2]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(archive.read(member))
        how = "unzipped (no pip here)"
    stamp.write_text(want)
    return f"{len(wheels)} wheels into {site} ({how})"


def env(args) -> int:
    """Shell lines (``eval "$(python3 scripts/gpu_study.py env)"``) that make this Python run
    gansweep from the source tree: the carried wheels when Hydra is missing (then also
    PIP_NO_INDEX=1: nothing may try the network), the tree on PYTHONPATH, and
    ``gansweep.conf``, which only an install maps to conf/, as a symlink ``conf`` ->
    ``../conf`` in the package folder (removed by the scripts at exit)."""
    lines, environ = [], dict(os.environ)
    path = [str(REPO), *filter(None, [environ.get("PYTHONPATH")])]
    if _finds(["hydra", "omegaconf", "antlr4"]):
        print("env: Hydra is importable here; no wheels installed", file=sys.stderr)
    else:
        wheels = sorted(Path(args.wheels).glob("*.whl"))
        if not wheels:
            raise SystemExit(f"error: no Hydra in {sys.executable} and no wheels in "
                             f"{args.wheels}. Fix: run scripts/gpu_prepare.sh where PyPI is "
                             "reachable and carry .gpu/wheels")
        site = Path(args.site)
        print(f"env: {install_wheels(wheels, site)}", file=sys.stderr)
        path.insert(1, str(site))
        lines.append("export PIP_NO_INDEX=1")
    environ["PYTHONPATH"] = os.pathsep.join(path)
    lines.insert(0, f"export PYTHONPATH={shlex.quote(environ['PYTHONPATH'])}")
    link = REPO / "gansweep" / "conf"
    made = ""
    if not _finds(["gansweep.conf"], environ):
        if not link.is_symlink():
            link.symlink_to(Path("..") / "conf", target_is_directory=True)
        made = str(link)
        if not _finds(["gansweep.conf", "hydra_plugins.gansweep_halving"], environ):
            raise SystemExit(f"error: gansweep.conf is not importable even through {link}")
        print(f"env: linked {link} -> ../conf (pkg://gansweep.conf from the source tree)",
              file=sys.stderr)
    lines.append(f"export GANSWEEP_CONF_LINK={shlex.quote(made)}")
    print("\n".join(lines))
    return 0


# ----------------------------------------------------------------------------- runs
def sweep_size(value: str, experiments: Path = REPO / "conf" / "experiment") -> int:
    """How many values a Hydra sweep value stands for: ``a,b,c``, ``range(a,b[,step])``
    or ``glob(pattern)`` over the config files of ``experiments``; a single value is 1."""
    value = value.strip()
    if match := re.fullmatch(r"range\((-?\d+)\s*,\s*(-?\d+)(?:\s*,\s*(-?\d+))?\)", value):
        start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
        return len(range(start, stop, step))
    if match := re.fullmatch(r"glob\((.*)\)", value):
        return sum(1 for _ in experiments.glob(f"{match[1].strip()}.yaml"))
    return len([v for v in value.split(",") if v.strip()])


def runs(args) -> int:
    """The number of runs of ``+experiment=<presets> seed=<seeds>`` (their product)."""
    print(sweep_size(args.presets) * sweep_size(args.seeds))
    return 0


# ----------------------------------------------------------------------------- weights
def _weights_target(cache_dir: str | None) -> tuple[Path, str, str]:
    """(the evaluator's weights file, its expected sha256, the file name)."""
    from gansweep.fid.extractors import default_cache_dir  # torch: after `env`
    from gansweep.fid.inception import WEIGHTS_NAME, WEIGHTS_SHA256, weights_path

    return weights_path(cache_dir or default_cache_dir()), WEIGHTS_SHA256, WEIGHTS_NAME


def part_sizes(size: int, parts: int, head: int = 0) -> list[int]:
    """Bytes of each of ``parts`` pieces of a ``size``-byte file, sized so that every command
    carries about as much when the first also carries ``head`` bytes of other files: the
    first piece is that much smaller (never empty), the others equal."""
    share = math.ceil((size + head) / parts)
    first = max(1, size - (parts - 1) * share)
    rest = math.ceil((size - first) / (parts - 1)) if parts > 1 else 0
    sizes = [first] + [rest] * (parts - 1)
    sizes[-1] -= sum(sizes) - size
    return sizes


def split_file(source: Path, into: Path, parts: int, name: str, head: int = 0) -> list[Path]:
    """``source`` cut into ``parts`` pieces (``part_sizes``: the first ``head`` bytes
    smaller), ``into/weights-<k>/<name>.<k>of<n>``, each folder with a SHA256SUMS of its part
    and of the whole file; a folder already holding its very part (by sha256) is left as it
    is."""
    size, whole = source.stat().st_size, _sha256(source)
    folders = []
    with open(source, "rb") as handle:
        for k, step in enumerate(part_sizes(size, parts, head), 1):
            folder = into / f"weights-{k}"
            part = folder / f"{name}.{k}of{parts}"
            data = handle.read(step)
            sha = hashlib.sha256(data).hexdigest()
            sums = f"{sha}  {part.name}\n{whole}  {name}\n"
            if not ((folder / SUMS).is_file() and (folder / SUMS).read_text() == sums
                    and part.is_file() and _sha256(part) == sha):
                folder.mkdir(parents=True, exist_ok=True)
                for old in folder.iterdir():  # another split's part
                    old.unlink()
                tmp = part.with_name(part.name + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(part)
                (folder / SUMS).write_text(sums)
            folders.append(folder)
    for stale in into.glob("weights-*"):  # an earlier split into more parts
        if stale.is_dir() and stale not in folders:
            for old in stale.iterdir():
                old.unlink()
            stale.rmdir()
    return folders


def split(args) -> int:
    """(here) The verified Inception weights, fetched if missing, split for carrying."""
    from gansweep.fid.inception import fetch_weights  # torch: after the venv is there

    target, expected, name = _weights_target(args.cache_dir)
    source = fetch_weights(target.parent.parent)  # verified; downloaded only if missing
    if _sha256(source) != expected:
        raise SystemExit(f"error: {source} is not the Inception weights (sha256). Fix: delete "
                         "it and run `gansweep-fid fetch-weights`")
    into = Path(args.into)
    head = sum(f.stat().st_size for d in args.first_carries for f in (into / d).rglob("*")
               if f.is_file())
    folders = split_file(source, into, args.parts, name, head)
    for folder in folders:
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"weights: {folder} ({size / 2**20:.2f} MiB)")
    return 0


def _parts(root: Path, name: str) -> tuple[int, dict[int, Path]]:
    """(n, {k: part}) of the parts ``root/weights-*/<name>.<k>of<n>`` found; n is 0 when none
    is there. Parts of two different splits are refused."""
    found, counts = {}, set()
    for path in root.glob(f"weights-*/{name}.*of*"):
        if match := re.fullmatch(rf"{re.escape(name)}\.(\d+)of(\d+)", path.name):
            found[int(match[1])] = path
            counts.add(int(match[2]))
    if len(counts) > 1:
        raise SystemExit(f"error: {root}/weights-* hold parts of splits into {sorted(counts)} "
                         "parts. Fix: run scripts/gpu_prepare.sh again and carry its "
                         "weights-<k> folders only")
    return (counts.pop() if counts else 0), found


def _check_part(part: Path) -> str | None:
    """Why ``part`` is not the piece its SHA256SUMS names (None: it is)."""
    sums = part.parent / SUMS
    if not sums.is_file():
        return f"{sums} is missing"
    want = dict(reversed(line.split(None, 1)) for line in sums.read_text().splitlines()
                if line.strip())
    actual = _sha256(part)
    if want.get(part.name) != actual:
        return f"{part} has sha256 {actual}, its {SUMS} says {want.get(part.name)}"
    return None


def join_parts(root: Path, target: Path, expected: str, name: str) -> str:
    """``target`` made from the parts under ``root`` (``weights-<k>/<name>.<k>of<n>``),
    written only if the joined bytes have sha256 ``expected``; a verified ``target`` already
    there is kept. SystemExit in one line naming the missing or corrupt piece and the fix."""
    from gansweep.artifacts import atomic_write  # torch: after `env`

    if target.is_file() and _sha256(target) == expected:
        return f"weights: {target} (sha256 verified)"
    n, found = _parts(root, name)
    if not n:
        raise SystemExit(f"error: no Inception weights: {target} is missing and no parts are "
                         f"under {root}/weights-*/. Fix: run scripts/gpu_prepare.sh where the "
                         "weights are and carry .gpu/weights-<k> with the k-th command")
    missing = [k for k in range(1, n + 1) if k not in found]
    if missing:
        k = missing[0]
        raise SystemExit(f"error: part {k} of {n} of the Inception weights "
                         f"({root / f'weights-{k}' / f'{name}.{k}of{n}'}) is not here. Fix: "
                         f"carry .gpu/weights-{k} with this command (parts carried by earlier "
                         "commands stay while the machine stays up)")
    for k in range(1, n + 1):
        if (why := _check_part(found[k])) is not None:
            raise SystemExit(f"error: part {k} of {n} of the Inception weights is corrupt: "
                             f"{why}. Fix: run scripts/gpu_prepare.sh again and carry "
                             f".gpu/weights-{k} afresh")

    digest = hashlib.sha256()

    def write(handle) -> None:
        for k in range(1, n + 1):
            with open(found[k], "rb") as part:
                while block := part.read(1 << 20):
                    digest.update(block)
                    handle.write(block)

    def check(_tmp: Path) -> None:
        if digest.hexdigest() != expected:
            raise RuntimeError(digest.hexdigest())

    try:
        atomic_write(target, write, check)
    except RuntimeError as exc:
        raise SystemExit(f"error: the Inception weights joined from {n} parts under {root} "
                         f"have sha256 {exc}, expected {expected}. Fix: run "
                         "scripts/gpu_prepare.sh again and carry every part afresh") from None
    return f"weights: {target} joined from {n} parts (sha256 verified)"


def weights(args) -> int:
    """(there) The Inception weights in the evaluator's cache, from the carried parts;
    ``--check``: only the parts here verified, for the command that brings the first."""
    target, expected, name = _weights_target(args.cache_dir)
    root = Path(args.parts)
    if not args.check:
        print(join_parts(root, target, expected, name))
        return 0
    if target.is_file() and _sha256(target) == expected:
        print(f"weights: {target} (sha256 verified)")
        return 0
    n, found = _parts(root, name)
    bad = [why for k in sorted(found) if (why := _check_part(found[k])) is not None]
    if bad:
        raise SystemExit(f"error: {bad[0]}. Fix: run scripts/gpu_prepare.sh again and carry "
                         "the part afresh")
    print(f"weights: {len(found)} of {n} parts here, sha256 verified" if n else
          f"weights: none here ({target} missing, no parts under {root})")
    return 0


# ----------------------------------------------------------------------------- plan (there)
def _summary(job: Path) -> dict:
    path = job / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def jobs_under(root: Path) -> list[Path]:
    """The job dirs of ``root``'s sweeps (``root/<sweep>/<job>``) or of ``root`` itself."""
    from gansweep.report.table import find_jobs  # Hydra-bound: after `env`

    jobs = find_jobs(root)
    if not jobs:
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            jobs += find_jobs(sub)
    return jobs


def steady_seconds_per_batch(job: Path, summary: dict) -> float:
    """Training seconds per batch of a run after its first logged batch (cuDNN's autotuning
    and the first checkpoint left out), from metrics.jsonl's cumulative ``seconds``; the
    whole run's average where fewer than two later rows were logged."""
    rows = []
    for line in (job / "metrics.jsonl").read_text().splitlines() if (
            job / "metrics.jsonl").exists() else []:
        row = json.loads(line)
        if "d_loss" in row and row.get("step", 0) >= 1:
            rows.append(row)
    if len(rows) >= 2 and rows[-1]["step"] > rows[0]["step"]:
        return (rows[-1]["seconds"] - rows[0]["seconds"]) / (rows[-1]["step"] - rows[0]["step"])
    return summary["wall_seconds"] / summary["batches_done"]


def evaluation_seconds(summary: dict) -> float:
    """Seconds of one end-of-epoch evaluation of a run (sampling, features, metrics; the
    reference statistics, computed once and cached, left out)."""
    seconds = (summary.get("fid") or {}).get("seconds") or {}
    return float(sum(v for k, v in seconds.items() if k != "total"))


def option(calibration: Path, launch_seconds: float, args, now: float) -> dict:
    """One precision's plan from its calibration: the slowest run's seconds per batch with
    all runs side by side, times the margin, plus its evaluations every ``--every-epochs``;
    the launch overhead (wall minus training) and ``--reserve`` come off each command,
    ``--evaluation-seconds`` off the last."""
    done = []
    for job in jobs_under(calibration):
        summary = _summary(job)
        if summary.get("status") == "ok" and summary.get("batches_done"):
            done.append((steady_seconds_per_batch(job, summary), summary))
    if not done:
        raise SystemExit(f"error: no finished calibration run under {calibration}. Fix: read "
                         "its log beside it; raise STUDY_SECONDS if it was stopped")
    per_batch = max(rate for rate, _ in done)
    batches = max(int(s["batches_per_epoch"]) for _, s in done)
    evaluation = max(evaluation_seconds(s) for _, s in done)
    overhead = max(0.0, launch_seconds - max(s["wall_seconds"] for _, s in done))
    epoch_s = (per_batch * batches * args.margin
               + (evaluation / args.every_epochs if args.every_epochs else 0.0))
    left = args.deadline - now - overhead - args.reserve
    later = args.command_seconds - overhead - args.reserve - args.setup_seconds
    budget = left + (args.commands - 1) * max(later, 0.0) - args.evaluation_seconds
    need = args.max_epochs * epoch_s
    short = need + args.evaluation_seconds - left  # what later commands must train
    needed = 1 if short <= 0 else 1 + math.ceil(short / later) if later > 0 else None
    return {"epochs": max(1, min(args.max_epochs, math.floor(max(budget, 0.0) / epoch_s))),
            "fits": budget >= need, "commands_needed": needed,
            "seconds_per_batch": round(per_batch, 6), "batches_per_epoch": batches,
            "evaluation_seconds": round(evaluation, 3),
            "seconds_per_epoch_with_margin": round(epoch_s, 3),
            "training_seconds_needed": round(need, 1), "launch_overhead_s": round(overhead, 1),
            "seconds_left_for_training": round(left, 1),
            "seconds_per_later_command": round(later, 1), "runs_side_by_side": len(done),
            "devices": sorted({str(s.get("device")) for _, s in done})}


NAMES = {"float32": "IEEE float32", "tf32": "TF32"}


def choose(options: dict, preference: str, max_epochs: int, commands: int) -> tuple[str, str]:
    """(precision, why): IEEE float32 where its plan fits ``max_epochs`` in ``commands``
    commands (or TF32 trains no more epochs), else TF32; ``preference`` other than auto
    decides alone."""
    if preference != "auto":
        return preference, f"{NAMES[preference]} as asked"
    fp32, tf32 = options["float32"], options.get("tf32")
    span = f"{commands} command{'s' if commands > 1 else ''}"
    if fp32["fits"]:
        return "float32", f"IEEE float32: {max_epochs} epochs fit in {span}"
    said = (f"IEEE float32 fits {fp32['epochs']} of {max_epochs} epochs in {span} (it needs "
            f"{fp32['commands_needed'] or 'more'} commands)")
    if tf32 is None:
        return "float32", said + "; TF32 not calibrated"
    if tf32["epochs"] <= fp32["epochs"]:
        return "float32", said + f"; TF32 no more ({tf32['epochs']})"
    return "tf32", said + f"; TF32 fits {tf32['epochs']} (needs {tf32['commands_needed']})"


def plan(args) -> int:
    """The precision and the epochs per run for the study, from one calibration sweep per
    precision (1 epoch of every run side by side); ``calibrate_tf32`` in the record asks the
    script for a TF32 calibration where IEEE float32 does not fit."""
    now = time.time()
    options = {precision: option(Path(root), float(seconds), args, now)
               for precision, root, seconds in args.calibration}
    if "float32" not in options and args.precision == "auto":
        raise SystemExit("error: --precision auto needs a float32 calibration. Fix: "
                         "--calibration float32 <dir> <seconds>")
    if args.precision != "auto" and args.precision not in options:
        raise SystemExit(f"error: --precision {args.precision} without its calibration. Fix: "
                         f"--calibration {args.precision} <dir> <seconds>")
    precision, why = choose(options, args.precision, args.max_epochs, args.commands)
    chosen = options[precision]
    record = {"precision": precision, "tf32": precision == "tf32", "why": why,
              "epochs": chosen["epochs"], "fits": chosen["fits"],
              "calibrate_tf32": (args.precision == "auto" and "tf32" not in options
                                 and not chosen["fits"]),
              "max_epochs": args.max_epochs, "commands": args.commands,
              "commands_needed": chosen["commands_needed"], "margin": args.margin,
              "reserve_s": args.reserve, "evaluation_s": args.evaluation_seconds,
              "every_epochs": args.every_epochs,
              "runs_side_by_side": chosen["runs_side_by_side"], "options": options,
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"plan: {NAMES[precision]}, {chosen['epochs']} epochs of each of "
          f"{chosen['runs_side_by_side']} runs ({why}; {chosen['seconds_per_batch'] * 1e3:.2f} "
          f"ms per batch each side by side, {chosen['seconds_per_epoch_with_margin']:.1f} s "
          f"per epoch with margin {args.margin}; {chosen['seconds_left_for_training']:.0f} s "
          "left for training in this command)")
    return 0


def budget(args) -> int:
    """Seconds this command gives the study's sweeps, and why (one line): all that is left
    where the plan says the runs cannot finish in it (scoring waits for the command in which
    they do), else that less ``--evaluation-seconds``, kept for scoring them."""
    from gansweep.report.table import find_jobs  # Hydra-bound: after `env`

    record = json.loads(Path(args.plan).read_text())
    chosen = record["options"][record["precision"]]
    per_batch = chosen["seconds_per_epoch_with_margin"] / chosen["batches_per_epoch"]
    root = Path(args.root)
    jobs = [job for name in args.sweeps if (root / name).is_dir()
            for job in find_jobs(root / name)]
    remaining = []
    for job in jobs:
        summary = _summary(job)
        total = int(summary.get("epochs") or record["epochs"]) * chosen["batches_per_epoch"]
        remaining.append(0 if summary.get("status") == "ok" else
                         max(0, total - int(summary.get("batches_done") or 0)))
    if len(jobs) < record["runs_side_by_side"]:  # some not started yet
        remaining.append(record["epochs"] * chosen["batches_per_epoch"])
    need = max(remaining) * per_batch + chosen["launch_overhead_s"]
    if not args.evaluation_seconds:
        print(f"{int(args.seconds_left)} the runs need about {need:.0f} s; no scoring here")
    elif need + args.evaluation_seconds <= args.seconds_left:
        print(f"{int(args.seconds_left - args.evaluation_seconds)} the runs finish in about "
              f"{need:.0f} s; {args.evaluation_seconds:.0f} s kept to score them")
    else:
        print(f"{int(args.seconds_left)} the runs need about {need:.0f} s more: all of it "
              "trains, the next command scores")
    return 0


# ----------------------------------------------------------------------------- score (there)
def score(args) -> int:
    """``python -m gansweep.runs.rescore`` (gansweep-eval) of every finished run of ``root``'s
    sweeps with the given overrides and options, in ``--jobs`` processes side by side (the
    Fréchet distance's 2048 x 2048 matrix square root takes one CPU core some 10 s a run),
    each with an equal share of the cores for its BLAS; then the sweeps' tables."""
    from gansweep.report.aggregate import aggregate  # Hydra-bound: after `env`
    from gansweep.report.table import find_jobs

    root = Path(args.root)
    sweeps = [root / name for name in args.sweeps if (root / name).is_dir()]
    runs = [job for sweep in sweeps for job in find_jobs(sweep)
            if _summary(job).get("status") == "ok" and (job / "checkpoints/last.pt").is_file()]
    if not runs:
        print("score: no finished run to score yet", flush=True)
        return 0
    jobs = max(1, min(args.jobs, len(runs)))
    share = str(max(1, (os.cpu_count() or 1) // jobs))
    environ = {**os.environ, **{k: os.environ.get(k, share) for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    print(f"score: {len(runs)} finished runs in {jobs} processes", flush=True)
    procs = [subprocess.Popen([sys.executable, "-m", "gansweep.runs.rescore",
                               *map(str, runs[i::jobs]), *args.rescore, "--no-table"],
                              env=environ) for i in range(jobs)]
    codes = [proc.wait() for proc in procs]
    for sweep in sweeps:
        aggregate([sweep], echo=False)
    print(f"score: exit codes {codes}; tables of {', '.join(s.name for s in sweeps)} rebuilt")
    return max(codes)


# ----------------------------------------------------------------------------- export (there)
def _values(job: Path) -> list[str]:
    """``metric value`` of the run's final FIDs: its summary's, then each evaluation record's."""
    summary = _summary(job)
    shown = [f"{k} {v:.4f}" for k, v in summary.items()
             if k.startswith("fid_") and isinstance(v, float)]
    for record in sorted((job / "evals").glob("final_*.json")):
        try:
            values = json.loads(record.read_text()).get("values", {})
        except (OSError, ValueError):
            shown.append(f"{record.name} unreadable")
            continue
        shown += [f"{k} {v:.4f}" for k, v in values.items()
                  if k.startswith("fid_") and isinstance(v, float)]
    return shown


def run_line(job: Path, sweep: str) -> str:
    s = _summary(job)
    status = s.get("status", "no summary.json")
    if status == "running":  # its process was killed: the last checkpoint resumes it
        status = "stopped (resumes from its last checkpoint)"
    return (f"{sweep}/{job.name}: {status}, {s.get('epochs_done')}/{s.get('epochs')} epochs "
            f"({s.get('batches_done')} batches) on {s.get('device')} in {s.get('precision')}"
            + "".join(f", {v}" for v in _values(job)))


def export(args) -> int:
    """study.tar.gz (each sweep under ``root`` without checkpoints and intermediate grids,
    plus ``--extra`` files), study.txt (a line per run) and the first sweep's table.md and
    montage.png into ``out``, within ``--max-files`` files of ``--max-file-mib`` each."""
    from gansweep.report.table import find_jobs  # Hydra-bound: after `env`

    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sweeps = [root / name for name in args.sweeps if (root / name).is_dir()]
    lines = [run_line(job, sweep.name) for sweep in sweeps for job in find_jobs(sweep)]
    scored = sum("fid_inception" in line for line in lines)
    with tarfile.open(out / "study.tar.gz", "w:gz") as tar:
        for sweep in sweeps:
            tar.add(sweep, arcname=sweep.name, filter=lambda info: None if any(
                part in info.name for part in LEFT_OUT) or "/samples/0" in info.name else info)
        for extra in map(Path, args.extra or []):  # under root: by its path there
            if extra.is_file():
                inside = extra.resolve().is_relative_to(root.resolve())
                name = extra.resolve().relative_to(root.resolve()) if inside else extra.name
                tar.add(extra, arcname=f"extra/{name}")
    files = ["study.tar.gz", "study.txt"]
    room = args.max_files - len(files)
    shown = [n for n in ("table.md", "montage.png") if sweeps and (sweeps[0] / n).exists()]
    for name in shown[:max(room, 0)]:
        (out / name).write_bytes((sweeps[0] / name).read_bytes())
        files.append(name)
    lines.append(f"{len(lines)} runs, {scored} with Inception FID; returned: "
                 f"{', '.join(files)}")
    (out / "study.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    over = [f"{n} ({(out / n).stat().st_size / 2**20:.1f} MiB)" for n in files
            if (out / n).stat().st_size > args.max_file_mib * 2**20]
    if over:
        raise SystemExit(f"error: {', '.join(over)} over --max-file-mib {args.max_file_mib}. "
                         "Fix: export again with fewer sweeps (--sweeps) or a higher limit")
    return 0 if lines[:-1] else 1


def main(argv: list[str] | None = None) -> int:
    if str(REPO) not in sys.path:  # run as a script: gansweep is this tree's
        sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(prog="python scripts/gpu_study.py",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env", help="shell lines: the carried wheels importable (stdlib only)")
    p.add_argument("--wheels", default=str(CARRIED / "wheels"))
    p.add_argument("--site", default=os.environ.get("GANSWEEP_GPU_SITE", "/tmp/gansweep-gpu-site"))
    p = sub.add_parser("runs", help="how many runs +experiment=PRESETS seed=SEEDS holds")
    p.add_argument("presets"), p.add_argument("seeds")
    p = sub.add_parser("split", help="(here) the Inception weights in parts to carry")
    p.add_argument("--into", default=str(CARRIED))
    p.add_argument("--parts", type=int, default=2)
    p.add_argument("--first-carries", nargs="*", default=["wheels", "mnist"],
                   help="folders of --into the first command carries too: its part is smaller")
    p.add_argument("--cache-dir", default=None, help="default: $GANSWEEP_CACHE or ~/.cache/gansweep")
    p = sub.add_parser("weights", help="(there) the parts joined and verified into the cache")
    p.add_argument("--parts", default=str(CARRIED), help="the folder holding weights-<k>/")
    p.add_argument("--cache-dir", default=None, help="default: $GANSWEEP_CACHE or ~/.cache/gansweep")
    p.add_argument("--check", action="store_true", help="only verify the parts that are here")
    p = sub.add_parser("plan", help="precision and epochs per run that fit")
    p.add_argument("--calibration", nargs=3, action="append", required=True,
                   metavar=("PRECISION", "DIR", "SECONDS"),
                   help="float32|tf32, its calibration sweeps' root, their wall seconds")
    p.add_argument("--deadline", type=float, required=True,
                   help="unix time this command must be done by")
    p.add_argument("--reserve", type=float, default=60.0,
                   help="seconds every command keeps after training (export)")
    p.add_argument("--evaluation-seconds", type=float, default=0.0,
                   help="seconds the last command keeps for scoring the runs")
    p.add_argument("--commands", type=int, default=1,
                   help="commands the study may take, this one included")
    p.add_argument("--command-seconds", type=float, default=540.0,
                   help="wall seconds of each later command")
    p.add_argument("--setup-seconds", type=float, default=30.0,
                   help="a later command's start before training (environment, weights)")
    p.add_argument("--every-epochs", type=int, default=0, help="as fid.every_epochs (0: none)")
    p.add_argument("--precision", choices=("auto", "float32", "tf32"), default="auto")
    # measured/calibrated seconds per batch on the H200: 7 runs 24.7/22.35 ms (1.11), 21 runs
    # 73.8/60.45 ms (1.22: the 1-epoch calibration overlaps with the staggered starts of 21
    # processes, so fewer ran at once than in the study); at 1.15 the 21 runs finished 13 s
    # before the stop (docs/performance.md, "One H200")
    p.add_argument("--margin", type=float, default=1.3)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--out", required=True, help="plan.json")
    p = sub.add_parser("budget", help="seconds this command gives the sweeps (plan.json)")
    p.add_argument("plan"), p.add_argument("root", help="the study's folder")
    p.add_argument("--seconds-left", type=float, required=True,
                   help="what this command has left, the export's reserve taken off")
    p.add_argument("--evaluation-seconds", type=float, default=0.0)
    p.add_argument("--sweeps", nargs="+", default=["sweep", "collapse"])
    p = sub.add_parser("score", help="gansweep-eval of the finished runs, side by side")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1) // 2))
    p.add_argument("--sweeps", nargs="+", default=["sweep", "collapse"])
    p.add_argument("root", help="the study's folder")
    p.add_argument("rescore", nargs=argparse.REMAINDER,
                   help="gansweep-eval's fid overrides and options (--which, --device, ...)")
    p = sub.add_parser("export", help="the sweeps' records (no checkpoints, no samples)")
    p.add_argument("root", help="the study's folder, holding its sweeps")
    p.add_argument("out", help="the folder that is brought back")
    p.add_argument("--sweeps", nargs="+", default=["sweep", "collapse"])
    p.add_argument("--extra", nargs="*", help="more files for the archive (logs, plan.json)")
    p.add_argument("--max-files", type=int, default=8)
    p.add_argument("--max-file-mib", type=float, default=16.0)
    args = parser.parse_args(argv)
    return {"env": env, "runs": runs, "split": split, "weights": weights, "plan": plan,
            "budget": budget, "score": score, "export": export}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
