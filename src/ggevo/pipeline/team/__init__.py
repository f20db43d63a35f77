"""Work shared beyond one process: a multirun's MLflow parent run and its sweep record (the Hydra callback),
and ``ggevo-server``, the team's tracking server. The top layer: may import from every other."""
