"""Prometheus exporter for a fleet of Kamailio SIP servers (multi-target probe pattern)."""

__version__ = "0.1.0"
