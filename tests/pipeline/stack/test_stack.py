"""``ggevo-stack``: every layer of a stacked autoencoder in one command, nested in MLflow, resumable."""

import json

import mlflow
import pytest
import pytorch_lightning as pl
import torch

from ggevo.models.stacked import load_encoders
from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.interrupts import RunKilled
from ggevo.pipeline.record.front_csv import read_front_csv
from ggevo.pipeline.run.build import build_data
from ggevo.pipeline.score.artifacts import choose_member
from ggevo.pipeline.stack.stack import train_stack

STACK = ("model=stacked_ae", "~model.hidden", "model.widths=[16,8]", "data.limit=300",
         "optimizer.pop_size=6", "optimizer.compile=false", "trainer.max_steps=4",
         "trainer.val_check_interval=100", "checkpoint.every_n_steps=100")


def _runs(cfg):
    client = mlflow.tracking.MlflowClient(tracking_uri=cfg.logger.tracking_uri)
    exp = client.get_experiment_by_name(cfg.logger.experiment_name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ggevo.role") == "stack"]
    assert len(parents) == 1
    children = sorted((r for r in runs if r.info.run_id != parents[0].info.run_id),
                      key=lambda r: r.data.params["model.layer"])
    return client, parents[0], children


@pytest.mark.parametrize("select", ["knee", "best"])
def test_stack_trains_every_layer_on_the_code_passed_up(select, compose_cfg, tmp_path):
    cfg = compose_cfg(*STACK, f"stack.select={select}")
    progress = train_stack(cfg)
    out = tmp_path / "run"
    assert [done["layer"] for done in progress["layers"]] == [0, 1]
    assert json.loads((out / "stack.json").read_text()) == progress

    # layer 1 was trained on the member of layer 0 that select picks, and both go up in stack_model.pt
    layer0 = read_front_csv(out / "layer_0" / "front.csv")
    member = choose_member(layer0, select)
    assert progress["layers"][0]["density"] == pytest.approx(layer0["density"][member])
    encoders = load_encoders(str(out / "stack_model.pt"))
    assert [tuple(w.shape) for w, _ in encoders] == [(16, 784), (8, 16)]
    first = torch.load(out / progress["layers"][0]["passed_up"], weights_only=True)["state_dict"]
    assert torch.equal(encoders[0][0], first["weight"])  # the sparse member itself, zeros included
    layer1 = torch.load(out / progress["layers"][1]["passed_up"], weights_only=True)["state_dict"]
    assert torch.equal(encoders[1][0], layer1["weight"])

    # the layer's MSE is read against the variance of its own input: the pixels for layer 0
    x = torch.cat([x for x, _ in build_data(cfg).batches("train")])
    variance = float(x.var(dim=0, unbiased=False).mean())
    assert progress["layers"][0]["input_variance"] == pytest.approx(variance, rel=1e-5)
    for done in progress["layers"]:
        assert done["unexplained_variance"] == pytest.approx(done["train_loss"] / done["input_variance"])

    client, parent, children = _runs(cfg)
    assert parent.info.status == "FINISHED"
    assert [c.data.tags["mlflow.parentRunId"] for c in children] == [parent.info.run_id] * 2
    assert [c.data.params["model.layer"] for c in children] == ["0", "1"]
    assert parent.data.metrics["layer1/train_loss"] == pytest.approx(progress["layers"][1]["train_loss"])
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"stack.json", "stack.md", "stack_fronts.png", "stack_model.pt"} <= names
    table = (out / "stack.md").read_text()
    assert f"| 1 | 16→8 | {progress['layers'][1]['density']:.4f} |" in table


class _CtrlCInLayer1(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.model.layer == 1 and trainer.global_step == 2:
            raise KeyboardInterrupt


def test_interrupted_stack_keeps_finished_layers_and_resumes(compose_cfg, tmp_path):
    cfg = compose_cfg(*STACK)
    with pytest.raises(RunKilled) as killed:
        train_stack(cfg, callbacks=[_CtrlCInLayer1()])
    assert killed.value.exit_code == 130 and "run_dir=" in str(killed.value)
    progress = json.loads((tmp_path / "run" / "stack.json").read_text())
    assert [done["layer"] for done in progress["layers"]] == [0] and progress["interrupted_layer"] == 1
    _, parent, children = _runs(cfg)
    assert parent.info.status == "KILLED" and [c.info.status for c in children] == ["FINISHED", "KILLED"]
    layer0_run = children[0].info.run_id

    progress = train_stack(compose_cfg(*STACK))
    assert [done["layer"] for done in progress["layers"]] == [0, 1]
    client, parent, children = _runs(cfg)  # layer 0 kept, layer 1 continued in its own run
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert children[0].info.run_id == layer0_run
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    steps = [m.step for m in client.get_metric_history(children[1].info.run_id, "hypervolume")]
    assert steps == [1, 2, 3, 4]


def test_stack_refuses_what_it_cannot_train(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match="model=stacked_ae"):
        train_stack(compose_cfg())
    with pytest.raises(ConfigError, match="stack.select"):
        train_stack(compose_cfg(*STACK, "stack.select=middle"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stack.json").write_text(json.dumps(
        {"widths": [784, 32, 8], "select": "knee", "parent_run_id": None, "interrupted_layer": None, "layers": []}))
    with pytest.raises(ConfigError, match="holds a stack of widths"):
        train_stack(compose_cfg(*STACK))
