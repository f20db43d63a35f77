"""The base layer: what every other layer needs and nothing of the method — the config error, where
configs and run files live, interrupts turned into a clean stop, files written whole, the figure style,
and the per-process settings (threads, memory reuse, denormal numbers). Imports nothing from the rest of
``ggevo.pipeline``."""
