"""Where one GEMONN generation spends its time, as ratios measured in one run.

On the paper's configuration (N=50, 784-500-784 tied autoencoder, batch 128) it times
  (a) evaluating N networks (loss + gradient) by the per-individual loop and by vmap,
  (b) the variation operators (fused gradient-guided SBX + zeroing mutation),
  (c) selection and bookkeeping (ranking, crowding, tournament, survival, densities, status),
  (d) the loop floor: one network's forward+backward on one minibatch, in a plain autograd loop,
and prints (operators + selection) / evaluation, vmap / loop and wall per evaluation / floor.

(b) and (c) are measured inside real ``step`` calls of the optimizer that ``--preset`` names
(``conf/optimizer/<preset>.yaml``, composed as ``ggevo-train optimizer=<preset>`` would): the
step's wall time minus the time its evaluator spent, so nothing of the generation is left out.
Generations evaluate by ``evaluation.strategy=auto`` (measured on the first population).

    python benchmarks/generation.py                      # paper configuration, faithful preset
    python benchmarks/generation.py --hidden 100         # the default run's model
    python benchmarks/generation.py --preset gemonn_plus # another optimizer preset
    python benchmarks/generation.py --scaling            # + table over N x H (one process per point)
    python benchmarks/generation.py --sign-agreement     # the model as experiment=paper_ae runs it

It also prints (``phases.py``) the CPU, a subnormal-float probe with ``flush_denormal`` off and on,
``late / early generation`` (generations resumed from the paper configuration after 400 generations
against a fresh population's, made once and cached), and with ``--preset gemonn_plus_trunk`` or
``gemonn_plus_gradual`` a trunk generation against an IMP step on the same network, both run through
``train`` (``--rounds`` pairs of runs, 5 by default; their median ratio). ``--flush-denormal off`` times
everything with the CPU's gradual underflow (``ggevo-train flush_denormal=false``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from ggevo.compiling import maybe_compiled
from ggevo.data.sources import load_arrays
from ggevo.ea import FlatParams
from ggevo.ea.compiling import replace_rows_, row_density_and_finite
from ggevo.ea.evaluate import PopulationEvaluator
from ggevo.ea.init import initial_population
from ggevo.ea.operators.crossover.sbx_kernel import run_kernel
from ggevo.ea.operators.mutation.zero_mutation import zero_mutation_
from ggevo.ea.selection import binary_tournament, rank_and_crowding
from ggevo.lit.tasks import reconstruction_loss
from ggevo.models import TiedAutoencoder
from ggevo.pipeline.core.memory import reuse_large_allocations
from ggevo.pipeline.core.numerics import flush_denormals
from ggevo.pipeline.run.build import optimizer_factory as build_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phases import cpu_line, median_seconds, report_late, report_probe, report_single_network  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
SCALING_N = (10, 50, 200)
SCALING_H = (100, 500, 1000)
SINGLE_NETWORK_PRESETS = ("gemonn_plus_trunk", "gemonn_plus_gradual")  # a trunk: one network, one evaluation


class TimedEvaluator:
    """Wraps an evaluator and accumulates the seconds spent in it."""

    def __init__(self, evaluator: PopulationEvaluator):
        self.evaluator, self.seconds, self.calls = evaluator, 0.0, 0

    def __call__(self, X, batch):
        start = time.perf_counter()
        out = self.evaluator(X, batch)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def composed(preset: str):
    """The config ``ggevo-train optimizer=<preset>`` composes."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"optimizer={preset}"])


def optimizer_factory(preset: str, pop_size: int, compile_opt, reevaluate: bool | None,
                      offspring: str | int | None = "preset", warmup: int | None = None):
    """``params -> optimizer`` as ``conf/optimizer/<preset>.yaml`` builds it, with N and compile set and,
    where given, re-scoring, children per generation (None = N) and warm-up generations."""
    cfg = composed(preset)
    o = cfg.optimizer
    o.pop_size = pop_size
    if "compile" in o:
        o.compile = compile_opt
    if reevaluate is not None and "reevaluate_parents" in o and o._target_ != "ggevo.ea.PymooNSGA2":
        o.reevaluate_parents = reevaluate
    if offspring != "preset" and "offspring" in o:
        o.offspring = offspring
    if warmup is not None and "warmup" in o:
        o.warmup = warmup
    if "trunk" in o:  # population generations here; a trunk's single-network ones are timed through train
        o.trunk = 0
    return build_optimizer(cfg)


def preset_options(preset: str) -> dict:
    """The preset's optimizer options (re-scoring, children, warm-up) as ``ggevo-train`` composes them."""
    o = composed(preset).optimizer
    return {"reevaluate_parents": o.get("reevaluate_parents", True), "offspring": o.get("offspring"),
            "warmup": o.get("warmup", 0)}


def loop_floor(model: torch.nn.Module, batch, n: int, repeats: int) -> float:
    """Seconds of one forward+backward of one network on one minibatch, in a plain autograd loop of ``n``."""
    params = [p for p in model.parameters()]

    def run():
        for _ in range(n):
            for p in params:
                p.grad = None
            reconstruction_loss(model(batch[0]), batch).backward()

    run()
    return median_seconds(run, repeats) / n


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:  # this process image's high-water mark (ru_maxrss would include the parent's, across exec)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def generations(opt_factory, model, evaluator, batch, count: int) -> tuple[float, float, float]:
    """Median (everything else, evaluation, evaluations) seconds/count of ``count`` generations after a warm-up."""
    opt = opt_factory(model.parameters())
    ev = TimedEvaluator(evaluator)
    opt.step(lambda: (lambda P: ev(P, batch)))  # initialisation + first generation (warm-up)
    overheads, evals, counts = [], [], []
    for _ in range(count):
        ev.seconds = 0.0
        before = opt.run_state["evaluations"]
        start = time.perf_counter()
        opt.step(lambda: (lambda P: ev(P, batch)))
        total = time.perf_counter() - start
        overheads.append(total - ev.seconds)
        evals.append(ev.seconds)
        counts.append(opt.run_state["evaluations"] - before)
    return statistics.median(overheads), statistics.median(evals), statistics.median(counts)


def setup(n: int, hidden: int, batch_size: int, sign_agreement: bool = False):
    torch.manual_seed(0)
    x, _ = load_arrays("mnist5k")
    data = torch.from_numpy(x)
    model = TiedAutoencoder(784, hidden, sign_agreement=sign_agreement)
    flat = FlatParams(model)
    g = torch.Generator().manual_seed(0)
    batch = (data[torch.randperm(len(data), generator=g)[:batch_size]], torch.zeros(batch_size))
    return model, flat, g, batch


def scaling_point(args) -> dict:
    """One cell of the scaling table (run in its own process, so its peak memory is its own)."""
    n, hidden = args.point
    model, flat, _, batch = setup(n, hidden, args.batch_size, args.sign_agreement)
    compile_opt = {"auto": "auto", "true": True, "false": False}[args.compile]
    auto = PopulationEvaluator(flat, reconstruction_loss, "auto")
    factory = optimizer_factory(args.preset, n, compile_opt, False, offspring=None, warmup=0)
    other, evaluation, count = generations(factory, model, auto, batch, args.generations)
    floor = loop_floor(model, batch, min(n, 20), args.repeats)
    return {"N": n, "H": hidden, "D": flat.dim, "evaluation_s": evaluation, "other_s": other,
            "ratio": other / evaluation, "wall_per_eval_over_floor": (other + evaluation) / count / floor,
            "strategy": "/".join(str(v) for v in auto.choice), "peak_mb": peak_memory_mb(torch.device("cpu"))}


def scaling_table(args) -> None:
    print(f"\nscaling (preset {args.preset}, batch {args.batch_size}, N evaluations a generation, "
          f"median of {args.generations} generations; one process per point):")
    print("| N | H | D | evaluation (s) | everything else (s) | ratio | wall/eval ÷ floor | auto chose | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for hidden in SCALING_H:
        for n in SCALING_N:
            cmd = [sys.executable, __file__, "--point", str(n), str(hidden), "--preset", args.preset,
                   "--batch-size", str(args.batch_size), "--generations", str(args.generations),
                   "--repeats", str(args.repeats), "--compile", args.compile]
            if args.no_reuse_memory:
                cmd.append("--no-reuse-memory")
            if args.sign_agreement:
                cmd.append("--sign-agreement")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {n} | {hidden} | failed: {proc.stderr.strip().splitlines()[-1]} |||||||")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {n} | {hidden} | {r['D']:,} | {r['evaluation_s']:.3f} | {r['other_s']:.3f} | {r['ratio']:.2f} | "
                  f"{r['wall_per_eval_over_floor']:.2f} | {r['strategy']} | {r['peak_mb']:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pop-size", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--compile", choices=("auto", "true", "false"), default="auto")
    ap.add_argument("--preset", default="gemonn", help="optimizer preset, conf/optimizer/<preset>.yaml")
    ap.add_argument("--scaling", action="store_true", help=f"also the table over N in {SCALING_N} x H in {SCALING_H}")
    ap.add_argument("--no-reuse-memory", action="store_true",
                    help="keep glibc's default of fresh pages for every large tensor (ggevo-train reuse_memory=false)")
    ap.add_argument("--flush-denormal", choices=("on", "off"), default="on",
                    help="subnormal floats flushed to zero (ggevo-train flush_denormal, default on)")
    ap.add_argument("--sign-agreement", action="store_true",
                    help="the tied gradient's sign agreement, as experiment=paper_ae runs it (model.sign_agreement)")
    ap.add_argument("--no-late", action="store_true", help="skip the late generations (and making their state)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="pairs of runs (trunk, IMP) for a single-network preset's ratio, its median printed: on a "
                         "2-core AMD EPYC one round's ratio ranged 1.04-1.38 within a run of three")
    ap.add_argument("--point", type=int, nargs=2, metavar=("N", "H"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not (CONF / "optimizer" / f"{args.preset}.yaml").is_file():
        ap.error(f"--preset: no conf/optimizer/{args.preset}.yaml")
    if args.rounds < 1:
        ap.error(f"--rounds: must be at least 1, got {args.rounds}")
    reused = False if args.no_reuse_memory else reuse_large_allocations()  # as ggevo-train does (reuse_memory)
    flush_denormals(args.flush_denormal == "on")  # as ggevo-train does (flush_denormal)
    if args.point:
        print(json.dumps(scaling_point(args)))
        return
    compile_opt = {"auto": "auto", "true": True, "false": False}[args.compile]
    n = args.pop_size
    model, flat, g, batch = setup(n, args.hidden, args.batch_size, args.sign_agreement)
    dim = flat.dim
    X = initial_population(flat.layout, n, generator=g)
    print(cpu_line())
    print(f"N={n}, D={dim:,} (784-{args.hidden}-784 tied AE), batch {args.batch_size}, preset {args.preset}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, large allocations reused: {reused}, "
          f"flush_denormal {args.flush_denormal}, sign agreement {'on' if args.sign_agreement else 'off'}")

    # (a) evaluation, and (d) the floor
    loop = PopulationEvaluator(flat, reconstruction_loss, "loop")
    vmap = PopulationEvaluator(flat, reconstruction_loss, "vmap")
    loop(X[:2], batch), vmap(X[:2], batch)
    t_loop = median_seconds(lambda: loop(X, batch), args.repeats)
    t_vmap = median_seconds(lambda: vmap(X, batch), args.repeats)
    floor = loop_floor(model, batch, n, args.repeats)
    _, G = loop(X, batch)

    # (b) the faithful operators alone, on the same population
    opt = optimizer_factory("gemonn", n, compile_opt, reevaluate=True)(model.parameters())
    compiled = opt._compiled()
    lo, hi = opt.bounds()
    pairs = binary_tournament(*rank_and_crowding(torch.rand(n, 2, generator=g)), n, generator=g).view(2, -1)

    def operators():
        children = run_kernel(X, G, pairs, eta=20.0, sparsity_preservation=0.5, guided=True, exchange=True,
                              lower=lo, upper=hi, generator=g, compiled=compiled).view(n, dim)
        zero_mutation_(children, generator=g)

    start = time.perf_counter()
    operators()
    first = time.perf_counter() - start
    t_ops = median_seconds(operators, args.repeats)

    # (b)+(c) inside real generations (evaluated as `auto` decides): step time minus evaluation time.
    # [N evaluations]: parents not re-scored, N children; then the preset's own generation (re-scored
    # parents and its number of children, after any warm-up), and a warm-up generation if it has one.
    auto = PopulationEvaluator(flat, reconstruction_loss, "auto")
    own = preset_options(args.preset)
    runs = {"N": optimizer_factory(args.preset, n, compiled, False, offspring=None, warmup=0),
            "rescored": optimizer_factory(args.preset, n, compiled, True, warmup=0)}
    if own["warmup"]:
        runs["warmup"] = optimizer_factory(args.preset, n, compiled, None, warmup=10**9)
    if args.preset != "gemonn":  # the faithful method's generation, for the time per evaluation against it
        runs["gemonn"] = optimizer_factory("gemonn", n, compiled, False, offspring=None, warmup=0)
    results = {name: generations(factory, model, auto, batch, args.generations) for name, factory in runs.items()}

    overhead, evaluation, count = results["N"]
    print(f"(a) evaluation of {n} networks: loop {t_loop:.3f} s, vmap {t_vmap:.3f} s")
    print(f"(b) operators ({'compiled' if compiled else 'eager'}; first call {first:.1f} s): {t_ops:.3f} s")
    print(f"(c) selection and bookkeeping: {max(overhead - t_ops, 0.0):.3f} s")
    print(f"(d) loop floor (one network's forward+backward, plain autograd loop): {floor * 1e3:.2f} ms")
    times = ", ".join(f"{k} {v:.3f} s" for k, v in auto.times.items())
    print(f"in generations, population evaluated by {'/'.join(map(str, auto.choice))} "
          f"(evaluation.strategy=auto measured {times})")
    labels = {"N": "generation without re-scoring", "rescored": "generation with re-scoring",
              "warmup": "warm-up generation", "gemonn": "gemonn (faithful), no re-scoring"}
    for name, (o, e, c) in results.items():
        print(f"{labels[name] + ':':34s}evaluation {e:.3f} s, everything else {o:.3f} s [{c:.0f} evaluations]")
    print(f"ratio (operators+selection)/evaluation [N evaluations]:  {overhead / evaluation:.2f}")
    for name in ("rescored", "warmup"):
        if name in results:
            o, e, c = results[name]
            print(f"ratio (operators+selection)/evaluation [{'re-scored' if name == 'rescored' else 'warm-up'}, "
                  f"{c:.0f} evaluations]: {o / e:.2f}")
    print(f"ratio vmap/loop: {t_vmap / t_loop:.2f}")
    print(f"wall per evaluation / loop floor: {(overhead + evaluation) / count / floor:.2f} x "
          f"({(overhead + evaluation) / count * 1e3:.2f} ms vs {floor * 1e3:.2f} ms)")
    if "gemonn" in results:
        o, e, c = results["gemonn"]
        print(f"wall per evaluation / GEMONN's (faithful preset, same run): "
              f"{(overhead + evaluation) / count / ((o + e) / c):.2f} x")
    mine = "rescored" if own["reevaluate_parents"] else "N"
    o, e, c = results[mine]
    print(f"as the preset runs (re-scoring {own['reevaluate_parents']}, {own['offspring'] or 'N'} children): "
          f"wall per evaluation / loop floor {(o + e) / c / floor:.2f} x, everything else / evaluation {o / e:.2f}")
    print(f"peak memory: {peak_memory_mb(X.device):.0f} MB (process RSS)")
    # Two parts of (c) alone, compiled as a generation runs them: the density and finite-gradient pass over N
    # children and their gradients, and copying half of them (a generation copies as many as survive) over
    # parents' rows of X and G. Measured after the peak memory is read: the copies they need are not a generation's.
    children, child_grads = X.clone(), G.clone()
    density_pass = maybe_compiled(row_density_and_finite, compiled)
    copy_rows = maybe_compiled(replace_rows_, compiled)
    rows = torch.randperm(n, generator=g)[: n // 2]
    born = torch.randperm(n, generator=g)[: n // 2]
    X_copy, G_copy = X.clone(), G.clone()
    density_pass(children, child_grads)  # compiled on first call, outside the timing
    copy_rows(X_copy, G_copy, children, child_grads, rows, born)
    t_density = median_seconds(lambda: density_pass(children, child_grads), args.repeats)
    t_copy = median_seconds(lambda: copy_rows(X_copy, G_copy, children, child_grads, rows, born), args.repeats)
    del children, child_grads, X_copy, G_copy
    print(f"(c) of it, timed alone: the density and finite-gradient pass over {n} children {t_density:.3f} s, "
          f"copying {n // 2} children's rows into the population (X and G) {t_copy:.3f} s")
    report_probe(torch.get_num_threads())
    if not args.no_late:  # the paper configuration's own generation (parents not re-scored), fresh and late
        paper = optimizer_factory("gemonn", n, compiled, False, offspring=None, warmup=0)
        report_late(paper, model, auto, batch, args.generations, args.hidden, n)
    if args.preset in SINGLE_NETWORK_PRESETS:
        report_single_network(args.preset, args.hidden, steps=200, rounds=args.rounds)
    if args.scaling:
        scaling_table(args)


if __name__ == "__main__":
    main()
