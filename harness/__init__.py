"""drill: failover drills for AI serving platforms."""

__version__ = "0.1.0"
