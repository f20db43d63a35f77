"""One training run, the one way in: validate the config, check the world, build (the only caller of
``instantiate``), fit, hand the results to the recorder; ``ggevo-prepare``; and the command-line plumbing
every entry point shares (``cli``: one-line errors, exit codes). Imports from ``core``, ``record`` and
``score``."""
