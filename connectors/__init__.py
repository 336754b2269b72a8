"""Connectors: one folder per external system (source or sink); each knows the wire, never the store."""
