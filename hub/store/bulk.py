"""Bulk INSERT for the ingest hot path: one ``executemany`` per table, rows converted by SQLAlchemy's own types.

Core's ``conn.execute(insert(table), rows)`` spends most of its time per row in Python, building and processing a
parameter dictionary for every row (``construct_params``), more than the database spends storing it. An ingest page
writes seven rows per order across six tables, so the order hub pays that overhead seven times where a plain
two-table load pays it twice. Here the statement is compiled once per (dialect, table, columns) and each row becomes
a tuple run through the same bind processors Core would use (``TypeEngine.bind_processor``: the store's UTC
datetimes, JSON, the dialect's datetime format), so what lands is byte for byte what Core would have written.

Python-side column defaults (``default=``) are applied as Core applies them; server defaults are left to the
server. Rows must all have the same keys (the callers build them from one function per table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any] | None


@lru_cache(maxsize=256)
def _plan(dialect: Dialect, table: sa.Table, keys: tuple[str, ...]
          ) -> tuple[str, tuple[str, ...], tuple[Processor, ...], tuple[tuple[str, Any], ...], bool]:
    """(SQL, parameter names in order, their processors, Python defaults to fill, positional?) for one insert."""
    defaults = tuple(
        (column.key, column.default.arg)
        for column in table.columns
        if column.key not in keys and column.default is not None and column.default.is_scalar
    )
    callable_defaults = [column.key for column in table.columns
                         if column.key not in keys and column.default is not None and not column.default.is_scalar]
    if callable_defaults:  # none on the hot-path tables; keep the generic path honest rather than half right
        raise ValueError(f"bulk insert into {table.name} cannot fill callable defaults {callable_defaults}")
    names = keys + tuple(key for key, _ in defaults)
    compiled = table.insert().compile(dialect=dialect, column_keys=list(names))
    order = tuple(compiled.positiontup) if compiled.positional else names
    processors = tuple(table.columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order)
    return str(compiled), order, processors, defaults, bool(compiled.positional)


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in one executemany on ``conn``'s transaction."""
    if not rows:
        return
    sql, order, processors, defaults, positional = _plan(conn.dialect, table, tuple(rows[0]))
    if defaults:
        rows = [{**dict(defaults), **row} for row in rows]
    pairs = tuple(zip(order, processors, strict=True))
    # None goes through the processor too, as in Core (JSON decides between SQL NULL and JSON null there)
    if positional:
        params: list[Any] = [tuple(row[name] if process is None else process(row[name]) for name, process in pairs)
                             for row in rows]
    else:
        params = [{name: row[name] if process is None else process(row[name]) for name, process in pairs}
                  for row in rows]
    conn.exec_driver_sql(sql, params)
