"""PicShare: the application core (settings, app factory, domain services, media, jobs)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
