"""The root of the exporter's own exceptions, so that callers can tell them from library errors."""


class ExporterError(Exception):
    """Base class of every error the exporter raises itself (config, BINRPC, pool, HTTP sources)."""
