"""The text ``gansweep-bench`` prints: its JSON report as markdown tables (pandas'
``DataFrame.to_markdown``) and one line per figure that is not a table."""

from __future__ import annotations

import pandas as pd


def _markdown(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def steps_table(report: dict) -> str:
    """One row per (gan_type, impl) pair; the peer's step (if timed) is the 1.00x row."""
    peer = report.get("peer")
    rows = []
    for row in report["results"].values():
        ours = not row.get("peer")
        cells = {
            "gan_type": row["gan_type"],
            "impl": row["impl"] if ours else f"{row['impl']} ({row['framework']})",
            "median s/step": f"{row['median_s']:.3f}", "min s": f"{row['min_s']:.3f}",
            "CPU s/step": f"{row['cpu_median_s']:.3f}",
            "GFLOP/step": f"{row['gflop_per_step']:.1f}" if ours else "-",
            "GFLOP/s": f"{row['gflops']:.1f}" if ours else "-",
            "% of peak": f"{100 * row['fraction_of_peak']:.0f}%" if ours else "-",
            "speed-up": _x(row.get("speedup_vs_reference")),
            "loop s/step": f"{row['loop_s_per_step']:.3f}" if ours else "-",
        }
        if peer:
            cells[f"vs {peer}"] = _x(row.get("speedup_vs_peer")) if ours else "1.00x"
        rows.append(cells)
    return _markdown(rows)


def profile_table(profile: dict) -> str:
    return _markdown([{"op": op["op"], "input shapes": op["shapes"],
                       "ms/step": f"{op['ms_per_step']:.2f}",
                       "calls/step": f"{op['calls_per_step']:g}",
                       "share": f"{100 * op['share']:.1f}%"} for op in profile["ops"]])


def metric_cost_table(cost: dict) -> str:
    return _markdown([{"metric": name, "wall s": f"{r['wall_s']:.3f}", "CPU s": f"{r['cpu_s']:.3f}"}
                      for name, r in cost["per_metric"].items()])


def format_report(report: dict) -> str:
    """The whole report as text: header, steps table, per-figure lines, profiles, costs."""
    arithmetic = "bfloat16" if report.get("precision") == "bf16" else "float32"
    peaks = ", ".join(f"{name} {value:.1f}"
                      for name, value in report.get("matmul_peaks_gflops", {}).items())
    lines = [f"device {report['device']}, torch {report['torch']}, {report['threads']} threads, "
             f"load average {report['load_average'][0]:.2f}, batch {report['batch_size']}, "
             f"{report['steps']} timed steps after {report['warmup']} warm-up (interleaved)",
             f"{arithmetic} matmul peak (best GEMM in this process, the steps' arithmetic): "
             f"{report['matmul_peak_gflops']:.1f} GFLOP/s ({peaks})", "", steps_table(report)]
    results = report["results"]
    for row in results.values():
        if row.get("speedup_vs_peer"):
            theirs = results[f"{row['gan_type']}/{report['peer']}"]
            lines.append(f"{row['gan_type']}: {row['impl']} is {row['speedup_vs_peer']:.2f}x the "
                         f"{report['peer']} step's speed (median {row['median_s']:.3f} s vs "
                         f"{theirs['median_s']:.3f} s)")
    costs = next(r for r in results.values() if not r.get("peer"))["loop_costs"]
    lines.append(f"loop s/step = median + logging read-back {costs['log_s'] * 1e3:.2f} ms / "
                 f"{costs['log_every']} batches + checkpoint ({costs['checkpoint_mb']:.0f} MB) "
                 f"{costs['checkpoint_s']:.3f} s / {costs['checkpoint_every_batches']} batches")
    if "max_memory_allocated_mb" in report:
        lines.append(f"peak CUDA memory of the timed steps: {report['max_memory_allocated_mb']:.0f} "
                     f"MB allocated, {report['max_memory_reserved_mb']:.0f} MB reserved")
    for impl, probe in report.get("full_mnist_rss", {}).items():
        if probe.get("status") == "ok":
            lines.append(f"peak RSS, one {probe['gan_type']} run, {impl}, full MNIST "
                         f"({probe['images']} images, {probe['steps']} steps): "
                         f"{probe['peak_rss_mb']:.0f} MB (ru_maxrss; VmHWM {probe['vm_hwm_mb']:.0f} MB)")
        else:
            lines.append(f"peak RSS probe ({impl}) failed: {probe.get('stderr', '')[-300:]}")
    lines.append(f"peak RSS of this bench process (all runs): "
                 f"{report['bench_process_peak_rss_mb']:.0f} MB")
    for name, result in report.get("fid_features", {}).items():
        lines.append(f"FID features ({name}): " + (
            f"{result['images_per_s']} images/s (batch {result['batch']})"
            if result["status"] == "ok" else f"skipped ({result['reason']})"))
    for name, row in results.items():
        if prof := row.get("profile"):
            lines += ["", f"Per-op profile, {name} ({prof['steps']} steps under torch.profiler, "
                          f"{prof['ms_per_step']} ms/step of {prof['clock']} self time; top "
                          f"{len(prof['ops'])}):", profile_table(prof)]
    cost = report.get("metric_cost")
    if cost and "per_metric" in cost:
        lines += ["", f"Evaluation cost per metric ({cost['samples']} x {cost['feature_dim']} "
                      "LeNet features, median of 3; 'all' shares the dot products):",
                  metric_cost_table(cost)]
    elif cost:
        lines.append(f"evaluation cost: skipped ({cost['reason']})")
    return "\n".join(lines)
