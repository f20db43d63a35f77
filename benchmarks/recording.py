"""What recording costs a generation of the default job: the population's scoring (N + 2 tied autoencoders,
H=100, batch 128, by vmap: what takes most of the default job's generation) alone, and with the eight status
metrics a generation logs through the run's real recorder into a SQLite MLflow store (held, then stored every
``recorder.FLUSH_SECONDS``). The two alternate over several rounds, in one process, so the machine's drift
reaches each of them alike.

    python benchmarks/recording.py                   # 4 rounds of 300 generations a mode
    python benchmarks/recording.py --generations 600 --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.init import initial_population
from ggevo.lit.status import STATUS_KEYS
from ggevo.lit.tasks import reconstruction_loss
from ggevo.pipeline.core.memory import reuse_large_allocations
from ggevo.pipeline.core.numerics import flush_denormals
from ggevo.pipeline.record import recorder
from generation import setup
from phases import cpu_line

MODES = ("scoring alone", "scored and recorded")


def generations(ev, X, batch, count: int, rec: recorder.Recorder | None, start: int) -> float:
    """Seconds a generation over ``count`` generations: scoring the population, then (with ``rec``) logging
    the eight status metrics of generation ``start + i``; the recorder's held metrics stored at the end."""
    t0 = time.perf_counter()
    for i in range(count):
        F, _ = ev(X, batch)
        if rec is not None:
            rec.log_metrics({k: float(F[0]) + j for j, k in enumerate(STATUS_KEYS)}, step=start + i)
    if rec is not None:
        rec.save()
    return (time.perf_counter() - t0) / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop-size", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--generations", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    reuse_large_allocations()
    flush_denormals(True)
    n = args.pop_size + 2  # the default job's generation: N parents re-scored and 2 children
    _, flat, g, batch = setup(n, args.hidden, args.batch_size)
    X = initial_population(flat.layout, n, generator=g)
    ev = PopulationEvaluator(flat, reconstruction_loss, "vmap")
    print(cpu_line())
    print(f"{n} tied AEs 784-{args.hidden}-784, batch {args.batch_size}, {torch.get_num_threads()} threads; "
          f"{len(STATUS_KEYS)} metrics a generation, stored every {recorder.FLUSH_SECONDS:g} s")
    generations(ev, X, batch, 20, None, 0)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        cfg = OmegaConf.create({"logger": {"experiment_name": "recording", "tracking_uri":
                                           f"sqlite:///{Path(tmp).resolve()}/mlflow.db", "artifact_location": None,
                                           "run_name": None}})
        rec = recorder.Recorder(cfg, Path(tmp) / "run")
        rec.open({}, {"experiment_preset": "recording"})
        times: dict[str, list[float]] = {m: [] for m in MODES}
        step = 1
        for _ in range(args.rounds):
            for mode in MODES:
                times[mode].append(generations(ev, X, batch, args.generations,
                                               None if mode == MODES[0] else rec, step))
                step += args.generations
        rec.close("FINISHED")
    base = statistics.median(times[MODES[0]])
    for mode in MODES:
        ms = [t * 1e3 for t in times[mode]]
        print(f"{mode:20s} {statistics.median(ms):6.2f} ms a generation (rounds {min(ms):.2f}-{max(ms):.2f})")
    extra = statistics.median(times[MODES[1]]) - base
    print(f"recording's cost: {extra * 1e3:.2f} ms a generation ({extra / base:.1%} of the scoring)")


if __name__ == "__main__":
    main()
