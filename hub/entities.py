"""What each stream's records become in the hub: the canonical model they map into and the function that stores a
page of them. Streams name their ``entity``; hub.sync and the push/quarantine paths call ``ingest_page``, which
looks the entity up here.

Every ingester has the signature of ``hub.ingest.ingest_records``::

    ingest(engine, source, records, *, in_same_transaction=None, actor="sync", quarantine_ids=None) -> IngestResult

and keeps the same promises: one transaction per page with ``in_same_transaction`` (the cursor move) inside it,
raw payloads archived, identity through ``bindings``, a version guard (an older version never overwrites a newer
one), bad records quarantined with their reason and payload (``hub.ingest.quarantine_records``), outbox events for
what changed. Entries are import paths, resolved on first use, so a room's module loads only when a stream needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from hub.ingest import IngestResult, Source


@dataclass(frozen=True)
class EntityKind:
    name: str
    model: str  # "module:attribute" of the canonical pydantic model
    ingest: str  # "module:attribute" of the ingest function


ENTITIES: dict[str, EntityKind] = {
    "order": EntityKind("order", "hub.models:Order", "hub.ingest:ingest_records"),
    "refund": EntityKind("refund", "hub.models:Refund", "hub.aftersales:ingest_refunds"),
    "review": EntityKind("review", "hub.models:Review", "hub.reviews:ingest_reviews"),
    "stock_level": EntityKind("stock_level", "hub.models:StockLevel", "hub.stock.ledger:ingest_stock_levels"),
}


def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(import_module(module), attribute)


def entity_kind(entity: str) -> EntityKind:
    try:
        return ENTITIES[entity]
    except KeyError:
        raise KeyError(f"unknown stream entity {entity!r}; known: {', '.join(sorted(ENTITIES))}") from None


@cache
def model_for(entity: str) -> type:
    return _resolve(entity_kind(entity).model)


@cache
def ingester_for(entity: str) -> Callable[..., IngestResult]:
    return _resolve(entity_kind(entity).ingest)


def ingest_page(engine: Engine, source: Source, records: Iterable[Mapping[str, Any]], **kwargs: Any) -> IngestResult:
    """Store one page of ``source.entity`` records (see the module docstring for what every ingester promises)."""
    return ingester_for(source.entity)(engine, source, records, **kwargs)
