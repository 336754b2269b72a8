"""Declarative field maps: channel record (dict) -> canonical record (dict), validated against the canonical model.

A mapping file (``mappings/<channel>.yaml``) uses a closed vocabulary, no code and no templates:

    fields:
      order_id:   {path: [tid_str, tid], via: text}      # first non-empty path, then a named transform
      status:     {path: status, map: trade_status}       # lookup in a table of this file; unknown -> quarantine
      platform:   {const: tmall}
      shop_id:    {context: shop}
      buyer_note: {path: buyer_message, optional: true}
      goods_total: {compute: tmall_goods_total}          # a named function of the whole record
      receiver:   {fields: {...}}                        # a nested object
      lines:      {each: [orders.order, orders], fields: {...}}   # a list of child objects

Each field spec takes exactly one source (``path``, ``const``, ``context``, ``compute``, ``fields``/``each``),
optional ``via`` (one name or a list, applied in order), ``map``, ``default`` and ``optional``. A field with neither
``default`` nor ``optional: true`` is required. Function names are looked up in explicit dictionaries (generic ones
here, channel ones in the connector), so a typo fails when the file is loaded, not at 3 a.m.
Mapping is pure: dict in, dict out, no I/O. Failures raise RecordError with the field, path and a group key that
says what must be fixed, so the quarantine can group records by cause.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, get_args, get_origin
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.errors import ConfigurationError, RecordError

SHANGHAI = ZoneInfo("Asia/Shanghai")
_MISSING = object()

Transform = Callable[[Any], Any]
Compute = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]


# --- generic named transforms ----------------------------------------------------------------------------------------

def text(value: Any) -> str:
    """Any scalar as a string (ids arrive as int64 from TOP and JD; keep them as strings)."""
    if type(value) is str:  # the common case; str(value) of a str is the value itself
        return value.strip()
    if isinstance(value, (bool, dict, list)):
        raise ValueError(f"expected a scalar, got {type(value).__name__}")
    return str(value).strip()


def yuan_to_fen(value: Any) -> int:
    """'198.00' (yuan, string) -> 19800 fen, exactly; refuses floats and more than 2 decimals."""
    if type(value) is str:
        # the common shape, plain ASCII digits with at most two decimals ("198.00", "12.5", "7"), in integer
        # arithmetic; signs, exponents, spaces inside and every odd shape go to Decimal below, which decides
        whole, dot, cents = value.strip().partition(".")
        if (whole.isdigit() and whole.isascii() and len(cents) <= 2
                and (not cents or (cents.isdigit() and cents.isascii()))):
            return int(whole) * 100 + (int(cents) * (10 if len(cents) == 1 else 1) if cents else 0)
    if isinstance(value, float):
        raise ValueError("money must not arrive as a float")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a money amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a money amount: {value!r}")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"more than 2 decimals in {value!r}")
    return int(fen)


def shanghai_time(value: Any) -> datetime:
    """'2024-03-01 12:00:00' as Asia/Shanghai wall time -> aware UTC datetime."""
    wall = str(value).strip()[:19]
    parsed = None
    # strptime costs ~10x fromisoformat; the canonical shape (ASCII digits, fixed separators) takes the fast parser,
    # anything else - or a shape that is not a real date - goes to strptime, so accepted values and errors are the
    # strict parser's own
    if (len(wall) == 19 and wall[4] == "-" and wall[7] == "-" and wall[10] == " " and wall[13] == ":"
            and wall[16] == ":" and wall.isascii()
            and (wall[:4] + wall[5:7] + wall[8:10] + wall[11:13] + wall[14:16] + wall[17:]).isdigit()):
        try:
            parsed = datetime.fromisoformat(wall)
        except ValueError:
            parsed = None
    if parsed is None:
        parsed = datetime.strptime(wall, "%Y-%m-%d %H:%M:%S")
    return parsed.replace(tzinfo=SHANGHAI).astimezone(UTC)


def unix_seconds(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(str(value).strip())


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def empty_to_none(value: Any) -> Any:
    return None if value in ("", None) else value


GENERIC_TRANSFORMS: dict[str, Transform] = {
    "text": text,
    "yuan_to_fen": yuan_to_fen,
    "shanghai_time": shanghai_time,
    "unix_seconds": unix_seconds,
    "integer": integer,
    "boolean": boolean,
    "empty_to_none": empty_to_none,
}


# --- the mapping file's own schema -----------------------------------------------------------------------------------

class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | list[str] | None = None
    const: Any = None
    context: str | None = None
    compute: str | None = None
    fields: dict[str, FieldSpec] | None = None
    each: str | list[str] | None = None
    via: str | list[str] | None = None
    map: str | None = None
    default: Any = _MISSING
    optional: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        sources = [n for n in ("path", "const", "context", "compute") if getattr(self, n) is not None]
        if self.fields is not None and self.each is None:
            sources.append("fields")
        if self.each is not None:
            sources.append("each")
            if self.fields is None:
                raise ValueError("'each' needs 'fields' describing one child")
        if len(sources) != 1:
            raise ValueError(f"a field needs exactly one of path/const/context/compute/fields/each, got {sources}")
        return self

    @property
    def required(self) -> bool:
        return self.default is _MISSING and not self.optional and self.const is None

    def paths(self) -> list[str]:
        p = self.path if self.path is not None else self.each
        return [p] if isinstance(p, str) else list(p or [])

    def vias(self) -> list[str]:
        return [self.via] if isinstance(self.via, str) else list(self.via or [])


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    entity: str
    version: int = 1
    description: str | None = None
    fields: dict[str, FieldSpec]
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _get_path(record: Mapping[str, Any], dotted: str) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _model_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {name: info.annotation for name, info in model.model_fields.items()}


def _child_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``Model``, ``Model | None`` or ``list[Model]``."""
    candidates = [annotation, *get_args(annotation)]
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
        if get_origin(c) is list:
            inner = _child_model(get_args(c)[0])
            if inner:
                return inner
    return None


class Mapper:
    """A loaded, checked mapping file, ready to apply to raw records."""

    def __init__(self, spec: MappingFile, model: type[BaseModel], transforms: Mapping[str, Transform],
                 computes: Mapping[str, Compute], source: str) -> None:
        self.spec = spec
        self.model = model
        self.transforms = {**GENERIC_TRANSFORMS, **transforms}
        self.computes = dict(computes)
        self.source = source
        problems: list[str] = []
        self._check(spec.fields, model, "fields", problems)
        if problems:
            raise ConfigurationError(
                f"mapping {source} is invalid: " + "; ".join(problems),
                how_to_fix=f"fix {source}; field names are the canonical model's ({model.__name__}), "
                           f"transforms are {', '.join(sorted(self.transforms))}",
                mapping=source,
            )
        # each field spec becomes one closure, once: paths split, transforms and tables resolved, error text built
        # only when a record fails (the per-record cost was mostly re-deriving these)
        self._fields = self._compile_object(spec.fields)

    def _check(self, fields: Mapping[str, FieldSpec], model: type[BaseModel], where: str, problems: list[str]) -> None:
        known = _model_fields(model)
        for name, fspec in fields.items():
            here = f"{where}.{name}"
            if name not in known:
                problems.append(f"{here}: {model.__name__} has no field {name!r}")
                continue
            for via in fspec.vias():
                if via not in self.transforms:
                    problems.append(f"{here}: unknown transform {via!r}")
            if fspec.compute and fspec.compute not in self.computes:
                problems.append(f"{here}: unknown compute function {fspec.compute!r} "
                                f"(known: {', '.join(sorted(self.computes)) or 'none'})")
            if fspec.map and fspec.map not in self.spec.tables:
                problems.append(f"{here}: map table {fspec.map!r} is not defined under 'tables:'")
            if fspec.fields is not None:
                child = _child_model(known[name])
                if child is None:
                    problems.append(f"{here}: {name!r} is not an object or a list of objects")
                else:
                    self._check(fspec.fields, child, here, problems)
        for name, info in model.model_fields.items():
            if info.is_required() and name not in fields:
                problems.append(f"{where}: required canonical field {name!r} is not mapped")

    # -- applying -----------------------------------------------------------------------------------------------------

    def apply(self, record: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """Map one raw record; RecordError (with field, path and group key) when a value cannot be mapped."""
        if not isinstance(record, Mapping):
            raise RecordError("record is not a JSON object", group_key="malformed record", mapping=self.source)
        return self._fields(record, context, "")

    def _compile_object(self, fields: Mapping[str, FieldSpec]) -> Callable[[Mapping[str, Any], Mapping[str, Any], str],
                                                                          dict[str, Any]]:
        compiled = [(name, self._compile_field(name, fspec)) for name, fspec in fields.items()]

        def map_object(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> dict[str, Any]:
            # a field closure never answers "missing": it returns its default, None, a value or raises
            return {name: field_fn(record, context, prefix) for name, field_fn in compiled}

        return map_object

    def _compile_field(self, name: str, fspec: FieldSpec) -> Callable[[Mapping[str, Any], Mapping[str, Any], str], Any]:
        """One field spec as a closure ``(record, context, prefix) -> value``; ``prefix`` names the enclosing object
        (``lines[0].``) and is only read to word an error."""
        source = self.source
        paths = [(p, p.split(".")) for p in fspec.paths()]
        finish = self._compile_finish(name, fspec)

        if fspec.const is not None:
            const = fspec.const

            def const_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                return finish(const, prefix, None)

            return const_field
        if fspec.context is not None:
            key = fspec.context

            def context_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                return finish(context.get(key, _MISSING), prefix, None)

            return context_field
        if fspec.compute is not None:
            compute_name, compute = fspec.compute, self.computes[fspec.compute]

            def compute_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                try:
                    value = compute(record, context)
                except RecordError:
                    raise
                except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                    field_name = f"{prefix}{name}"
                    raise RecordError(f"{field_name}: {compute_name} failed: {exc}", field=field_name,
                                      group_key=f"invalid {field_name}", mapping=source) from exc
                return finish(value, prefix, None)

            return compute_field

        def lookup(record: Mapping[str, Any]) -> tuple[Any, str | None]:
            """The first non-empty value among the paths, and the path it came from."""
            for dotted, parts in paths:
                node: Any = record
                for part in parts:
                    # a plain dict skips the slower ABC check
                    if (type(node) is not dict and not isinstance(node, Mapping)) or part not in node:
                        node = _MISSING
                        break
                    node = node[part]
                if node is not _MISSING and node not in (None, ""):
                    return node, dotted
            return _MISSING, None

        if fspec.each is not None:
            child = self._compile_object(fspec.fields or {})

            def each_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                value, path_used = lookup(record)
                if value is _MISSING:
                    value = []
                if not isinstance(value, list):
                    field_name = f"{prefix}{name}"
                    raise RecordError(f"{field_name}: {path_used} is not a list", field=field_name,
                                      group_key=f"invalid {field_name}", mapping=source)
                return [child(item if type(item) is dict or isinstance(item, Mapping) else {}, context,
                              f"{prefix}{name}[{i}].")
                        for i, item in enumerate(value)]

            return each_field
        if fspec.fields is not None:
            nested = self._compile_object(fspec.fields)

            def object_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                return nested(record, context, f"{prefix}{name}.")

            return object_field

        if len(paths) == 1 and len(paths[0][1]) == 1:
            return self._compile_top_level_path(name, fspec, paths[0][0], finish)

        def path_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
            value, path_used = lookup(record)
            return finish(value, prefix, path_used)

        return path_field

    def _compile_top_level_path(self, name: str, fspec: FieldSpec, key: str,
                                finish: Callable[[Any, str, str | None], Any]
                                ) -> Callable[[Mapping[str, Any], Mapping[str, Any], str], Any]:
        """The common case, one top-level key, with the plain and the one-transform finish inlined. ``record`` is
        always a Mapping here (apply and each see to it); ``get`` answers as ``key in record`` then ``record[key]``
        would."""
        vias = fspec.vias()
        if fspec.map is not None or len(vias) > 1:
            def key_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                return finish(record.get(key, _MISSING), prefix, key)  # finish reads the path only for a value

            return key_field
        if not vias:
            def plain_key_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
                value = record.get(key, _MISSING)
                if value is _MISSING or value in (None, ""):
                    return finish(value, prefix, None)
                return value

            return plain_key_field
        source, via, transform = self.source, vias[0], self.transforms[vias[0]]

        def transformed_key_field(record: Mapping[str, Any], context: Mapping[str, Any], prefix: str) -> Any:
            value = record.get(key, _MISSING)
            if value is _MISSING or value in (None, ""):
                return finish(value, prefix, None)
            try:
                return transform(value)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _transform_error(source, f"{prefix}{name}", via, value, key, exc) from exc

        return transformed_key_field

    def _compile_finish(self, name: str, fspec: FieldSpec) -> Callable[[Any, str, str | None], Any]:
        """Defaults, required check, transforms and table lookup of one field, as a closure
        ``(value, prefix, path used) -> value``."""
        source = self.source
        default, required = fspec.default, fspec.required
        where = " or ".join(fspec.paths()) or fspec.context or fspec.compute
        vias = [(via, self.transforms[via]) for via in fspec.vias()]
        table_name = fspec.map
        table = self.spec.tables[table_name] if table_name is not None else None

        def finish(value: Any, prefix: str, path_used: str | None) -> Any:
            if value is _MISSING or value in (None, ""):
                if default is not _MISSING:
                    return default
                if required:
                    field_name = f"{prefix}{name}"
                    raise RecordError(f"{field_name}: required value missing at {where}", field=field_name,
                                      path=where, group_key=f"missing {field_name}", mapping=source)
                return None
            for via, transform in vias:
                try:
                    value = transform(value)
                except (ValueError, TypeError, ArithmeticError) as exc:
                    raise _transform_error(source, f"{prefix}{name}", via, value, path_used, exc) from exc
            if table is not None:
                key = str(value)
                if key not in table:
                    field_name = f"{prefix}{name}"
                    raise RecordError(
                        f"{field_name}: value {key!r} is not in table {table_name!r} of {source}",
                        field=field_name, path=path_used, value=key, group_key=f"unmapped {table_name}={key}",
                        mapping=source,
                        how_to_fix=f"add {key!r} to tables.{table_name} in {source}, then `orderhub quarantine replay`",
                    )
                value = table[key]
            return value

        return finish

    def to_model(self, record: Mapping[str, Any], context: Mapping[str, Any]) -> BaseModel:
        """Map and validate: the canonical model instance, or RecordError naming the failing canonical fields."""
        mapped = self.apply(record, context)
        try:
            return self.model.model_validate(mapped)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise RecordError(
                f"canonical {self.model.__name__} invalid: {loc}: {first['msg']}"
                + (f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""),
                field=loc, group_key=f"invalid {loc}", mapping=self.source,
            ) from exc


def _transform_error(source: str, field_name: str, via: str, value: Any, path_used: str | None,
                     exc: Exception) -> RecordError:
    return RecordError(f"{field_name}: {via} cannot read {_preview(value)} at {path_used}: {exc}",
                       field=field_name, path=path_used, group_key=f"invalid {field_name}", mapping=source)


def _preview(value: Any) -> str:
    text_value = repr(value)
    return text_value if len(text_value) <= 40 else text_value[:37] + "..."


def load_mapping(path: str | Path, model: type[BaseModel], *, transforms: Mapping[str, Transform] | None = None,
                 computes: Mapping[str, Compute] | None = None) -> Mapper:
    """Load and check a mapping file; ConfigurationError with every problem when it is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"mapping file {path} not found",
                                 how_to_fix="check mappings_dir in the configuration") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"mapping file {path} is not valid YAML: {exc}",
                                 how_to_fix="fix the indentation or quoting") from exc
    try:
        spec = MappingFile.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"mapping file {path} is invalid: {details}",
                                 how_to_fix="use only the keys documented in hub/mapping.py") from exc
    return Mapper(spec, model, transforms or {}, computes or {}, str(path))
