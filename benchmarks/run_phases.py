"""Where a whole training run's seconds go, phase by phase: the trunk's one-network generations, the
population's generations, validation, and everything between the steps (checkpoints, the minibatch,
Lightning's hooks), for GEMONN+'s trunk preset and the faithful ``experiment=paper_ae`` against IMP at the
same budget, in one process set up as ``ggevo-train`` sets itself up (every core, large allocations reused,
subnormals flushed).

Each run is ``train`` as ``ggevo-train optimizer=<preset> model.hidden=<H> budget=<B>`` runs it, or, for an
entry ``experiment=<name>``, as ``ggevo-train experiment=<name>`` does (its own size and length; the paper's
is H=500 and 25,000 evaluations), and an entry ``<preset>,<key>=<value>,...`` with those overrides too, each
in its own scratch folder and MLflow store, with a callback that times every training step (the minibatch's
fetch excluded, every hook of the step included) and every validation. Runs alternate (the second round runs
the list backwards), so a machine that slows down during the benchmark favours neither side; the figures
are per round, and the ratios are taken within a round.

    python benchmarks/run_phases.py                      # IMP and gemonn_plus_trunk, H=500, 25,000 evaluations
    python benchmarks/run_phases.py --budget 5000        # a shorter look
    python benchmarks/run_phases.py --presets imp gemonn_plus_trunk gemonn_plus_gradual --rounds 2
    python benchmarks/run_phases.py --presets imp experiment=paper_ae gemonn_plus_trunk --rounds 2   # the README's three
    python benchmarks/run_phases.py --presets imp gemonn_plus_trunk gemonn_plus_trunk,checkpoint.every_n_steps=100
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from phases import StepTimer, composed, set_up_as_ggevo_train


class RunTimer(StepTimer):
    """Step times (``StepTimer``), validation seconds, and what the optimizer did: its trunk's length and
    its evaluations (a gradient baseline: one evaluation a step, no trunk)."""

    def __init__(self) -> None:
        super().__init__()
        self.validation, self._val_start, self.trunk, self.evaluations = 0.0, 0.0, 0, None

    def on_validation_start(self, *args) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, *args) -> None:
        self.validation += time.perf_counter() - self._val_start

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        opt = trainer.optimizers[0]
        hp = opt.param_groups[0]
        self.trunk = int(hp.get("trunk", 0) or 0)
        state = getattr(opt, "run_state", None)
        if isinstance(state, dict) and "evaluations" in state:
            self.evaluations = int(state["evaluations"])


def run(preset: str, hidden: int, budget: int, tmp: Path, name: str) -> dict:
    from ggevo.pipeline.run.train import train

    preset, *overrides = preset.split(",")
    run_as = [preset] if preset.startswith("experiment=") else [
        f"optimizer={preset}", f"model.hidden={hidden}", f"budget={budget}"]
    cfg = composed(*run_as, *overrides, f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db",
                   f"logger.artifact_location={tmp}/artifacts", "logger.log_model=false", f"run_dir={tmp}/{name}")
    timer = RunTimer()
    train(cfg, callbacks=[timer])
    wall = float(json.loads((tmp / name / "metrics.json").read_text())["wall_time_s"])
    steps = timer.seconds
    trunk = steps[:timer.trunk]
    rest = steps[timer.trunk:]
    evaluations = timer.evaluations if timer.evaluations is not None else len(steps)
    return {"wall": wall, "steps": len(steps), "trunk_s": sum(trunk), "trunk_steps": len(trunk),
            "rest_s": sum(rest), "rest_steps": len(rest), "rest_evaluations": evaluations - len(trunk),
            "validation_s": timer.validation, "between_s": wall - sum(steps) - timer.validation}


def report(label: str, r: dict, base: dict | None) -> None:
    ratio = f" ({r['wall'] / base['wall']:.2f}x)" if base is not None else ""
    print(f"  {label}: training {r['wall']:.1f} s{ratio}, {r['steps']} steps")
    if r["trunk_steps"]:
        print(f"    trunk: {r['trunk_steps']} generations, {r['trunk_s']:.1f} s, "
              f"{r['trunk_s'] / r['trunk_steps'] * 1e3:.2f} ms each (one evaluation)")
    per_eval = r["rest_s"] / max(r["rest_evaluations"], 1) * 1e3
    population = r["trunk_steps"] or r["rest_evaluations"] != r["rest_steps"]  # else a gradient baseline's steps
    print(f"    {'population' if population else 'steps'}: "
          f"{r['rest_steps']} steps, {r['rest_evaluations']} evaluations, {r['rest_s']:.1f} s, "
          f"{r['rest_s'] / max(r['rest_steps'], 1) * 1e3:.2f} ms a step, {per_eval:.2f} ms an evaluation")
    print(f"    validation {r['validation_s']:.1f} s; between the steps (checkpoints, minibatches, hooks) "
          f"{r['between_s']:.1f} s, {r['between_s'] / max(r['steps'], 1) * 1e3:.2f} ms a step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["imp", "gemonn_plus_trunk"],
                    help="conf/optimizer/<preset>.yaml names, or experiment=<name>, each optionally followed by "
                         ",<key>=<value> overrides; the first is the baseline")
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--budget", type=int, default=25000)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    set_up_as_ggevo_train(torch.get_num_threads())
    print(f"tied AE 784-{args.hidden}-784 on MNIST-5k, {args.budget:,} evaluations (an experiment= entry: "
          "its own), one run at a time; training seconds (wall_time_s)")
    with tempfile.TemporaryDirectory(prefix="ggevo-phases-") as tmp:
        for r in range(args.rounds):
            order = args.presets if r % 2 == 0 else list(reversed(args.presets))
            results = {p: run(p, args.hidden, args.budget, Path(tmp), f"{r}-{re.sub('[^A-Za-z0-9_.]', '-', p)}")
                       for p in order}
            print(f"round {r + 1}:")
            base = results[args.presets[0]]
            for p in args.presets:
                report(p, results[p], None if p == args.presets[0] else base)


if __name__ == "__main__":
    main()
