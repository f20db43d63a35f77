"""The one error a bad config value raises: every layer refuses input with it, ``ggevo.pipeline.run.cli``
turns it into one line on stderr and exit status 2."""


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the key."""
