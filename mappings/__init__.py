"""Field maps and lookup tables an integration engineer edits: ``<channel>.yaml`` and ``carriers.yaml``.

This package only locates the packaged files; the engine that reads them is hub.mapping.
"""

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent


def path(name: str, folder: Path | None = None) -> Path:
    """The mapping file ``name`` in ``folder`` (the configured mappings_dir) or in the packaged defaults."""
    return (folder or PACKAGED) / name
