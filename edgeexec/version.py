"""The one place the edgeexec version is defined (packaging reads it from here)."""

__version__ = "0.1.0"
