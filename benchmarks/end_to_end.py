"""End to end: a bench task's whole training run by GEMONN+'s candidate preset against the gradient baselines, at the
same budget of gradient evaluations, one run after another in this one process's session (so the ratios compare
runs on the same machine in the same minutes), each in a fresh folder with its own MLflow store.

Each run is ``ggevo-train experiment=bench_<task> seed=<seed> <optimizer>``; its time is the run's own
``wall_time_s`` (training, as the README's timing table gives it; start-up and final scoring aside). The first
command is the baseline every ratio is taken against. Rounds alternate the order (the second round runs the list
backwards), so a machine that slows or speeds up during the benchmark does not favour one side.

    python benchmarks/end_to_end.py --task lenet5    # IMP, GMP, the candidate, the candidate scoring every warm-up generation
    python benchmarks/end_to_end.py --task mlp --rounds 2
    python benchmarks/end_to_end.py --task ae --runs imp gemonn_plus_rebase
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from phases import cpu_line

RUNS = {  # label: the optimizer overrides; the first is the baseline
    "imp": ["optimizer=imp"],
    "gmp": ["optimizer=gmp"],
    "gemonn_plus_rebase": ["optimizer=gemonn_plus_rebase"],
    "gemonn_plus_rebase_every_warmup": ["optimizer=gemonn_plus_rebase",
                                        "optimizer.warmup_records=null"],  # scored every warm-up generation
}


def run(task: str, seed: int, overrides: list[str], threads: str, folder: Path) -> float:
    """Training seconds of one ``ggevo-train`` run in ``folder`` (its ``metrics.json``'s ``wall_time_s``)."""
    cmd = ["ggevo-train", f"experiment=bench_{task}", f"seed={seed}", *overrides, f"threads={threads}",
           f"run_dir={folder}", f"hydra.run.dir={folder / 'hydra'}",
           f"logger.tracking_uri=sqlite:///{folder / 'mlflow.db'}", f"logger.artifact_location={folder / 'artifacts'}",
           "logger.log_model=false"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {tail[0]}")
    return float(json.loads((folder / "metrics.json").read_text())["wall_time_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("mlp", "lenet5", "ae"), default="lenet5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", default="auto", help="ggevo-train's threads (auto: every core)")
    ap.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), metavar="LABEL",
                    help=f"which of {list(RUNS)} (the first given is the baseline)")
    args = ap.parse_args()
    runs = {label: RUNS[label] for label in args.runs}
    print(cpu_line())
    print(f"experiment=bench_{args.task} seed={args.seed}, threads={args.threads}, {args.rounds} round(s), "
          "one run at a time; training seconds (wall_time_s)")
    times: dict[str, list[float]] = {label: [] for label in runs}
    with tempfile.TemporaryDirectory(prefix="ggevo-e2e-") as tmp:
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for label in order:
                folder = Path(tmp) / f"{r}-{list(runs).index(label)}"
                times[label].append(run(args.task, args.seed, runs[label], args.threads, folder))
                print(f"  round {r + 1}: {label}: {times[label][-1]:.0f} s", flush=True)
    base = next(iter(runs))
    print(f"{'run':32s} {'median s':>9s} {'/ ' + base:>8s}")
    for label, ts in times.items():
        print(f"{label:32s} {statistics.median(ts):9.0f} {statistics.median(ts) / statistics.median(times[base]):7.2f}x")


if __name__ == "__main__":
    main()
