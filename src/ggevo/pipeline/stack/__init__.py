"""``ggevo-stack``: a stacked autoencoder trained layer by layer, each layer one training run, and what it
leaves to read. Imports from every layer before it (``core`` to ``report``)."""
