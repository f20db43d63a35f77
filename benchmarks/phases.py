"""What ``generation.py`` times beyond a fresh population: subnormal floats, late generations, single-network phases.

- ``subnormal_probe``: an elementwise ``x*b+x`` over 4M float32 and a 128×500 @ 500×784 matmul, on
  normal and on subnormal inputs, with ``flush_denormal`` off and on: how much this CPU pays for
  subnormals, and that the flag removes it (a CPU whose penalty is small still shows the flag working).
- ``late_state``: the optimizer state of the paper configuration after ``LATE_GENERATIONS``
  generations of ``ggevo-train experiment=paper_ae`` with ``flush_denormal=false`` (as runs were
  before the flag), made once by a real run and cached in ``benchmarks/.cache/``; generation.py times
  generations resumed from it against generations of a fresh population.
- ``single_network_steps``: a trunk generation of ``optimizer=gemonn_plus_trunk`` (one network, one
  evaluation) against one step of ``optimizer=imp``'s Adam on the same network, each through
  ``train`` as ``ggevo-train`` runs it (Lightning, the recorder on a scratch MLflow store, the minibatch
  stream), the steps timed by a callback and interleaved in rounds, so both see the same machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
CACHE = Path(__file__).resolve().parent / ".cache"
LATE_GENERATIONS = 400

PROBE = """
import sys, time, torch
from ggevo.pipeline.core.numerics import flush_denormals
torch.set_num_threads(int(sys.argv[2]))
flush_denormals(sys.argv[1] == "on")
def timed(fn, repeats=5):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats
g = torch.Generator().manual_seed(0)
tiny = torch.finfo(torch.float32).tiny
x, b = torch.rand(4_000_000, generator=g) + 0.5, torch.full((4_000_000,), 0.5)
xs = x * tiny / 4
a, w = torch.rand(128, 500, generator=g), torch.rand(500, 784, generator=g)
ws = w * tiny / 4
print(timed(lambda: x * b + x), timed(lambda: xs * b + xs), timed(lambda: a @ w), timed(lambda: a @ ws))
"""


def subnormal_probe(threads: int) -> dict[str, tuple[float, float]]:
    """``{"off"|"on": (elementwise subnormal/normal, matmul subnormal/normal)}``, each in a fresh process."""
    out = {}
    for flag in ("off", "on"):
        proc = subprocess.run([sys.executable, "-c", PROBE, flag, str(threads)], capture_output=True, text=True,
                              cwd=ROOT, check=True)
        e_norm, e_sub, m_norm, m_sub = map(float, proc.stdout.split())
        out[flag] = (e_sub / e_norm, m_sub / m_norm)
    return out


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def late_state(hidden: int, pop_size: int) -> dict:
    """GEMONN's state dict after ``LATE_GENERATIONS`` generations of the paper configuration (cached)."""
    path = CACHE / f"paper_ae_H{hidden}_N{pop_size}_g{LATE_GENERATIONS}.pt"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            print(f"making the late state once: {LATE_GENERATIONS} generations of experiment=paper_ae "
                  f"(flush_denormal=false) -> {path.relative_to(ROOT)}", flush=True)
            cmd = [sys.executable, "-m", "ggevo.train", "experiment=paper_ae", f"model.hidden={hidden}",
                   f"optimizer.pop_size={pop_size}", f"trainer.max_steps={LATE_GENERATIONS}",
                   "flush_denormal=false", f"trainer.val_check_interval={LATE_GENERATIONS}",
                   f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db", f"run_dir={tmp}/run"]
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            ckpt = torch.load(Path(tmp) / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                              weights_only=False)
            torch.save(ckpt["optimizer_states"][0], path)
    return torch.load(path, map_location="cpu", weights_only=False)


class StepTimer(pl.Callback):
    """Seconds of each training step (the batch's fetch excluded, every hook of the step included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _steps(preset: str, hidden: int, steps: int, tmp: Path, name: str) -> list[float]:
    from ggevo.pipeline.run.train import train

    cfg = composed(f"optimizer={preset}", f"model.hidden={hidden}", f"trainer.max_steps={steps}",
                   f"trainer.val_check_interval={steps}", f"checkpoint.every_n_steps={steps}",
                   f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db", f"run_dir={tmp}/{name}")
    if cfg.optimizer.get("trunk_fraction") is not None:  # the trunk in generations (8,000): every step timed is one
        cfg.optimizer.trunk_fraction = None
    timer = StepTimer()
    train(cfg, callbacks=[timer])
    return timer.seconds[min(20, steps // 4):]  # past compilation and first-call set-up


def single_network_steps(preset: str, hidden: int, steps: int, rounds: int) -> tuple[list[float], list[float]]:
    """Mean seconds of a trunk generation of ``preset`` and of an IMP step, one pair of runs per round (the mean,
    not the median: a trunk selected on held-out data scores it every few generations, and that counts)."""
    trunk, imp = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            trunk.append(statistics.fmean(_steps(preset, hidden, steps, Path(tmp), f"trunk{r}")))
            imp.append(statistics.fmean(_steps("imp", hidden, steps, Path(tmp), f"imp{r}")))
    return trunk, imp


def median_seconds(fn, repeats: int, warmup: int = 0) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def set_up_as_ggevo_train(threads: int) -> None:
    """This process as ``ggevo-train`` sets itself up: ``threads`` torch threads, large allocations reused and
    subnormals flushed (the defaults); then the CPU line."""
    from ggevo.pipeline.core.memory import reuse_large_allocations
    from ggevo.pipeline.core.numerics import flush_denormals

    torch.set_num_threads(threads)
    reuse_large_allocations()
    flush_denormals(True)
    print(cpu_line())


def cpu_line() -> str:
    """The CPU model (its name, and the family and model numbers that tell apart CPUs a virtual machine
    names alike) and the vector extensions that decide which kernels run (AVX2, AVX-512, AMX)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first processor's
    except OSError:
        pass
    model = fields.get("model name", "unknown CPU")
    if "cpu family" in fields and "model" in fields:
        model += f", family {fields['cpu family']} model {fields['model']}"
    flags = set(fields.get("flags", "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16")
    return f"CPU: {model} ({' '.join(f for f in wanted if f in flags) or 'no AVX flags seen'})"


def timed_generations(opt_factory, model, evaluator, batch, count: int, state: dict | None = None) -> float:
    """Median seconds of ``count`` generations, of a fresh population or resumed from ``state``
    (after one untimed generation: initialisation, or the first after the resume)."""
    opt = opt_factory(model.parameters())
    if state is not None:
        opt.load_state_dict(state)
    opt.step(lambda: (lambda P: evaluator(P, batch)))
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        opt.step(lambda: (lambda P: evaluator(P, batch)))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def report_late(opt_factory, model, evaluator, batch, count: int, hidden: int, pop_size: int,
                rounds: int = 3) -> None:
    """Prints ``late / early generation`` with flush_denormal on (ggevo-train's default) and off: the median
    over ``rounds`` rounds of a fresh block and a late block of ``count`` generations each, the blocks'
    order alternating from round to round, so a slow spell of the machine lands on neither side."""
    from ggevo.pipeline.core.numerics import flush_denormals

    state = late_state(hidden, pop_size)
    lines = []
    for flag in (True, False):
        flush_denormals(flag)
        early, late = [], []
        for r in range(rounds):
            for resumed in ((None, state) if r % 2 == 0 else (state, None)):
                seconds = timed_generations(opt_factory, model, evaluator, batch, count, resumed)
                (early if resumed is None else late).append(seconds)
        ratios = [lt / e for lt, e in zip(late, early)]
        lines.append(f"late / early generation (flush_denormal={'on' if flag else 'off'}): "
                     f"{statistics.median(ratios):.2f} x (range {min(ratios):.2f}-{max(ratios):.2f} over {rounds} "
                     f"rounds; {statistics.median(late):.3f} s after {LATE_GENERATIONS} generations vs "
                     f"{statistics.median(early):.3f} s fresh)")
    flush_denormals(True)
    print("\n".join(lines))


def report_probe(threads: int) -> None:
    probe = subnormal_probe(threads)
    for flag, (elementwise, matmul) in probe.items():
        print(f"subnormal probe (flush_denormal={flag}, {threads} threads): x*b+x over 4M subnormals "
              f"{elementwise:.1f} x normal; 128x500 @ 500x784 with subnormal weights {matmul:.1f} x normal")


def report_single_network(preset: str, hidden: int, steps: int, rounds: int) -> None:
    trunk, imp = single_network_steps(preset, hidden, steps, rounds)
    ratios = [t / i for t, i in zip(trunk, imp)]
    print(f"trunk generation ({preset}) / IMP step (one network, one evaluation, through train; {rounds} rounds of "
          f"{steps} steps, mean per step): {statistics.median(ratios):.2f} x (range {min(ratios):.2f}-"
          f"{max(ratios):.2f}; trunk {statistics.median(trunk) * 1e3:.2f} ms, "
          f"IMP {statistics.median(imp) * 1e3:.2f} ms)")
