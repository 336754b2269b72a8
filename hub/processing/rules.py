"""Order rules as data: ``mappings/rules.yaml``, a closed vocabulary validated at load (no code, no templates).

    warehouses: [WH01, WH02]          # the warehouse codes route rules may name
    rules:                            # evaluated in file order; every rule that fires is recorded with its name
      - name: hold-buyer-notes
        kind: hold                    # hold | delay | route | split | gift | merge
        when: {buyer_note: present}   # all conditions must hold; no `when` = always
      - name: review-delay
        kind: delay
        minutes: 10                   # wait this long after payment (the buyer may still change or cancel)
      - name: north-from-wh02
        kind: route
        when: {province_in: [北京, 天津, 河北]}
        warehouses: [WH02, WH01]      # candidates in priority order
        by: stock                     # priority (default) | stock: the first candidate that has everything
      - name: split-by-warehouse
        kind: split
        by: warehouse                 # warehouse | presale_line
      - name: socks-for-big-orders
        kind: gift
        when: {paid_total_above_fen: 50000}
        sku: SKU-005-WHT-F
        qty: 1
      - name: merge-same-buyer
        kind: merge
        when: {channel_in: [tmall]}   # only where the channel allows one parcel for several orders
        within_minutes: 30

Conditions (``when``): buyer_note / seller_note (present | absent), paid_total_above_fen, paid_total_below_fen,
address_incomplete, status_in, province_in, city_in, channel_in, shop_in, sku_in (master SKUs), seller_flag_in,
refund_in_progress, is_cod, presale. Semantics per kind: every matching hold holds (``overridable: false`` resists
`orderhub release --approve`); the first matching delay, route and merge apply; every matching split and gift
applies. A misspelt key or kind fails at load with its file, line and place, so a typo stops the start, not an
order at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.config import ConfigError, ConfigProblem, _line_of, _loc, read_yaml_with_lines
from hub.models import Order, OrderStatus, RefundStatus

Presence = Literal["present", "absent"]
# Chinese administrative suffixes: "北京" and "北京市", "广东" and "广东省" are the same place to a routing rule.
_PLACE_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")
REFUND_IN_PROGRESS = {RefundStatus.REQUESTED.value, RefundStatus.WAIT_RETURN.value, RefundStatus.RETURNED.value}


def place(name: str | None) -> str:
    text = (name or "").strip()
    for suffix in _PLACE_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class When(_Strict):
    """Conditions on the canonical order (and its master SKUs); all given ones must hold."""

    buyer_note: Presence | None = None
    seller_note: Presence | None = None
    paid_total_above_fen: int | None = Field(None, ge=0)
    paid_total_below_fen: int | None = Field(None, ge=0)
    address_incomplete: bool | None = Field(None, description="province, city, address or receiver missing")
    status_in: list[OrderStatus] | None = None
    province_in: list[str] | None = None
    city_in: list[str] | None = None
    channel_in: list[str] | None = None
    shop_in: list[str] | None = None
    sku_in: list[str] | None = Field(None, description="master SKUs (after SKU mapping)")
    seller_flag_in: list[int] | None = None
    refund_in_progress: bool | None = None
    is_cod: bool | None = None
    presale: bool | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def test(self, order: Order, master_skus: Iterable[str]) -> tuple[bool, str]:
        """(matched, why): ``why`` names each condition that held, for the decision's detail."""
        reasons = []
        for name, want in self.given().items():
            ok, why = _CHECKS[name](order, want, set(master_skus))
            if not ok:
                return False, ""
            reasons.append(why)
        return True, "; ".join(reasons) or "always"


def _presence(value: str | None, want: str, label: str) -> tuple[bool, str]:
    present = bool((value or "").strip())
    return present == (want == "present"), f"{label} {want}"


def _address_incomplete(order: Order) -> list[str]:
    r = order.receiver
    return [n for n, v in (("province", r.province), ("city", r.city), ("address", r.address),
                           ("receiver", r.name or r.receiver_ref)) if not (v or "").strip()]


_CHECKS = {
    "buyer_note": lambda o, w, _s: _presence(o.buyer_note, w, "buyer note"),
    "seller_note": lambda o, w, _s: _presence(o.seller_note, w, "seller note"),
    "paid_total_above_fen": lambda o, w, _s: (o.paid_total > w, f"paid {o.paid_total} fen > {w} fen"),
    "paid_total_below_fen": lambda o, w, _s: (o.paid_total < w, f"paid {o.paid_total} fen < {w} fen"),
    "address_incomplete": lambda o, w, _s: (bool(_address_incomplete(o)) == w,
                                            f"address missing {', '.join(_address_incomplete(o))}" if w
                                            else "address complete"),
    "status_in": lambda o, w, _s: (o.status in w, f"status {o.status.value}"),
    "province_in": lambda o, w, _s: (place(o.receiver.province) in {place(p) for p in w},
                                     f"province {o.receiver.province}"),
    "city_in": lambda o, w, _s: (place(o.receiver.city) in {place(c) for c in w}, f"city {o.receiver.city}"),
    "channel_in": lambda o, w, _s: (o.platform in w, f"channel {o.platform}"),
    "shop_in": lambda o, w, _s: (o.shop_id in w, f"shop {o.shop_id}"),
    "sku_in": lambda o, w, s: (bool(s & set(w)), f"contains {', '.join(sorted(s & set(w)))}"),
    "seller_flag_in": lambda o, w, _s: (o.seller_flag in w, f"seller flag {o.seller_flag}"),
    "refund_in_progress": lambda o, w, _s: (any(line.refund_status in REFUND_IN_PROGRESS for line in o.lines) == w,
                                            "refund in progress" if w else "no refund in progress"),
    "is_cod": lambda o, w, _s: (o.is_cod == w, "cash on delivery" if w else "paid online"),
    "presale": lambda o, w, _s: ((o.presale_stage is not None) == w, "presale" if w else "not presale"),
}
assert set(_CHECKS) == set(When.model_fields), "every condition needs a check"


class _Rule(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    description: str | None = None
    when: When = Field(default_factory=When)


class HoldRule(_Rule):
    kind: Literal["hold"]
    overridable: bool = Field(True, description="false: even `orderhub release --approve` does not release it")
    reason: str | None = None


class DelayRule(_Rule):
    kind: Literal["delay"]
    minutes: int = Field(gt=0, le=7 * 24 * 60)


class RouteRule(_Rule):
    kind: Literal["route"]
    warehouses: list[str] = Field(min_length=1)
    by: Literal["priority", "stock"] = "priority"


class SplitRule(_Rule):
    kind: Literal["split"]
    by: Literal["warehouse", "presale_line"]


class GiftRule(_Rule):
    kind: Literal["gift"]
    sku: str
    qty: int = Field(1, gt=0)


class MergeRule(_Rule):
    kind: Literal["merge"]
    within_minutes: int = Field(60, gt=0, le=7 * 24 * 60)


Rule = Annotated[HoldRule | DelayRule | RouteRule | SplitRule | GiftRule | MergeRule, Field(discriminator="kind")]
KINDS = ("hold", "delay", "route", "split", "gift", "merge")


class RulesFile(_Strict):
    version: int = 1
    warehouses: list[str] = Field(default_factory=list, description="known warehouse codes; empty = any")
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_unique(self) -> RulesFile:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)} used twice")
        return self

    def of_kind(self, kind: str) -> list[Any]:
        return [r for r in self.rules if r.kind == kind]

    def check(self, known_sku, node: yaml.Node | None = None) -> list[ConfigProblem]:
        """References the schema cannot see: warehouses and SKUs named by rules must exist."""
        problems = []
        for i, rule in enumerate(self.rules):
            refs: list[tuple[tuple[Any, ...], str, str]] = []
            if isinstance(rule, RouteRule) and self.warehouses:
                refs += [(("rules", i, "warehouses", j), w, "warehouse") for j, w in enumerate(rule.warehouses)
                         if w not in self.warehouses]
            if isinstance(rule, GiftRule) and not known_sku(rule.sku):
                refs.append((("rules", i, "sku"), rule.sku, "master SKU"))
            for j, sku in enumerate(rule.when.sku_in or []):
                if not known_sku(sku):
                    refs.append((("rules", i, "when", "sku_in", j), sku, "master SKU"))
            for loc, value, what in refs:
                fix = (f"add it to warehouses: ({', '.join(self.warehouses)})" if what == "warehouse"
                       else "add it to masters: in skus.yaml or fix the code")
                problems.append(ConfigProblem(where=f"{_loc(loc)} (rule {rule.name})", line=_line_of(node, loc),
                                              message=f"unknown {what} {value!r}", how_to_fix=fix))
        return problems


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the union tag into error locations (rules.0.hold.when...); the YAML has no such level."""
    out: list[Any] = []
    for part in loc:
        if part in KINDS and out and isinstance(out[-1], int):
            continue
        out.append(part)
    return tuple(out)


_HINTS = {
    "extra_forbidden": "remove it or check its spelling (the vocabulary is documented in hub/processing/rules.py)",
    "union_tag_invalid": f"use one of the kinds: {', '.join(KINDS)}",
    "union_tag_not_found": f"add 'kind:' (one of {', '.join(KINDS)})",
    "literal_error": "use one of the values listed in the message",
    "missing": "add this key",
}


def load_rules(path: Path, known_sku=None) -> RulesFile:
    """Read and validate ``rules.yaml``; ConfigError (exit 3) names every problem with its line and rule."""
    data, node = read_yaml_with_lines(
        path, "rules file", "copy mappings/rules.yaml from the OrderHub package into mappings_dir")
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = _clean_loc(e["loc"]) + (("kind",) if e["type"] == "union_tag_invalid" else ())
            where = _loc(loc) or "(file)"
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                items = data.get("rules") if isinstance(data, dict) else None
                name = items[loc[1]].get("name") if isinstance(items, list) and loc[1] < len(items) and \
                    isinstance(items[loc[1]], dict) else None
                where += f" (rule {name})" if name else ""
            problems.append(ConfigProblem(where=where, line=_line_of(node, loc), message=e["msg"],
                                          how_to_fix=_HINTS.get(e["type"])))
        raise ConfigError(str(path), problems) from exc
    if known_sku is not None:
        problems = rules.check(known_sku, node)
        if problems:
            raise ConfigError(str(path), problems)
    return rules
