"""Entry points that wire a config to objects, in layers whose imports point only down (a module imports
from its own layer or an earlier one, and from ``ggevo.ea``, ``ggevo.lit``, ``ggevo.data``,
``ggevo.models``; ``tests/pipeline/test_layers.py`` checks it):

1. ``core``: errors, paths, interrupts, atomic files, plotting, per-process settings;
2. ``record``: the MLflow store, the recorder, the run folder's files and a sweep's record;
3. ``score``: what a finished front is worth (full-split scores, downstream accuracy, reconstructions);
4. ``run``: one training run (validate → check → build → fit → record) and the command-line plumbing;
5. ``report``: tables, figures, evaluation and export of finished runs;
6. ``stack``: a stacked autoencoder trained layer by layer;
7. ``team``: multiruns under one parent run, and the shared tracking server.
"""
