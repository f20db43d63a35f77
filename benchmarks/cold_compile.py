"""A process's kernel builds: the seconds ``torch.compile`` takes in a ``ggevo-train`` run with an empty kernel
cache (a newcomer's first run on a machine) and with the cache that run left, inductor trusting the CPU's listed
vector instructions (``ggevo.compiling``, as every run now does) against its own check of each (a g++ test build and
a Python process loading it, per instruction set: the code before), interleaved.

Each run is its own process with its own ``TORCHINDUCTOR_CACHE_DIR`` (a new temporary folder): ``ggevo-train
budget=BUDGET`` on the default job's settings (the bench candidate on the tied autoencoder at H=100, MNIST-5k), its
trunk and its population both compiled. Printed per run: the seconds of its whole ``main()`` (set-up, training and
scoring), the seconds dynamo and inductor spent building (``torch._dynamo.utils.compile_times``, summed over every
graph) and the graphs built.

    python benchmarks/cold_compile.py                    # budget 3000, one round
    python benchmarks/cold_compile.py --budget 0 --rounds 2   # the default job's own budget
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phases import cpu_line

ROOT = Path(__file__).resolve().parents[1]
WAYS = {"trusted (now)": "trust", "checked by test builds (before)": "check"}


def child(way: str, budget: int, folder: Path) -> None:
    """One ``ggevo-train`` in this process; its figures as one JSON line."""
    import torch
    from torch._dynamo.utils import compile_times, counters

    import ggevo.compiling
    from ggevo.train import main

    if way == "check":
        ggevo.compiling._trust_cpu_flags = lambda: None  # inductor's own test builds
    folder.mkdir(parents=True)
    sys.argv = ["ggevo-train", f"run_dir={folder / 'run'}", f"logger.tracking_uri=sqlite:///{folder / 'mlflow.db'}",
                f"data.prepared={ROOT / 'data' / 'mnist5k.npz'}"] + ([f"budget={budget}"] if budget else [])
    start = time.perf_counter()
    main()
    wall = time.perf_counter() - start
    names, seconds = compile_times(repr="csv", aggregate=True)
    built = float(dict(zip(names, seconds)).get("_compile.compile_inner", 0.0))
    print(json.dumps({"wall": wall, "compile": built, "graphs": counters["stats"]["unique_graphs"],
                      "torch": torch.__version__}))


def run(way: str, budget: int, cache: Path, folder: Path) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache))
    env.pop("TORCHINDUCTOR_VEC_ISA_OK", None)
    done = subprocess.run([sys.executable, __file__, "--child", way, "--budget", str(budget), "--dir", str(folder)],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the {way} run failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=3000, help="gradient evaluations (0: the default job's own)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds, the two ways' order alternating")
    ap.add_argument("--child", choices=sorted(set(WAYS.values())), help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.budget, args.dir)
        return
    print(cpu_line())
    print(f"ggevo-train budget={args.budget or 'the default'}, a new kernel cache per way and round, then again "
          "with the cache it left")
    figures: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(WAYS) if r % 2 == 0 else list(reversed(WAYS))
            for name in order:
                cache = Path(tmp) / f"cache-{r}-{WAYS[name]}"
                for state in ("cold", "warm"):
                    folder = Path(tmp) / f"{r}-{WAYS[name]}-{state}"
                    got = run(WAYS[name], args.budget, cache, folder)
                    figures[name][state].append(got["compile"])
                    print(f"  round {r + 1}, {name}, {state} cache: the run {got['wall']:.1f} s, building "
                          f"{got['compile']:.1f} s, {got['graphs']} graphs", flush=True)
    for state in ("cold", "warm"):
        now, before = (statistics.median(figures[name][state]) for name in WAYS)
        print(f"building with a {state} cache, trusted / checked: {now:.1f} / {before:.1f} s = {now / before:.2f} x "
              f"(median of {args.rounds})")


if __name__ == "__main__":
    main()
