"""The seed study on an offline GPU node, and its Inception FIDs computed back here.

That node has torch but no Hydra, no venv and no network, and the Inception weights are not
copied there (docs/running.md, "Running on GPUs and clusters"). So scripts/gpu_study.sh
trains there with ``fid=lenet`` and this module brings back what the trainer's evaluation
scored:

    python3 -m gansweep.gpu_study env                 # (there) the copied wheels importable
    python -m gansweep.gpu_study plan <calibration>   # (there) epochs that fit the time left
    python -m gansweep.gpu_study export <sweep> <out> # (there) samples, manifest, archive
    python -m gansweep.gpu_study score <returned dir> # (here) Inception FID, evals/, table

``export`` draws each run's evaluation samples again from its final G (``checkpoints/last.pt``),
as the trainer and ``gansweep-eval`` draw them (noise seeded by the run's seed + the
evaluator's offset, in its chunks, on the run's device), and keeps them as the 8-bit levels
the evaluator quantises them to (``gansweep.fid.frechet.quantize``): ``levels / 127.5 - 1`` is
bit for bit what the evaluator scores, so ``score`` computes here, on these images, the FID
that ``gansweep-eval <run> fid=inception`` would compute there, and records it the same way
(``<run>/evals/final_inception_<hash>.json``, which the table reads).

``env`` uses the standard library only: it runs before Hydra is importable. Everything else
imports torch and Hydra inside the function that needs them, for that reason. The module is
long because it holds both ends of one exchange (what goes there, what comes back and how it
is read here), so that the format is written in one place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRIED = REPO / ".gpu"  # scripts/gpu_prepare.sh builds it
# what comes back from the node: at most 8 files of at most 16 MiB each. The samples files are
# packed by their compressed size (digits on a black background deflate about 2.7 to 1), with
# a margin for the zip headers, so that 21 runs (7 presets x 3 seeds) come back in 2 files.
RETURN_FILES = 8
SAMPLES_LIMIT = 16 * 2**20 - 2**20  # compressed bytes per samples file
# not in the archive that comes back (samples/0...: the grids during training)
LEFT_OUT = ("/checkpoints", ".lock", ".partial")


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
    """Shell lines (``eval "$(python3 -m gansweep.gpu_study env)"``) that make this Python
    run gansweep from the source tree: the copied wheels when Hydra is missing (then also
    PIP_NO_INDEX=1: nothing may try the network), and ``gansweep.conf``, which only an
    install maps to conf/, as a symlink ``conf`` -> ``../conf`` in the package folder
    (removed by the scripts at exit)."""
    lines, environ = [], dict(os.environ)
    if _finds(["hydra", "omegaconf", "antlr4"]):
        print("env: Hydra is importable here; no wheels installed", file=sys.stderr)
    else:
        wheels = sorted(Path(args.wheels).glob("*.whl"))
        if not wheels:
            raise SystemExit(f"error: no Hydra in {sys.executable} and no wheels in "
                             f"{args.wheels}. Fix: run scripts/gpu_prepare.sh where PyPI is "
                             "reachable and copy .gpu/ beside the tree")
        site = Path(args.site)
        print(f"env: {install_wheels(wheels, site)}", file=sys.stderr)
        path = os.pathsep.join([str(REPO), str(site), *filter(None, [environ.get("PYTHONPATH")])])
        environ["PYTHONPATH"] = path
        lines += [f"export PYTHONPATH={shlex.quote(path)}", "export PIP_NO_INDEX=1"]
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


# ----------------------------------------------------------------------------- plan (there)
def _summary(job: Path) -> dict:
    path = job / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


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


def plan(args) -> int:
    """Epochs per run that fit before ``--deadline``: the calibration sweep's slowest run
    (training seconds per batch, all runs side by side), times the margin (checkpoints, sample
    grids, noise); its launch overhead (wall minus training: start-up, data, table) and
    ``--reserve`` (the final evaluation, export and packing) come off the time left."""
    from gansweep.report.table import find_jobs  # torch-free, but Hydra-bound: after `env`

    done = []
    for job in find_jobs(Path(args.calibration)):
        summary = _summary(job)
        if summary.get("status") == "ok" and summary.get("batches_done"):
            done.append((steady_seconds_per_batch(job, summary), summary))
    if not done:
        raise SystemExit(f"error: no finished calibration run under {args.calibration}")
    per_batch = max(rate for rate, _ in done)
    batches = max(int(s["batches_per_epoch"]) for _, s in done)
    overhead = max(0.0, args.launch_seconds - max(s["wall_seconds"] for _, s in done))
    epoch_s = per_batch * batches * args.margin
    left = args.deadline - time.time() - overhead - args.reserve
    epochs = max(1, min(args.max_epochs, math.floor(left / epoch_s)))
    record = {"epochs": epochs, "seconds_per_batch": round(per_batch, 6),
              "batches_per_epoch": batches, "seconds_per_epoch_with_margin": round(epoch_s, 3),
              "margin": args.margin, "launch_overhead_s": round(overhead, 1),
              "reserve_s": args.reserve, "seconds_left_for_training": round(left, 1),
              "runs_side_by_side": len(done), "max_epochs": args.max_epochs,
              "devices": sorted({str(s.get("device")) for _, s in done}),
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"plan: {epochs} epochs ({len(done)} runs side by side at {per_batch * 1e3:.2f} ms "
          f"per batch each, {epoch_s:.1f} s per epoch with margin {args.margin}; "
          f"{left:.0f} s left for training)")
    return 0


# ----------------------------------------------------------------------------- export (there)
def to_images(levels):
    """uint8 levels (N, 28, 28) -> the (N, 1, 28, 28) float32 images the evaluator scores."""
    import torch  # the env step runs before torch is needed

    return torch.from_numpy(levels).to(torch.float32).unsqueeze(1) / 127.5 - 1


def draw_levels(job: Path, summary: dict, device_name: str | None):
    """(uint8 levels, entry) of a run's evaluation samples from its final G."""
    import numpy as np  # heavy imports after `env` (module docstring)
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gansweep.device import configure_backends, isolated_rng, resolve_device
    from gansweep.fid.evaluator import FidEvaluator, build_evaluator
    from gansweep.fid.frechet import quantize
    from gansweep.gan.noise import sample_generator
    from gansweep.runs.rescore import generator_of

    cfg = OmegaConf.create(summary["config"])
    device = resolve_device(device_name or str(summary.get("device") or cfg.trainer.device))
    configure_backends(device, bool(cfg.trainer.tf32), bool(cfg.trainer.deterministic))
    g, latent_dim, epoch, step = generator_of(job, cfg, "final", device)
    n, offset, chunk = int(cfg.fid.num_samples), FidEvaluator.seed_offset, FidEvaluator.sample_batch
    with isolated_rng(device):
        x = sample_generator(g, instantiate(cfg.noise), latent_dim, n, int(cfg.seed) + offset,
                             device, chunk).float().cpu()
    levels = torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)[:, 0].numpy()
    assert torch.equal(to_images(levels), quantize(x)), "levels do not round-trip"
    status = summary.get("status")  # a "running" one was killed: its last checkpoint
    entry = {"job": job.name, "name": summary.get("name"),
             "status": "killed (last checkpoint)" if status == "running" else status,
             "seed": int(cfg.seed), "epochs_done": summary.get("epochs_done"),
             "batches_done": summary.get("batches_done"), "epoch": epoch, "step": step,
             "device": str(device), "num_samples": n, "seed_offset": offset,
             "sample_batch": chunk, "sha256": hashlib.sha256(levels.tobytes()).hexdigest()}
    if str(cfg.fid.extractor) == "lenet" and summary.get("fid_lenet") is not None:
        evaluator = build_evaluator(cfg.fid, data_root=cfg.dataset.root, device=device,
                                    fetch_data=False)
        with isolated_rng(device):
            again = evaluator.evaluate(lambda k: to_images(levels[:k]))["fid_lenet"]
        entry["fid_lenet_check"] = {"summary": summary["fid_lenet"], "exported": again}
    return np.ascontiguousarray(levels), entry


def export(args) -> int:
    """samples*.npz (uint8 levels by job dir), manifest.json, study.tar.gz (the sweep without
    checkpoints and intermediate grids, plus ``--extra`` files), study.txt, and the table.md
    and montage.png of the sweep into ``out``."""
    import numpy as np  # heavy imports after `env` (module docstring)

    from gansweep.report.table import find_jobs

    sweep, out = Path(args.sweep), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries, skipped, arrays = [], [], {}
    for job in find_jobs(sweep):
        summary = _summary(job)
        status = summary.get("status", "no summary.json")
        # interrupted (stopped at the time limit) or running (killed): its last checkpoint
        if status not in ("ok", "interrupted", "running") or not (
                job / "checkpoints/last.pt").is_file():
            skipped.append(f"{job.name}: {status}, {summary.get('error') or 'no final G'}")
            continue
        t0 = time.perf_counter()
        arrays[job.name], entry = draw_levels(job, summary, args.device)
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        entries.append(entry)
    chunks = pack([_deflated_size(arrays[e["job"]]) for e in entries], SAMPLES_LIMIT)
    chunks = [[entries[i] for i in chunk] for chunk in chunks]
    files = []
    for i, chunk in enumerate(chunks):
        files.append("samples.npz" if len(chunks) == 1 else f"samples_{i + 1}.npz")
        np.savez_compressed(out / files[-1], **{e["job"]: arrays[e["job"]] for e in chunk})
        for e in chunk:
            e["file"] = files[-1]
    manifest = {"study_id": f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.uname().nodename}",
                "sweep": str(sweep), "files": files, "runs": entries, "skipped": skipped,
                "levels": "uint8 (N, 28, 28); images = levels / 127.5 - 1, as fid.quantize"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with tarfile.open(out / "study.tar.gz", "w:gz") as tar:
        tar.add(sweep, arcname="sweep", filter=lambda info: None if any(
            part in info.name for part in LEFT_OUT) or "/samples/0" in info.name else info)
        for extra in args.extra or []:
            if Path(extra).exists():
                tar.add(extra, arcname=f"extra/{Path(extra).name}")
    # table.md and montage.png to look at, where the return has room (both are in the archive)
    room = RETURN_FILES - len(files) - 3  # manifest.json, study.tar.gz, study.txt
    shown = [n for n in ("table.md", "montage.png") if (sweep / n).exists()][:max(room, 0)]
    for name in shown:
        shutil.copyfile(sweep / name, out / name)
    lines = [_run_line(e) for e in entries] + [f"skipped {s}" for s in skipped]
    lines.append(f"returned: {', '.join(files + ['manifest.json', 'study.tar.gz', *shown])}")
    (out / "study.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if entries else 1


def pack(sizes: list[int], limit: int) -> list[list[int]]:
    """Indices of ``sizes`` in order, in consecutive groups whose sums stay within ``limit``
    (a single item over it gets a group of its own)."""
    groups, total = [], 0
    for i, size in enumerate(sizes):
        if not groups or total + size > limit:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def _deflated_size(levels) -> int:
    """Bytes of ``levels`` deflated as np.savez_compressed stores it (zlib's default level)."""
    return len(zlib.compress(levels.tobytes(), 6)) + 1024  # + the .npy and zip headers


def _run_line(e: dict) -> str:
    check = e.get("fid_lenet_check") or {}
    lenet = (f", fid_lenet {check['summary']:.4f} in training, {check['exported']:.4f} "
             "from the exported samples" if check else "")
    return (f"{e['job']}: {e['status']}, {e['epochs_done']} epochs ({e['batches_done']} "
            f"batches) on {e['device']}, {e['num_samples']} samples{lenet}")


# ----------------------------------------------------------------------------- score (here)
def score(args) -> int:
    """Each returned run's samples scored by the ``fid`` overrides' evaluator (default
    ``fid=inception fid.metrics=[fid]``: 3000 samples against all 60,000 training images in
    float32), recorded as ``gansweep-eval`` records them, and the table rebuilt."""
    import numpy as np  # heavy imports after `env` (module docstring)
    from hydra.utils import instantiate

    from gansweep import artifacts
    from gansweep.device import configure_backends, isolated_rng, resolve_device
    from gansweep.fid.frechet import quantize
    from gansweep.report.aggregate import aggregate
    from gansweep.runs.rescore import compose_fid, eval_settings, settings_hash

    returned = Path(args.returned)
    manifest = json.loads((returned / "manifest.json").read_text())
    dest = Path(args.dest or REPO / "outputs" / "gpu_study" / manifest["study_id"])
    if not (dest / "sweep").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(returned / "study.tar.gz") as tar:
            tar.extractall(dest, filter="data")
    overrides = list(args.overrides)
    if not any(o.split("=")[0] == "fid" for o in overrides):
        overrides.insert(0, "fid=inception")
    if not any(o.startswith("fid.metrics=") for o in overrides):
        overrides.append("fid.metrics=[fid]")
    fid_cfg = compose_fid(overrides)
    settings = eval_settings(fid_cfg)
    digest = settings_hash(settings)
    device = resolve_device(args.device)
    configure_backends(device)  # IEEE float32, as in training
    evaluator = instantiate(fid_cfg, data_root=args.data_root, device=device)
    evaluator.preflight()
    arrays = {}
    for name in manifest["files"]:
        with np.load(returned / name) as f:
            arrays.update({key: f[key] for key in f.files})
    rows = []
    for entry in manifest["runs"]:
        levels = arrays[entry["job"]]
        if hashlib.sha256(levels.tobytes()).hexdigest() != entry["sha256"]:
            raise SystemExit(f"error: the samples of {entry['job']} do not match their sha256")
        images = to_images(levels)
        if evaluator.num_samples > len(images):
            raise SystemExit(f"error: fid.num_samples={evaluator.num_samples} but "
                             f"{entry['job']} brought back {len(images)} samples. Fix: "
                             f"fid.num_samples={len(images)}")
        assert np.array_equal(quantize(images).numpy(), images.numpy())  # already 8-bit
        path = (dest / "sweep" / entry["job"] / "evals"
                / f"final_{fid_cfg.extractor}_{digest}.json".replace("/", "-"))
        if path.exists() and not args.force:
            record = json.loads(path.read_text())
        else:
            t0 = time.perf_counter()
            with isolated_rng(device):
                result = evaluator(lambda n: images[:n])
            record = {"which": "final", "epoch": entry["epoch"], "step": entry["step"],
                      "settings": settings, "hash": digest,
                      "extractor": evaluator.extractor_name,
                      "values": {k: v for k, v in result.items()
                                 if k not in ("objective", "objective_metric", "fid")},
                      "fid": result.get("fid"), "seconds": round(time.perf_counter() - t0, 3),
                      "time": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(device),
                      "samples": {k: entry[k] for k in ("device", "sha256", "num_samples")}}
            artifacts.write_json(record, path)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in record["values"].items()
                          if isinstance(v, float) and not k.startswith("floor_"))
        rows.append(f"{entry['job']} ({entry['epochs_done']} epochs, {entry['status']}): {shown}")
        print(rows[-1], flush=True)
    aggregate([dest / "sweep"], echo=False)
    (dest / "scores.txt").write_text("\n".join(rows) + "\n")
    print(f"table: {dest / 'sweep' / 'table.md'} (also table.html); records: "
          f"<run>/evals/final_{fid_cfg.extractor}_{digest}.json under {dest / 'sweep'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gansweep.gpu_study",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env", help="shell lines: the copied wheels importable (stdlib only)")
    p.add_argument("--wheels", default=str(CARRIED / "wheels"))
    p.add_argument("--site", default=os.environ.get("GANSWEEP_GPU_SITE", "/tmp/gansweep-gpu-site"))
    p = sub.add_parser("plan", help="epochs per run that fit before the deadline")
    p.add_argument("calibration", help="the calibration sweep dir (1 epoch, fid=none)")
    p.add_argument("--launch-seconds", type=float, required=True,
                   help="wall seconds the calibration sweep took, launch to exit")
    p.add_argument("--deadline", type=float, required=True, help="unix time to be done by")
    p.add_argument("--reserve", type=float, default=60.0,
                   help="seconds kept for the final evaluation, export and packing")
    # measured/calibrated seconds per batch on the H200: 7 runs 24.7/22.35 ms (1.11), 21 runs
    # 73.8/60.45 ms (1.22: the 1-epoch calibration overlaps with the staggered starts of 21
    # processes, so fewer ran at once than in the study); at 1.15 the 21 runs finished 13 s
    # before the stop (docs/performance.md, "One H200")
    p.add_argument("--margin", type=float, default=1.3)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--out", required=True, help="plan.json")
    p = sub.add_parser("export", help="samples of each run's final G, manifest, archive")
    p.add_argument("sweep"), p.add_argument("out")
    p.add_argument("--device", default=None, help="default: each run's own")
    p.add_argument("--extra", nargs="*", help="more files for the archive (logs, plan.json)")
    p = sub.add_parser("score", help="FID of the returned samples, as gansweep-eval records it")
    p.add_argument("returned", help="the folder the device run brought back")
    p.add_argument("overrides", nargs="*", help="default: fid=inception fid.metrics=[fid]")
    p.add_argument("--data-root", default="data", help="MNIST for the reference statistics")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dest", help="where it is unpacked (default outputs/gpu_study/<id>)")
    p.add_argument("--force", action="store_true", help="score again what is recorded")
    args = parser.parse_args(argv)
    if args.command != "env":  # the other commands log like gansweep-eval
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    return {"env": env, "plan": plan, "export": export, "score": score}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
