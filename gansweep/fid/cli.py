"""FID reference statistics, real-data floors and extractor weights, ahead of training.

An Inception reference of the 60,000 training images takes about an hour on 2 CPU cores
(docs/performance.md); a sweep's jobs then read the cache.

    gansweep-fid ref [--extractor lenet|inception|<class path>] [--limit N] [--estimate-only]
    gansweep-fid floor [--num-samples 3000] [--metrics fid,kid,...]
    gansweep-fid fetch-weights [--extractor inception] [--cache-dir DIR]

The shipped LeNet is trained by ``gansweep-lenet train`` (``gansweep.fid.lenet``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from gansweep.data.mnist import load_mnist
from gansweep.device import configure_backends, resolve_device
from gansweep.fid.cache import floor, reference_stats
from gansweep.fid.evaluator import DEFAULT_METRICS, FidEvaluator
from gansweep.fid import lenet, registry
from gansweep.fid.extractors import default_cache_dir, load_extractor
from gansweep.fid.frechet import FIDError


def _device(name: str) -> torch.device:
    """The CLI's device, with training's default arithmetic (float32, no TF32), so the
    statistics it caches are the ones training runs look up."""
    device = resolve_device(name)
    configure_backends(device)
    return device


def _cmd_ref(args) -> int:
    ext = load_extractor(args.extractor, _device(args.device), args.cache_dir, args.batch_size,
                         precision=args.precision)
    if args.estimate_only:
        data = load_mnist(args.root, "train", None)
        rate = ext.throughput(data.x)
        n = args.limit or len(data)
        print(f"{ext.name}: {rate:.2f} images/s on {ext.device} (batch {ext.batch_size}, "
              f"{torch.get_num_threads()} threads); {n} reference images would take about "
              f"{tqdm.format_interval(n / rate)}.")
        return 0
    mu, sigma, meta = reference_stats(ext, args.root, args.limit, args.cache_dir)
    print(json.dumps(meta))
    return 0


def _cmd_floor(args) -> int:
    device = _device(args.device)
    extractor = load_extractor(args.extractor, device, args.cache_dir, args.batch_size,
                               precision=args.precision)
    result = floor(extractor, args.num_samples, args.limit, args.root, args.cache_dir,
                   device, progress=True)
    if args.metrics:  # KID, precision/recall, density/coverage of the same real images
        evaluator = FidEvaluator(
            args.extractor, args.num_samples, args.limit, args.batch_size,
            cache_dir=args.cache_dir or default_cache_dir(), metrics=args.metrics.split(","),
            ref_features=args.ref_features, precision=args.precision, data_root=args.root,
            device=device)
        floors = evaluator.metric_floor()
        result = {**result, "metrics": {k: v for k, v in floors.items() if k != "details"}}
    print(json.dumps(result, indent=2))
    return 0


def _cmd_fetch(args) -> int:
    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    path = registry.implementation(args.extractor)().fetch_weights(cache_dir)
    entry = registry.info(args.extractor)
    print(f"{entry.name} weights: {path} (sha256 verified)" if path else
          f"{entry.name} weights ship with their package: {entry.weights}")
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gansweep-fid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--extractor", default="lenet",
                        help=f"{' | '.join(registry.names())} | a FeatureExtractor class path")
    common.add_argument("--root", default="data", help="MNIST idx folder")
    common.add_argument("--cache-dir", default=None,
                        help="default: $GANSWEEP_CACHE or ~/.cache/gansweep")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda")
    common.add_argument("--batch-size", type=int, default=None)
    common.add_argument("--precision", default="fp32",
                        help="as fid.precision: bf16 runs Inception's convolutions in bfloat16 "
                             "(faster on a CPU with AVX512_BF16; FID slightly off float32's, "
                             "docs/evaluation.md); its reference statistics are cached apart")
    common.add_argument("--limit", type=int, default=None,
                        help="reference: first N training images (default: all 60000)")
    p = sub.add_parser("ref", parents=[common], help="compute and cache reference statistics")
    p.add_argument("--estimate-only", action="store_true",
                   help="only measure throughput on one batch and print the expected time")
    p = sub.add_parser("floor", parents=[common],
                       help="FID of real held-out test images vs the reference")
    p.add_argument("--num-samples", type=int, default=3000)
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help="also these metrics' floors (as fid.metrics; '' for the FID only)")
    p.add_argument("--ref-features", type=int, default=10000,
                   help="as fid.ref_features: seeded real subset for the non-FID metrics")
    p = sub.add_parser("fetch-weights", help="obtain and verify an extractor's weights")
    p.add_argument("--extractor", default="inception",
                   help=f"{' | '.join(registry.names())} | a FeatureExtractor class path")
    p.add_argument("--cache-dir", default=None)
    sub.add_parser("train-classifier", add_help=False, help="same as `gansweep-lenet train`")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train-classifier"]:  # the command that trained the shipped LeNet
        return lenet.main(["train", *argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parser().parse_args(argv)
    commands = {"ref": _cmd_ref, "floor": _cmd_floor, "fetch-weights": _cmd_fetch}
    try:
        return commands[args.command](args)
    except (FIDError, RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
