"""Tables of the aftersales room (refunds per channel and their versions; refund events).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0004 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from hub.store.schema import Json, LongText, UTCDateTime, metadata  # noqa: F401
