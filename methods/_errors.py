"""The one error type of `methods`: a bad method name, hyperparameter or value."""


class ConfigError(ValueError):
    """Raised for unknown methods, unknown hyperparameters and out-of-range values.

    The message names the offending field and lists what is allowed, so a user can fix it
    without reading the source.
    """
