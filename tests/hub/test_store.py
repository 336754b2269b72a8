"""The store: migrations build exactly the schema the code declares, on SQLite and on MariaDB; times stay UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hub.store import schema as t
from hub.store.migrate import current
from hub.store.schema import metadata


def test_the_migrated_database_matches_the_declared_schema(engine):
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert current(engine) is not None


def test_datetimes_come_back_aware_in_utc_and_naive_ones_are_refused(engine):
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 11, 11, 0, 0, 1, 123456, tzinfo=shanghai)
    with engine.begin() as conn:
        conn.execute(sa.insert(t.sync_cursors).values(connector="c", shop="s", stream="orders", position=moment,
                                                       updated_at=moment))
        stored = conn.execute(sa.select(t.sync_cursors.c.position)).scalar()
    assert stored == moment and stored.tzinfo == UTC and stored.microsecond == 123456
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(sa.insert(t.sync_cursors).values(connector="c", shop="s2", stream="orders",
                                                      position=datetime(2026, 11, 11), updated_at=moment))


def test_a_channel_order_can_be_bound_only_once(engine):
    row = {"channel": "tmall", "shop": "s", "entity": "order", "external_id": "1", "hub_id": "a",
           "created_at": datetime.now(UTC)}
    with engine.begin() as conn:
        conn.execute(sa.insert(t.bindings).values(**row))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(t.bindings).values(**{**row, "hub_id": "b"}))


def test_the_cursor_never_moves_back(engine):
    from hub.sync import get_cursor, set_cursor

    later, earlier = datetime(2026, 11, 11, 1, tzinfo=UTC), datetime(2026, 11, 11, 0, tzinfo=UTC)
    with engine.begin() as conn:
        set_cursor(conn, "tmall", "s", "orders", later)
        set_cursor(conn, "tmall", "s", "orders", earlier)
        assert get_cursor(conn, "tmall", "s", "orders") == later
