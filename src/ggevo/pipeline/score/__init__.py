"""What a finished front is worth: each member scored on the full splits, the member a rule selects,
downstream accuracy after sparse fine-tuning, an autoencoder's reconstructions and its first-layer
connections drawn. Imports from ``core`` and ``record``."""
