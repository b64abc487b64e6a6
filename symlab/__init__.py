"""symlab: a laboratory for the empirical science of deep-learning theory."""

__version__ = "0.1.0"
