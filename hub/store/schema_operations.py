"""Tables of the operations room (operations: worker leases for scale-out, encryption of personal data at rest).

They sit on the one ``metadata`` of hub/store/schema.py, so Alembic and the schema-match test see them; migration
0008 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from hub.store.schema import Json, LongText, UTCDateTime, metadata  # noqa: F401
