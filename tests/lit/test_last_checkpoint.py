"""The periodic checkpoint (``GenerationCheckpoint``), the checkpoint a dying run leaves (``CheckpointOnInterrupt``)
and the record made whole before every checkpoint (``StoreBeforeCheckpoint``), on tiny real GEMONN runs, some
interrupted by a real Ctrl-C."""

import io
import signal

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

import ggevo.ea.gemonn
from ggevo.ea.front import first_front, knee
from ggevo.lit.last_checkpoint import (
    CheckpointOnInterrupt,
    FileCheckpointIO,
    GenerationCheckpoint,
    PiecewiseWriter,
    StoreBeforeCheckpoint,
)
from tests.lit.tiny_run import RecordingLogger, fit, generation_state, tiny_module, tiny_trainer


@pytest.fixture(autouse=True)
def sigint_restored():
    """Lightning ignores SIGINT after it meets a KeyboardInterrupt; give the test process its handler back."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


class CtrlCBefore(pl.Callback):
    """Ctrl-C as generation ``step + 1`` starts (while its minibatch is being handed over)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def periodic(tmp_path, every: int) -> ModelCheckpoint:
    """The run's periodic ``last.ckpt`` (as ``pipeline.run.build`` makes it)."""
    return GenerationCheckpoint(tmp_path, every)


class SavedAt(pl.Callback):
    """The generation of every checkpoint written."""

    def __init__(self):
        self.steps: list[int] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.steps.append(trainer.global_step)


def test_a_trunk_is_checkpointed_as_often_as_its_evaluations_say_then_every_n_generations(tmp_path):
    """A trunk generation scores one network where one of the population scores 4 (and 2 children): during a
    trunk of 12 the checkpoint of every 2 generations comes every 2 · 4, and at the trunk's end."""
    saved = SavedAt()
    module = tiny_module(trunk=12, local_search_lr=0.01, offspring=2, warmup=1)
    fit(tiny_trainer(20, [periodic(tmp_path, every=2), saved]), module)
    assert saved.steps == [8, 12, 14, 16, 18, 20]
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 20
    saved = SavedAt()  # without a trunk: every 2
    fit(tiny_trainer(7, [periodic(tmp_path / "plain", every=2), saved]), tiny_module())
    assert saved.steps == [2, 4, 6]


def test_a_run_interrupted_between_generations_saves_the_generation_it_finished(tmp_path, capsys):
    last = tmp_path / "last.ckpt"
    module = tiny_module()
    trainer = tiny_trainer(10, [periodic(tmp_path, every=2), CheckpointOnInterrupt(last), CtrlCBefore(3)])
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into SystemExit after its on_exception hooks
        fit(trainer, module)
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == 3  # not the periodic checkpoint of generation 2
    state, live = generation_state(last), module.gemonn.run_state
    assert state["generation"] == 3
    for key in ("X", "F"):
        assert torch.equal(state[key], live[key]), key
    assert "G" not in state  # parents are re-scored before their gradients are read (GEMONN.state_dict)
    assert "interrupted while writing" not in capsys.readouterr().out


def test_a_run_interrupted_while_writing_a_generation_keeps_the_last_periodic_checkpoint(tmp_path, capsys,
                                                                                         monkeypatch):
    """Ctrl-C lands after generation 3's surviving children are written into X and G but before their
    objectives reach F: a checkpoint now would pair generation 3's networks with generation 2's scores."""
    last = tmp_path / "last.ckpt"
    module = tiny_module()
    real = ggevo.ea.gemonn.replace_rows_

    def torn_write(X, G, C, GC, rows, born):
        if module.gemonn.run_state.get("generation", 0) < 2:
            return real(X, G, C, GC, rows, born)
        real(X, G, C, GC, rows, born)
        raise KeyboardInterrupt

    monkeypatch.setattr(ggevo.ea.gemonn, "replace_rows_", torn_write)
    trainer = tiny_trainer(10, [periodic(tmp_path, every=1), CheckpointOnInterrupt(last)])
    with pytest.raises(SystemExit):
        fit(trainer, module)
    assert not module.gemonn.consistent
    assert torch.load(last, weights_only=False)["global_step"] == 2
    state, live = generation_state(last), module.gemonn.run_state
    assert state["generation"] == 2 and not torch.equal(state["X"], live["X"])  # the torn rows stayed out
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"interrupted while writing a generation: {last} keeps the last periodic checkpoint")


def test_a_run_interrupted_before_its_first_generation_leaves_nothing_and_says_nothing(tmp_path, capsys):
    last = tmp_path / "last.ckpt"
    trainer = tiny_trainer(10, [CheckpointOnInterrupt(last), CtrlCBefore(0)])
    with pytest.raises(SystemExit):
        fit(trainer, tiny_module())
    assert not last.exists()
    assert "interrupted while writing" not in capsys.readouterr().out


def test_every_logger_stores_what_it_holds_before_each_checkpoint_is_written(tmp_path):
    """At each ``save()`` the logger notes the generation and the checkpoint files already on disk: the
    checkpoint of generations 2, 4 and 6 must not be there yet when each logger stores."""
    loggers = [RecordingLogger("a"), RecordingLogger("b")]
    every = ModelCheckpoint(dirpath=tmp_path, filename="{step}", every_n_train_steps=2, save_top_k=-1)
    trainer = tiny_trainer(6, [StoreBeforeCheckpoint(), every], logger=loggers)
    for logger in loggers:
        logger.on_save = lambda: (trainer.global_step, sorted(p.name for p in tmp_path.glob("*.ckpt")))
    fit(trainer, tiny_module())
    written = [f"step={s}.ckpt" for s in (2, 4, 6)]
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == written
    for logger in loggers:
        for i, step in enumerate((2, 4, 6)):
            assert (step, written[:i]) in logger.saves, (logger.name, step, logger.saves)


def test_a_checkpoint_file_is_replaced_whole_or_left_as_it_was(tmp_path):
    """``FileCheckpointIO`` writes a temporary file and renames it over the checkpoint: a save that fails
    half-way leaves the previous checkpoint and no temporary file."""
    path = tmp_path / "sub" / "last.ckpt"
    first = {"global_step": 3, "x": torch.arange(5.0)}
    FileCheckpointIO().save_checkpoint(first, path)
    loaded = torch.load(path, weights_only=False)
    assert loaded["global_step"] == 3 and torch.equal(loaded["x"], first["x"])
    with pytest.raises(Exception):
        FileCheckpointIO().save_checkpoint({"global_step": 4, "x": torch.ones(5), "bad": lambda: 0}, path)
    assert torch.load(path, weights_only=False)["global_step"] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


class WriteSizes(io.BytesIO):
    """A file in memory that keeps the size of every write it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data) -> int:
        self.sizes.append(memoryview(data).nbytes)
        return super().write(data)


def test_a_checkpoint_is_written_in_pieces_of_at_most_a_megabyte_the_same_bytes_as_torch_save():
    """``PiecewiseWriter`` (what ``FileCheckpointIO`` saves through) hands the file no write above its piece, and
    the file holds the bytes ``torch.save`` writes into memory, which load back to the same checkpoint."""
    checkpoint = {"global_step": 7, "X": torch.randn(3, 400_000), "T": torch.arange(3.0), "tag": "gemonn"}
    file = WriteSizes()
    torch.save(checkpoint, PiecewiseWriter(file))
    whole = io.BytesIO()
    torch.save(checkpoint, whole)
    assert max(file.sizes) == 1 << 20 and sum(file.sizes) == len(whole.getvalue())
    assert file.getvalue() == whole.getvalue()
    loaded = torch.load(io.BytesIO(file.getvalue()), weights_only=False)
    assert loaded["tag"] == "gemonn" and torch.equal(loaded["X"], checkpoint["X"])
    small = WriteSizes()
    torch.save(checkpoint, PiecewiseWriter(small, piece=1000))
    assert max(small.sizes) == 1000 and small.getvalue() == whole.getvalue()


def knee_row(X: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    front = first_front(F)
    return X[int(front[knee(F[front])])]


def flat(state: dict) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in state.values()])


def test_the_model_holds_the_knee_in_every_checkpoint_and_at_the_end_between_status_records(tmp_path):
    """Warm-up generations between their records write no status and leave the knee out of the model's
    parameters (``PopulationOptimizer.load_knee``); the checkpoint of generation 4 and the model after the last
    (5th) hold the knee of their generation all the same, though every network moved since the last record."""
    module = tiny_module(warmup=20, warmup_records=2, local_search_lr=0.05)
    fit(tiny_trainer(5, [periodic(tmp_path, every=4)]), module)
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    state = ckpt["optimizer_states"][0]["state"][0]
    assert ckpt["global_step"] == 4
    assert torch.equal(flat(ckpt["state_dict"]), knee_row(state["X"], state["F"]))
    live = module.gemonn.run_state
    assert torch.equal(flat(module.model.state_dict()), knee_row(live["X"], live["F"]))
    assert not torch.equal(knee_row(live["X"], live["F"]), knee_row(state["X"], state["F"]))
