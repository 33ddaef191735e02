"""semifer: semi-supervised facial expression recognition (Ada-CM and its peers under one protocol)."""

__version__ = "0.1.0"
