"""A population's checkpoint written to disk: ``torch.save`` to the file's path against ``torch.save`` through
``PiecewiseWriter`` (writes of at most 1 MB; ``lit.last_checkpoint.save_in_pieces``, what ``FileCheckpointIO``
writes with), interleaved in one process.

- Alone: the checkpoint saved into a new file each time (kept until the end), alternating the two ways, with a
  pause between saves; then its serialised bytes alone, in one ``write`` call against 1 MB calls. A new file is
  what a run's checkpoint meets: the memory the replaced checkpoint freed has gone to the run's own tensors by
  the next one (saved in a tight loop over one path, both ways take the same time).
- ``--run BUDGET``: ``ggevo-train optimizer=gemonn_plus_trunk model.hidden=500 budget=BUDGET`` through ``train``
  (as ``run_phases.py``), once with each writer per round, every checkpoint's save timed, with the training
  seconds.

The checkpoint is a GEMONN+ trunk run's at the paper's size (10 networks of 393,284 entries, their weights and
both Adam moments, 48 MB). Both ways write the same bytes (``tests/lit/test_last_checkpoint.py``).

    python benchmarks/checkpoint_write.py                   # in a temporary folder under the current one
    python benchmarks/checkpoint_write.py --run 25000 --rounds 2
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

import ggevo.lit.last_checkpoint as last_checkpoint
from phases import set_up_as_ggevo_train

DIM, POP = 393_284, 10  # the paper's tied autoencoder 784-500-784, a GEMONN+ population
PIECES = last_checkpoint.save_in_pieces


def plain(obj: dict, path: Path) -> None:
    torch.save(obj, path)


def checkpoint() -> dict:
    g = torch.Generator().manual_seed(0)
    state = {name: torch.randn(POP, DIM, generator=g) for name in ("X", "M", "V")}
    state.update(T=torch.zeros(POP), F=torch.rand(POP, 2, generator=g))
    return {"global_step": 1000, "state_dict": {"model.weight": torch.randn(500, 784, generator=g)},
            "optimizer_states": [{"state": {0: state}}]}


def in_pieces(path: Path, data: memoryview) -> None:
    with open(path, "wb") as file:
        last_checkpoint.PiecewiseWriter(file).write(data)


def alone(folder: Path, saves: int, pause: float) -> None:
    ck = checkpoint()
    buffer = io.BytesIO()
    torch.save(ck, buffer)
    data = buffer.getbuffer()
    print(f"alone: a checkpoint of {len(data) / 1e6:.1f} MB, {saves} saves each way into new files, "
          f"alternating, {pause} s apart")
    groups = [
        {"torch.save to the path": lambda p: plain(ck, p), "torch.save in 1 MB writes": lambda p: PIECES(ck, p)},
        {"its bytes in one write": lambda p: p.write_bytes(data),
         "its bytes in 1 MB writes": lambda p: in_pieces(p, data)},
    ]
    count = 0
    for group in groups:
        seconds: dict[str, list[float]] = {name: [] for name in group}
        for _ in range(saves):
            for name, write in group.items():
                time.sleep(pause)
                count += 1
                start = time.perf_counter()
                write(folder / f"{count}.ckpt")
                seconds[name].append(time.perf_counter() - start)
        for name, s in seconds.items():
            print(f"  {name}: median {statistics.median(s) * 1e3:.0f} ms (range {min(s) * 1e3:.0f}-{max(s) * 1e3:.0f})")
        before, after = (statistics.median(s) for s in seconds.values())
        print(f"  {' / '.join(reversed(seconds))}: {after / before:.2f} x")


def in_a_run(folder: Path, budget: int, rounds: int) -> None:
    import run_phases

    saves: list[float] = []
    write = last_checkpoint.FileCheckpointIO.save_checkpoint

    def timed(self, *args, **kwargs) -> None:
        start = time.perf_counter()
        write(self, *args, **kwargs)
        saves.append(time.perf_counter() - start)

    last_checkpoint.FileCheckpointIO.save_checkpoint = timed
    print(f"in a run: optimizer=gemonn_plus_trunk model.hidden=500 budget={budget}, each writer once a round")
    walls: dict[str, list[float]] = {"torch.save to the path": [], "torch.save in 1 MB writes": []}
    try:
        for r in range(rounds):
            order = list(walls) if r % 2 == 0 else list(reversed(walls))
            for name in order:
                last_checkpoint.save_in_pieces = plain if name == "torch.save to the path" else PIECES
                saves.clear()
                result = run_phases.run("gemonn_plus_trunk", 500, budget, folder, f"{r}-{order.index(name)}")
                walls[name].append(result["wall"])
                print(f"  round {r + 1}, {name}: training {result['wall']:.1f} s; {len(saves)} checkpoints "
                      f"{sum(saves):.1f} s (median {statistics.median(saves) * 1e3:.0f} ms, "
                      f"max {max(saves) * 1e3:.0f})", flush=True)
    finally:
        last_checkpoint.save_in_pieces = PIECES
        last_checkpoint.FileCheckpointIO.save_checkpoint = write
    before, after = (statistics.fmean(w) for w in walls.values())
    print(f"  training seconds, in 1 MB writes / to the path: {after / before:.3f} x (mean of {rounds})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path.cwd(), help="where the temporary folder goes (a run's disk)")
    ap.add_argument("--saves", type=int, default=8, help="saves each way, alternating")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between two saves")
    ap.add_argument("--run", type=int, default=0, metavar="BUDGET", help="also time a training run's checkpoints")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    set_up_as_ggevo_train(2)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        alone(Path(folder), args.saves, args.pause)
        if args.run:
            in_a_run(Path(folder), args.run, args.rounds)


if __name__ == "__main__":
    main()
