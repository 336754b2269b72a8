"""OrderHub's channel-neutral core: models, store, ingest, dispatch, feedback, configuration, CLI.

Nothing in here names a channel; connectors and mappings bring the channel knowledge in.
"""

__version__ = "0.1.0"
