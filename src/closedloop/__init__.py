"""closedloop: a self-driving lab for physics surrogates."""
__version__ = "0.1.0"
