"""Config keys that were renamed: the old name fails in one line that names the new one.

A key given on the command line would otherwise fail inside Hydra with a traceback (``Key ... is not in
struct``), and one written in a user's own preset file would be composed in and silently ignored.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

from ggevo.pipeline.core.errors import ConfigError

# old key -> new key
RENAMED = {
    "experiment_name": "preset",  # the preset's name; logger.experiment_name is the MLflow experiment
    "optimizer.crossover_rate": "optimizer.crossover_prob",  # as pymoo's NSGA-II (and its SBX) name it
    "model.outputs": "model.classes",  # as lenet5 and lstm name it
}


def _message(old: str) -> str:
    return f"{old}: renamed {RENAMED[old]}"


def check_renamed_overrides(argv: list[str]) -> None:
    """An override of a renamed key (``key=v``, ``+key=v``, ``++key=v``, ``~key``) on the command line."""
    for arg in argv:
        key = arg.partition("=")[0].lstrip("+~")
        if key in RENAMED:
            raise ConfigError(_message(key))


def check_renamed_keys(cfg: DictConfig) -> None:
    """A renamed key in the composed config (from a preset file of one's own), and a stacked autoencoder's
    ``model.widths`` written the old way, with the input width first (now ``model.inputs``)."""
    for old in RENAMED:
        if OmegaConf.select(cfg, old, default=None) is not None:
            raise ConfigError(_message(old))
    model = cfg.get("model") or {}
    if str(model.get("_target_", "")).endswith("StackedAutoencoder") and model.get("widths"):
        widths = list(model.widths)
        if len(widths) > 1 and widths[0] == model.get("inputs"):
            raise ConfigError(f"model.widths: the hidden widths only (the input is model.inputs), got {widths}; "
                              f"write {widths[1:]}")


def upgrade_config(cfg: DictConfig) -> DictConfig:
    """A config a run wrote before a rename (its folder's ``config.yaml``), with each old key moved to its new
    name, so the run still loads (``ggevo-evaluate``, ``ggevo-export``). ``cfg`` is changed in place."""
    for old, new in RENAMED.items():
        parent, _, leaf = old.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
            with open_dict(node):
                OmegaConf.update(cfg, new, node.pop(leaf), force_add=True)
    model = cfg.get("model")
    if isinstance(model, DictConfig) and str(model.get("_target_", "")).endswith("StackedAutoencoder") \
            and "inputs" not in model and model.get("widths"):
        with open_dict(model):
            model.inputs, model.widths = model.widths[0], model.widths[1:]
    return cfg
