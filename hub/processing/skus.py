"""The SKU tables: master SKU catalogue, channel SKU -> master SKU map, bundles (组合装). Data, not code.

``mappings/skus.yaml`` (closed vocabulary, unknown keys refused with their line):

    auto_match: merchant_code        # a line whose merchant code is a master SKU maps to it (the common case)
    masters:                         # the catalogue: what the warehouse stocks (WMS itemCode)
      SKU-001-RED-M: {name: 纯棉圆领T恤 红 M, list_price_fen: 7900}
      SKU-011-PRE-F: {name: 新品, presale: true}    # presale lines can be split into their own delivery order
    channel_skus:                    # explicit map for codes that are not master SKUs (barcodes, typos, old codes)
      - {merchant_code: "6901234567890", master: SKU-001-RED-M}
      - {channel: tmall, shop: tm-outlet, platform_sku_id: "5000000099", master: GIFTSET-01}
    bundles:                         # a code the channel sells, expanded into what the warehouse picks
      GIFTSET-01:
        components:
          - {sku: SKU-001-RED-M, qty: 1, weight: 3}   # weight: price share (default qty x list price, else qty)
          - {sku: SKU-005-WHT-F, qty: 2}

Bulk imports (``orderhub mapping import FILE``, CSV or YAML) land in the ``sku_mappings`` table and are layered over
the file's ``channel_skus``: the operator's newest decision wins, and every process sees it at once (an Airflow
worker included), without a deploy. ``orderhub mapping export`` is how they go back into the versioned file.

Resolution of one order line, first hit wins: explicit entry (imported, then file; the most specific channel/shop
first; platform SKU id before merchant code) -> the merchant code is a bundle -> ``auto_match`` on a master SKU.
Nothing found is a *missing key*: the order is blocked, grouped by that key, until a mapping arrives.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.config import ConfigError, ConfigProblem, _line_of, _loc, read_yaml_with_lines
from hub.models import OrderLine

ANY = "*"
KeyKind = Literal["merchant_code", "platform_sku_id"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MasterSku(_Strict):
    name: str | None = None
    list_price_fen: int | None = Field(None, ge=0, description="default price weight of the SKU inside bundles")
    presale: bool = Field(False, description="sold before stock arrives: `split: {by: presale_line}` separates it")


class ChannelSku(_Strict):
    """One explicit mapping: a channel's code -> a master SKU or a bundle code."""

    channel: str = ANY
    shop: str = ANY
    merchant_code: str | None = Field(None, min_length=1, max_length=128)
    platform_sku_id: str | None = Field(None, min_length=1, max_length=128)
    master: str = Field(min_length=1, max_length=128)

    @model_validator(mode="after")
    def _one_key(self) -> ChannelSku:
        if (self.merchant_code is None) == (self.platform_sku_id is None):
            raise ValueError("give exactly one of merchant_code or platform_sku_id")
        return self

    @property
    def key(self) -> tuple[KeyKind, str]:
        if self.platform_sku_id is not None:
            return "platform_sku_id", self.platform_sku_id
        return "merchant_code", str(self.merchant_code)


class BundleComponent(_Strict):
    sku: str
    qty: int = Field(1, gt=0, description="units of this SKU in one bundle")
    weight: int | None = Field(None, ge=0, description="price share; default qty x list_price_fen, else qty")


class Bundle(_Strict):
    name: str | None = None
    components: list[BundleComponent] = Field(min_length=1)


class SkuFile(_Strict):
    version: int = 1
    auto_match: Literal["merchant_code", "none"] = "merchant_code"
    masters: dict[str, MasterSku | None] = Field(default_factory=dict)
    channel_skus: list[ChannelSku] = Field(default_factory=list)
    bundles: dict[str, Bundle] = Field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    master_sku: str
    qty_per_unit: int
    weight: int


@dataclass(frozen=True)
class Resolved:
    """A line's SKU: the master SKUs it ships as, and how that was decided (for the audit trail)."""

    target: str
    components: tuple[Component, ...]
    how: str          # "auto" | "explicit" | "bundle"
    source: str       # the file or import the decision came from

    @property
    def is_bundle(self) -> bool:
        return len(self.components) != 1 or self.components[0].master_sku != self.target


@dataclass(frozen=True)
class Missing:
    """Why a line has no master SKU; ``key`` is what an operator must map, ``group_key`` groups the quarantine."""

    key: str
    group_key: str
    detail: str


class SkuTables:
    """The resolved tables, immutable for one processing run."""

    def __init__(self, spec: SkuFile, source: str, imported: Iterable[tuple[ChannelSku, str]] = ()) -> None:
        self.spec = spec
        self.source = source
        self.masters: dict[str, MasterSku] = {k: v or MasterSku() for k, v in spec.masters.items()}
        self.bundles = spec.bundles
        # (kind, key) -> [(channel, shop, target, source)], imports first so that they win at equal specificity
        self._explicit: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
        for entry, where in [*imported, *((e, source) for e in spec.channel_skus)]:
            self._explicit.setdefault(entry.key, []).append((entry.channel, entry.shop, entry.master, where))

    @property
    def imported_count(self) -> int:
        return sum(1 for entries in self._explicit.values() for e in entries if e[3] != self.source)

    def is_known(self, code: str) -> bool:
        return code in self.masters or code in self.bundles

    def is_presale(self, master_sku: str) -> bool:
        master = self.masters.get(master_sku)
        return bool(master and master.presale)

    def components(self, target: str) -> tuple[Component, ...] | None:
        if target in self.bundles:
            out = []
            for c in self.bundles[target].components:
                price = (self.masters.get(c.sku) or MasterSku()).list_price_fen
                weight = c.weight if c.weight is not None else (c.qty * price if price else c.qty)
                out.append(Component(c.sku, c.qty, weight))
            return tuple(out)
        if target in self.masters:
            return (Component(target, 1, 1),)
        return None

    def _explicit_for(self, channel: str, shop: str, kind: str, key: str | None) -> tuple[str, str] | None:
        if not key:
            return None
        candidates = self._explicit.get((kind, key), [])
        for want_channel, want_shop in ((channel, shop), (channel, ANY), (ANY, ANY)):
            for c, s, target, where in candidates:
                if c == want_channel and s == want_shop:
                    return target, where
        return None

    def resolve(self, channel: str, shop: str, line: OrderLine) -> Resolved | Missing:
        for kind, key in (("platform_sku_id", line.platform_sku_id), ("merchant_code", line.merchant_sku_code)):
            found = self._explicit_for(channel, shop, kind, key)
            if found is None:
                continue
            target, where = found
            components = self.components(target)
            if components is None:
                return Missing(target, f"unknown master sku {target}",
                               f"{kind} {key} is mapped to {target} in {where}, which is neither a master SKU "
                               f"nor a bundle")
            return Resolved(target, components, "explicit", where)
        code = line.merchant_sku_code
        if code and code in self.bundles:
            return Resolved(code, self.components(code) or (), "bundle", self.source)
        if code and self.spec.auto_match == "merchant_code" and code in self.masters:
            return Resolved(code, (Component(code, 1, 1),), "auto", self.source)
        if code:
            return Missing(code, f"unmapped sku {code}", f"merchant code {code} is not a master SKU, a bundle, or "
                                                         f"mapped for {channel}/{shop}")
        key = line.platform_sku_id or line.platform_item_id or line.line_id
        return Missing(f"{channel}:{key}", f"unmapped sku {channel}:{key}",
                       f"line {line.line_id} has no merchant code and platform SKU {key} is not mapped")

    def check(self, node: yaml.Node | None = None) -> list[ConfigProblem]:
        """Cross-references the schema cannot see: targets and components must exist; codes must not collide."""
        problems: list[ConfigProblem] = []

        def add(loc: tuple[Any, ...], message: str, fix: str) -> None:
            problems.append(ConfigProblem(where=_loc(loc), line=_line_of(node, loc), message=message, how_to_fix=fix))

        for code in self.bundles:
            if code in self.masters:
                add(("bundles", code), f"{code} is both a master SKU and a bundle", "rename one of them")
            for i, component in enumerate(self.bundles[code].components):
                if component.sku not in self.masters:
                    add(("bundles", code, "components", i, "sku"), f"component {component.sku} is not a master SKU",
                        "add it under masters: or fix the code")
        seen: dict[tuple[str, str, str, str], int] = {}
        for i, entry in enumerate(self.spec.channel_skus):
            if not self.is_known(entry.master):
                add(("channel_skus", i, "master"), f"{entry.master} is neither a master SKU nor a bundle",
                    "add it under masters: or bundles:, or fix the code")
            key = (entry.channel, entry.shop, *entry.key)
            if key in seen:
                add(("channel_skus", i), f"{entry.key[0]} {entry.key[1]} is mapped twice for "
                                         f"{entry.channel}/{entry.shop} (first at channel_skus[{seen[key]}])",
                    "keep one of them")
            seen.setdefault(key, i)
        return problems


def parse_sku_file(path: Path) -> tuple[SkuFile, yaml.Node | None]:
    """Read and schema-check ``skus.yaml``; ConfigError lists every problem with its line."""
    data, node = read_yaml_with_lines(
        path, "SKU table", "copy mappings/skus.yaml from the OrderHub package into mappings_dir")
    try:
        return SkuFile.model_validate(data), node
    except ValidationError as exc:
        raise ConfigError(str(path), [ConfigProblem(where=_loc(e["loc"]) or "(file)", line=_line_of(node, e["loc"]),
                                                    message=e["msg"], how_to_fix=_hint(e["type"]))
                                      for e in exc.errors()]) from exc


def load_skus(path: Path, imported: Iterable[tuple[ChannelSku, str]] = ()) -> SkuTables:
    """The SKU tables from ``path`` plus imported entries; ConfigError (exit 3) when the file is wrong."""
    spec, node = parse_sku_file(path)
    tables = SkuTables(spec, str(path), imported)
    problems = tables.check(node)
    if problems:
        raise ConfigError(str(path), problems)
    return tables


def _hint(error_type: str) -> str | None:
    return {"extra_forbidden": "remove it or check its spelling (keys are documented in hub/processing/skus.py)",
            "missing": "add this key"}.get(error_type)


# -- bulk import files ------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("channel", "shop", "merchant_code", "platform_sku_id", "master")
_ALIASES = {"master_sku": "master", "outer_sku_id": "merchant_code", "sku_id": "platform_sku_id"}


def parse_import(path: Path) -> tuple[list[ChannelSku], list[ConfigProblem]]:
    """Rows of a CSV (header: merchant_code or platform_sku_id, master; optional channel, shop) or YAML file
    (``channel_skus:`` as in skus.yaml, or a bare list). Returns (entries, problems); any problem rejects the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    except FileNotFoundError:
        return [], [ConfigProblem(where="(file)", message="no such file")]
    rows: list[tuple[str, int | None, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        fields = reader.fieldnames or []
        header = [_ALIASES.get(h.strip(), h.strip()) for h in fields]
        unknown = [h for h in header if h not in CSV_COLUMNS]
        if unknown or "master" not in header:
            return [], [ConfigProblem(where="header", line=1, message=f"unknown or missing columns "
                                      f"(unknown: {', '.join(unknown) or '-'})",
                                      how_to_fix=f"name master and merchant_code or platform_sku_id; allowed: "
                                                 f"{', '.join(CSV_COLUMNS)}")]
        for raw in reader:
            values = {name: raw.get(original) for name, original in zip(header, fields)}
            cleaned = {k: v.strip() for k, v in values.items() if isinstance(v, str) and v.strip()}
            if cleaned:
                rows.append((f"row {reader.line_num}", reader.line_num, cleaned))
    else:
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return [], [ConfigProblem(where="(file)", message=f"not valid YAML: {exc}")]
        items = data.get("channel_skus") if isinstance(data, dict) else data
        if not isinstance(items, list):
            return [], [ConfigProblem(where="(file)", line=1, message="expected a list of mappings",
                                      how_to_fix="write them under 'channel_skus:' as in skus.yaml")]
        prefix = ("channel_skus",) if isinstance(data, dict) else ()
        rows = [(f"{_loc((*prefix, i))}", _line_of(node, (*prefix, i)), item) for i, item in enumerate(items)]
    entries, problems = [], []
    for where, line, row in rows:
        try:
            value = {k: str(v) for k, v in row.items()} if isinstance(row, Mapping) else row
            entries.append(ChannelSku.model_validate(value))
        except ValidationError as exc:
            problems.extend(ConfigProblem(where=f"{where} {_loc(e['loc'])}".strip(), line=line, message=e["msg"],
                                          how_to_fix=_hint(e["type"])) for e in exc.errors())
    return entries, problems
