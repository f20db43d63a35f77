"""The Hydra configs, shipped inside the package as ``ggevo.conf`` (pyproject.toml maps this folder there),
so an install outside a clone finds them: ``ggevo.pipeline.core.paths.config_dir``. Only YAML here."""
