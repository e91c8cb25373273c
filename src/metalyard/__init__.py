"""metalyard: a control plane for fleets of physical servers."""

__version__ = "0.1.0"
