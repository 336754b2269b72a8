"""Tables of the stock room (ledger per SKU and warehouse, available-to-sell, pushes).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0005 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from hub.store.schema import Json, LongText, UTCDateTime, metadata  # noqa: F401
