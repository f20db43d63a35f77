"""``GenerationProgress``: off a terminal, a plain line on stdout every ``1/lines`` of the run (and the first
and last step) and nothing else; on a terminal, a live bar that follows the run and is stopped however it ends."""

import io

import pytest
import pytorch_lightning as pl
from rich.console import Console

from ggevo.lit.progress import GenerationProgress, _stats
from tests.lit.tiny_run import RecordingLogger, fit, tiny_module, tiny_trainer


@pytest.fixture
def no_terminal(monkeypatch):
    """Output that is not a terminal, as in logs, CI and sweeps (pytest captures stdout and stderr)."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_the_stats_show_hypervolume_best_loss_and_the_knee_when_reported():
    assert _stats({}) == ""  # before the first generation
    assert _stats({"hypervolume": 0.123456, "loss/min": 0.5}) == "hv 0.1235  best loss 0.5000"
    assert _stats({"hypervolume": 0.5, "loss/min": 0.25, "loss/knee": 0.375, "density/knee": 0.0625}) == (
        "hv 0.5000  best loss 0.2500  knee 0.3750 at density 0.062")


@pytest.mark.parametrize(("steps", "lines", "printed"), [
    (12, 4, [1, 3, 6, 9, 12]),  # every ceil(12 / 4) = 3 steps
    (10, 3, [1, 4, 8, 10]),  # every ceil(10 / 3) = 4, and the last step
    (19, 10, [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 19]),  # every 2: never more than lines, plus first and last
    (4, 10, [1, 2, 3, 4]),  # more lines than steps: every step
    (5, 0, [1, 5]),  # lines below one count as one
])
def test_off_a_terminal_it_prints_a_plain_line_every_fraction_of_the_run_and_nothing_else(
        no_terminal, capsys, steps, lines, printed):
    display, logger = GenerationProgress(lines=lines), RecordingLogger()
    assert not display.console.is_terminal
    fit(tiny_trainer(steps, [display], logger=logger), tiny_module())
    status = dict(logger.metrics)  # the status each generation recorded, by step
    expected = [f"step {k}/{steps}  hv {status[k]['hypervolume']:.4f}  best loss {status[k]['loss/min']:.4f}  "
                f"knee {status[k]['loss/knee']:.4f} at density {status[k]['density/knee']:.3f}" for k in printed]
    out, err = capsys.readouterr()
    assert out.splitlines() == expected
    assert "━" not in err and display._progress is None  # no bar drawn


class WatchBar(pl.Callback):
    """After the display's update: the bar's completed count, total and stats at each step."""

    def __init__(self, display: GenerationProgress):
        self.display, self.seen, self.bar = display, [], None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.bar = self.display._progress
        task = self.bar.tasks[0]
        self.seen.append((trainer.global_step, task.completed, task.total, task.fields["stats"].startswith("hv ")))


class Fail(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 2:
            raise RuntimeError("boom")


def on_a_terminal(display: GenerationProgress) -> io.StringIO:
    screen = io.StringIO()
    display.console = Console(file=screen, force_terminal=True, width=120)
    return screen


def test_on_a_terminal_a_bar_follows_the_generations_and_no_line_is_printed(capsys):
    display = GenerationProgress(lines=4)
    screen, watch = on_a_terminal(display), WatchBar(display)
    fit(tiny_trainer(6, [display, watch]), tiny_module())
    assert watch.seen == [(k, k, 6, True) for k in range(1, 7)]
    assert display._progress is None and not watch.bar.live.is_started  # stopped at the end
    assert "6/6" in screen.getvalue()
    assert capsys.readouterr().out == ""


def test_on_a_terminal_a_failing_run_stops_its_bar():
    display = GenerationProgress()
    on_a_terminal(display)
    watch = WatchBar(display)
    with pytest.raises(RuntimeError, match="boom"):
        fit(tiny_trainer(6, [display, watch, Fail()]), tiny_module())
    assert watch.bar is not None and not watch.bar.live.is_started and display._progress is None
