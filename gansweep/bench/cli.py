"""``gansweep-bench``: the command. Its arguments, then the runs (``gansweep.bench.suite``),
the JSON report written and its tables printed (``gansweep.bench.report``)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

GAN_TYPES = ("standard", "coulomb")
IMPLS = ("reference", "fast")
PEERS = ("keras",)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gansweep-bench",
        description="How fast is one training step, and how close to the machine's peak?")
    parser.add_argument("--gan-types", nargs="+", default=list(GAN_TYPES), choices=GAN_TYPES)
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per pair")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per pair first")
    parser.add_argument("--peer", choices=PEERS, default=None,
                        help="also time the seed's step in this framework, interleaved "
                             "(keras: Keras 3 on TensorFlow CPU, pip install 'gansweep[keras-peer]')")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="trainer.threads")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--limit", type=int, default=4096,
                        help="MNIST images loaded for the timed runs (0: all)")
    parser.add_argument("--peak-size", type=int, default=2048,
                        help="n of the n x n x n float32 matmul that measures the peak")
    parser.add_argument("--no-rss", dest="rss", action="store_false",
                        help="skip the full-MNIST peak-RSS child processes")
    parser.add_argument("--rss-steps", type=int, default=3)
    parser.add_argument("--no-fid", dest="fid", action="store_false")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false",
                        help="skip the per-metric evaluation cost (KID, PRDC, FID)")
    parser.add_argument("--metric-samples", type=int, default=3000,
                        help="samples (and reference features) for the evaluation cost")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="after the timed rounds, profile STEPS steps of each of our pairs "
                             "and print where the time goes, op by op (torch.profiler)")
    parser.add_argument("--profile-top", type=int, default=15, help="ops shown per profile")
    parser.add_argument("--json", default=None,
                        help="where to write the JSON (default outputs/bench/bench_<time>.json)")
    parser.add_argument("-o", "--overrides", nargs="*", default=[],
                        help="extra Hydra overrides for every run, e.g. trainer.threads=2")
    parser.add_argument("--pack", type=int, default=0, metavar="N",
                        help="instead: run-steps/s of N runs packed into one model vs the same "
                             "N runs stepped separately vs 1 run alone (gansweep.packed)")
    parser.add_argument("--pack-conv", choices=("grouped", "bmm", "loop", "all"), default="all",
                        help="with --pack: the packed convolutions to time")
    parser.add_argument("--no-pack-processes", dest="pack_processes", action="store_false",
                        help="with --pack: leave out the N runs as N separate processes")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # torch, Hydra and the trainer load only now, so --help and a bad flag answer at once
    from gansweep.bench import measure, pack, report, suite
    from gansweep.device import check_device_name

    if (problem := check_device_name(args.device)) is not None:
        parser().error(f"--device {args.device}: {problem}")

    if args.rss_probe:
        measure.probe_main(args.overrides, args.steps)
        return
    if args.pack:
        result = pack.bench(args)
        path = Path(args.json or f"outputs/bench/pack_{time.strftime('%Y-%m-%d_%H-%M-%S')}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(pack.format_report(result))
        print(f"\nJSON: {path}")
        return
    if args.peer == "keras" and not measure.tensorflow_importable():
        parser().error("--peer keras needs TensorFlow, which is not installed here; "
                       "install it with: pip install 'gansweep[keras-peer]'")
    result = suite.bench(args)
    path = Path(args.json or f"outputs/bench/bench_{time.strftime('%Y-%m-%d_%H-%M-%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(report.format_report(result))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
