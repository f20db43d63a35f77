"""The trunk's generations in windows, run after run: where a slow stretch of a run spends its time.

Each run is its own process running ``train`` as ``ggevo-train optimizer=<preset> model.hidden=<H>`` does, for
``--generations`` trunk generations (``trunk_fraction`` unset: the trunk alone), the same seed every time, so every
run computes the same numbers. It times each trunk generation (``GEMONN._trunk_step``), its masked Adam step
(``GEMONN._local_search``) and, inside that, the compiled kernel's call (``adam_kernel_``), and prints the medians
of each window of ``--window`` generations (its first 10 left out), the page faults a generation, and one probe a
window taken halfway through it: the subnormal floats in the trunk's weights, gradient and moments, and the seconds
of a cold read (``sum``) and a cold write (``mul_(1.0)``, the same values) of its weights against a fresh copy's,
after writing 96 MB to push them out of the caches. In 5 generations a window (after the probe's) the 96 MB are
written again just before the kernel's call, which is timed on its own: the kernel on data that no cache holds.
``--rehome N`` moves the population and its moments to fresh memory every N generations (``run_state``'s ``X``,
``M`` and ``V`` cloned: the numbers unchanged). Last, per run, its slow windows: those whose kernel took more than
twice the fastest window's of all the runs (a run can be slow throughout).

    python benchmarks/trunk_windows.py                          # 4 runs of 1,500 generations, H=500
    python benchmarks/trunk_windows.py --runs 8 --rehome 250
    python benchmarks/trunk_windows.py --runs 6 -- threads=1   # overrides after -- go to every run
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUBNORMAL = 1.1754944e-38


def child(args: argparse.Namespace) -> None:
    """One run, instrumented; prints one JSON line per window."""
    import torch

    import ggevo.ea.gemonn as gemonn
    import ggevo.ea.operators.lamarck as lamarck
    from phases import StepTimer, composed

    rec: dict[str, list] = defaultdict(list)
    flush = {"now": False}  # this generation's kernel runs right after the caches are flushed
    evict = torch.empty(96 << 18)  # 96 MB of float32

    def cold(fn, t: torch.Tensor) -> float:
        best = float("inf")
        for _ in range(3):
            evict.fill_(1.0)
            start = time.perf_counter()
            fn(t)
            best = min(best, time.perf_counter() - start)
        return best

    def probe(X, G, moments) -> dict:
        copy = X.clone()
        found = {f"subnormal_{k}": int(((t.abs() < SUBNORMAL) & (t != 0)).sum())
                 for k, t in (("X", X), ("G", G), ("M", moments.M), ("V", moments.V))}
        return found | {"read_row_ms": cold(torch.sum, X) * 1e3, "read_copy_ms": cold(torch.sum, copy) * 1e3,
                        "write_row_ms": cold(lambda t: t.mul_(1.0), X) * 1e3,
                        "write_copy_ms": cold(lambda t: t.mul_(1.0), copy) * 1e3}

    trunk_step, local_search, built = gemonn.GEMONN._trunk_step, gemonn.GEMONN._local_search, lamarck.maybe_compiled

    def timed_trunk_step(self, *a, **k):
        done = len(rec["generation"])
        if args.rehome and done and done % args.rehome == 0:
            for key in ("X", "M", "V"):
                self.run_state[key] = self.run_state[key].clone()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        out = trunk_step(self, *a, **k)
        rec["generation"].append(time.perf_counter() - start)
        rec["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
        return out

    def timed_local_search(self, X, F, G, moments, *a, **k):
        at = len(rec["adam"]) % args.window - args.window // 2
        if at == 0:
            rec["probe"].append(probe(X, G, moments))
        flush["now"] = 1 <= at <= 5
        start = time.perf_counter()
        out = local_search(self, X, F, G, moments, *a, **k)
        rec["adam"].append(time.perf_counter() - start)
        return out

    def timed_built(fn, enabled):
        call = built(fn, enabled)
        if fn.__name__ != "adam_kernel_":
            return call

        def timed(*a, **k):
            if flush["now"]:
                evict.fill_(1.0)
            start = time.perf_counter()
            out = call(*a, **k)
            rec["kernel"].append(time.perf_counter() - start)
            rec["flushed"].append(flush["now"])
            return out
        return timed

    gemonn.GEMONN._trunk_step, gemonn.GEMONN._local_search = timed_trunk_step, timed_local_search
    lamarck.maybe_compiled = timed_built
    from ggevo.pipeline.run.train import train

    steps = args.generations
    with tempfile.TemporaryDirectory() as tmp:
        cfg = composed(f"optimizer={args.preset}", f"model.hidden={args.hidden}", f"trainer.max_steps={steps}",
                       f"trainer.val_check_interval={steps}", f"checkpoint.every_n_steps={steps}",
                       f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db", f"run_dir={tmp}/run", *args.overrides)
        cfg.optimizer.trunk_fraction = None  # the trunk in generations (8,000 in the preset): longer than the run
        train(cfg, callbacks=[StepTimer()])
    for w, start in enumerate(range(0, steps - args.window + 1, args.window)):
        part = slice(start + 10, start + args.window)
        print(json.dumps({"from": start, **{f"{k}_ms": statistics.median(rec[k][part]) * 1e3
                                             for k in ("generation", "adam")},
                          **{f"kernel{name}_ms": statistics.median(
                              t for t, f in zip(rec["kernel"][part], rec["flushed"][part]) if f == flushed) * 1e3
                             for name, flushed in (("", False), ("_flushed", True))},
                          "faults": statistics.fmean(rec["faults"][part]), **rec["probe"][w]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--generations", type=int, default=1500)
    ap.add_argument("--window", type=int, default=250)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--preset", default="gemonn_plus_trunk")
    ap.add_argument("--rehome", type=int, default=0, metavar="N", help="fresh memory every N generations (0: never)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="ggevo-train overrides for every run (after --)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error(f"--runs: must be at least 1, got {args.runs}")
    if args.window < 20:  # its first 10 generations are left out, and 5 of the rest run on flushed caches
        ap.error(f"--window: must be at least 20, got {args.window}")
    if args.generations < args.window + 10:
        ap.error(f"--generations: must be at least --window + 10 ({args.window + 10}), got {args.generations}")
    if args.child:
        child(args)
        return
    from phases import cpu_line

    print(cpu_line())
    print(f"optimizer={args.preset} model.hidden={args.hidden}, {args.generations} trunk generations a run, "
          f"windows of {args.window}, rehome every {args.rehome or 'never'} {' '.join(args.overrides)}".rstrip())
    runs = []
    for run in range(1, args.runs + 1):
        cmd = [sys.executable, __file__, "--child", f"--generations={args.generations}", f"--window={args.window}",
               f"--hidden={args.hidden}", f"--preset={args.preset}", f"--rehome={args.rehome}", "--", *args.overrides]
        proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"run {run} failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        runs.append([json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")])
    fastest = min(w["kernel_ms"] for windows in runs for w in windows)
    slow_runs = 0
    for run, windows in enumerate(runs, 1):
        slow = [w["from"] for w in windows if w["kernel_ms"] > 2 * fastest]
        slow_runs += bool(slow)
        print(f"run {run}: " + ("slow from generations " + ", ".join(map(str, slow)) if slow else "no slow window"))
        for w in windows:
            print(f"  {w['from']:5d}: generation {w['generation_ms']:.2f} ms, Adam step {w['adam_ms']:.2f}, "
                  f"its kernel {w['kernel_ms']:.2f} (caches flushed first: {w['kernel_flushed_ms']:.2f}); "
                  f"faults {w['faults']:.1f}/generation; subnormals "
                  f"X/G/M/V {w['subnormal_X']}/{w['subnormal_G']}/{w['subnormal_M']}/{w['subnormal_V']}; cold read "
                  f"row {w['read_row_ms']:.3f} / copy {w['read_copy_ms']:.3f} ms, write row "
                  f"{w['write_row_ms']:.3f} / copy {w['write_copy_ms']:.3f} ms")
    print(f"runs with a slow window (its kernel over twice the fastest window's, {fastest:.2f} ms): "
          f"{slow_runs} of {args.runs}")

if __name__ == "__main__":
    main()
