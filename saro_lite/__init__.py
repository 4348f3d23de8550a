"""saro-lite: a lightweight single-GPU reproduction kit of SaRO (safety-oriented reasoning optimization)."""

__version__ = "0.1.0"
