"""One YAML file configures OrderHub: database, shops (sources), sinks, schedules.

Loading validates everything with pydantic and reports *every* problem with its place in the file (``file:line
shops[0].app_secret``) and how to fix it. Credentials are references, resolved only when used (never at Airflow
DAG-parse time):

    app_secret: {env: TMALL_APP_SECRET}                       # an environment variable
    session: {airflow_connection: tmall_flagship, field: password}   # an Airflow Connection (or AIRFLOW_CONN_* env)
    app_key: {value: "12345678"}                              # inline: fine for the sandbox, flagged for real shops

Channel-specific settings live with each connector (``connectors/<name>/settings.py``); this module holds the
shared parts and the loader, and knows no channel by name.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.errors import ConfigurationError
from hub.logging import register_secret

DEFAULT_CONFIG_PATH = "orderhub.yaml"
CONFIG_ENV_VAR = "ORDERHUB_CONFIG"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRef(StrictModel):
    """A credential by reference. Exactly one of ``env``, ``airflow_connection`` or ``value``."""

    env: str | None = None
    airflow_connection: str | None = None
    field: Literal["login", "password", "host", "schema", "extra"] | str = "password"
    value: SecretStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "airflow_connection", "value") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("a credential needs exactly one of 'env', 'airflow_connection' or 'value'")
        return self

    @property
    def is_inline(self) -> bool:
        return self.value is not None

    def describe(self) -> str:
        if self.env:
            return f"env {self.env}"
        if self.airflow_connection:
            return f"Airflow connection {self.airflow_connection}.{self.field}"
        return "inline value"

    def reveal(self) -> str:
        """Resolve the credential now; registers it with the log redactor before anyone can print it."""
        if self.value is not None:
            secret = self.value.get_secret_value()
        elif self.env:
            secret = os.environ.get(self.env, "")
            if not secret:
                raise ConfigurationError(
                    f"environment variable {self.env} is not set",
                    how_to_fix=f"export {self.env}=... before running, or reference an Airflow connection instead",
                )
        else:
            secret = _airflow_connection_field(str(self.airflow_connection), self.field)
        register_secret(secret)
        return secret


def _airflow_connection_field(conn_id: str, field: str) -> str:
    """Read one field of an Airflow Connection without needing Airflow when the connection is in the environment.

    Airflow itself reads ``AIRFLOW_CONN_<ID>`` (URI or JSON) first, so the same definition works inside and outside
    Airflow; only connections stored in Airflow's metadata database need Airflow installed.
    """
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    conn: dict[str, Any] | None = None
    if raw:
        if raw.lstrip().startswith("{"):
            conn = json.loads(raw)
        else:
            parts = urlsplit(raw)
            conn = {"login": unquote(parts.username or ""), "password": unquote(parts.password or ""),
                    "host": parts.hostname or "", "schema": parts.path.lstrip("/"), "extra": {}}
    else:
        try:
            from airflow.sdk import Connection  # imported lazily: hub/ never needs Airflow at import time
        except ImportError as exc:
            raise ConfigurationError(
                f"Airflow connection {conn_id!r} is not in the environment and Airflow is not installed",
                how_to_fix=f"set AIRFLOW_CONN_{conn_id.upper()} (JSON or URI) or use an 'env:' reference",
            ) from exc
        try:
            c = Connection.get(conn_id)
        except Exception as exc:  # Airflow raises its own not-found error types across versions
            raise ConfigurationError(
                f"Airflow connection {conn_id!r} cannot be read: {exc}",
                how_to_fix=f"create it in the Airflow UI (Admin > Connections) or set AIRFLOW_CONN_{conn_id.upper()}",
            ) from exc
        conn = {"login": c.login, "password": c.password, "host": c.host, "schema": c.schema,
                "extra": json.loads(c.extra or "{}") if isinstance(c.extra, str) else (c.extra or {})}
    if field.startswith("extra."):
        value = (conn.get("extra") or {}).get(field.removeprefix("extra."))
    else:
        value = conn.get(field)
    if not value:
        raise ConfigurationError(
            f"Airflow connection {conn_id!r} has no {field!r}",
            how_to_fix=f"fill the {field} field of connection {conn_id}",
        )
    return str(value)


def _coerce_secret(value: Any) -> Any:
    # A bare string in a credential field is taken as an inline value, so hand-written sandbox configs stay short.
    if isinstance(value, (str, int)):
        return {"value": str(value)}
    return value


class SyncSettings(StrictModel):
    """How a source is read incrementally: bounded windows with an overlap, never reaching into the last ``lag``."""

    start_from: datetime | None = Field(
        None, description="first run reads from here (tz-aware); default: now minus initial_lookback_hours")
    initial_lookback_hours: float = Field(24, gt=0)
    window_minutes: float = Field(30, gt=0, description="TOP recommends <= 30 min windows on busy shops")
    overlap_seconds: float = Field(120, ge=0, description="re-read this much before the cursor: late commits")
    lag_seconds: float = Field(10, ge=0, description="never read the newest seconds: the platform's index lag")
    page_size: int = Field(100, ge=1, le=100)
    settle_seconds: float = Field(300, ge=0, description=(
        "the compensation sweep re-reads a window only once its end is this old (the platform's index lag)"))

    @field_validator("start_from")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("start_from needs a timezone, e.g. 2026-11-11T00:00:00+08:00")
        return v

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)

    @property
    def overlap(self) -> timedelta:
        return timedelta(seconds=self.overlap_seconds)

    @property
    def lag(self) -> timedelta:
        return timedelta(seconds=self.lag_seconds)

    @property
    def settle(self) -> timedelta:
        return timedelta(seconds=self.settle_seconds)


class HttpSettings(StrictModel):
    timeout_s: float = Field(20, gt=0)
    attempts: int = Field(5, ge=1, le=20, description="request retries for transient errors (one policy: hub.retry)")


class ShopBase(StrictModel):
    """Fields every source shop has; each connector's settings class adds its wire settings."""

    channel: str
    shop: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    enabled: bool = True
    streams: list[str] = Field(default_factory=lambda: ["orders"])
    sync: SyncSettings = Field(default_factory=SyncSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)


class SinkBase(StrictModel):
    """Fields every sink has; each sink connector's settings class adds its wire settings."""

    kind: str
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    enabled: bool = True
    http: HttpSettings = Field(default_factory=HttpSettings)


class Schedules(StrictModel):
    """Cron or preset schedules the Airflow DAG factory reads (the CLI ignores them)."""

    sync: str = "*/5 * * * *"
    dispatch: str = "*/2 * * * *"
    feedback: str = "*/5 * * * *"


class PersonalDataSettings(StrictModel):
    """Buyer personal data at rest (hub/crypto.py): with a key, phone/name/address are stored sealed (AES-SIV)."""

    encryption_key: Annotated[SecretRef, BeforeValidator(_coerce_secret)] | None = None


class Settings(StrictModel):
    database_url: str | None = Field(None, description="ORDERHUB_DATABASE_URL overrides this")
    mappings_dir: Path | None = Field(None, description="folder of <channel>.yaml field maps, skus.yaml, rules.yaml "
                                                        "and cases/; default: packaged")
    log_level: str = "INFO"
    shops: list[Any] = Field(default_factory=list)
    sinks: list[Any] = Field(default_factory=list)
    schedules: Schedules = Field(default_factory=Schedules)
    personal_data: PersonalDataSettings = Field(default_factory=PersonalDataSettings)
    finance: Any = Field(None, description="payment accounts to reconcile (hub/finance/settings.py FinanceSettings); "
                                           "without it, a finance.yaml beside this file is read")

    source_path: Path | None = Field(None, exclude=True)

    @field_validator("finance")
    @classmethod
    def _finance(cls, value: Any) -> Any:
        if value is None:
            return None
        from hub.finance.settings import FinanceSettings  # the finance room imports this module

        return FinanceSettings.model_validate(value)

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[tuple[str, str]] = set()
        for shop in self.shops:
            key = (shop.channel, shop.shop)
            if key in seen:
                raise ValueError(f"shop {shop.channel}/{shop.shop} is configured twice")
            seen.add(key)
        names = [s.name for s in self.sinks]
        if len(names) != len(set(names)):
            raise ValueError("sink names must be unique")
        return self

    def shop(self, channel: str, shop: str) -> Any:
        for s in self.shops:
            if s.channel == channel and s.shop == shop:
                return s
        raise ConfigurationError(f"no shop {channel}/{shop} in the configuration",
                                 how_to_fix="add it under 'shops:' or check the spelling")

    def enabled_shops(self) -> list[Any]:
        return [s for s in self.shops if s.enabled]

    def enabled_sinks(self) -> list[Any]:
        return [s for s in self.sinks if s.enabled]


class ConfigProblem(BaseModel):
    where: str
    line: int | None = None
    message: str
    how_to_fix: str | None = None

    def render(self, path: str) -> str:
        place = f"{path}:{self.line}" if self.line else path
        text = f"{place}: {self.where}: {self.message}"
        return text + (f" -> {self.how_to_fix}" if self.how_to_fix else "")


class ConfigError(ConfigurationError):
    """The configuration file has problems; ``problems`` lists each with its location."""

    def __init__(self, path: str, problems: list[ConfigProblem]) -> None:
        super().__init__(f"{path}: {len(problems)} problem(s) in the configuration",
                         how_to_fix="run `orderhub config check` and fix each line it prints", path=path)
        self.path = path
        self.problems = problems


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Find the line of a pydantic error location in the composed YAML tree (1-based)."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node, best = nxt, nxt.start_mark.line + 1
    return best


_HINTS = {
    "missing": "add this key",
    "extra_forbidden": "remove it or check its spelling against the README's configuration reference",
    "union_tag_invalid": "use one of the channels/kinds listed in the message",
    "literal_error": "use one of the values listed in the message",
}


def read_yaml_with_lines(path: Path, what: str, how_to_fix: str) -> tuple[Any, yaml.Node | None]:
    """Read a YAML file an engineer edits: (data, composed node tree for error lines). A missing file is a
    ConfigurationError with ``how_to_fix``; broken YAML is a ConfigError naming its line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{what} {path} not found", how_to_fix=how_to_fix) from exc
    try:
        return yaml.safe_load(text) or {}, yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(str(path), [ConfigProblem(where="(file)", line=mark.line + 1 if mark else None,
                                                    message=f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                                    how_to_fix="fix the indentation or quoting on that line")]
                          ) from exc


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the YAML file; raise ConfigError listing every problem with its line."""
    from connectors.registry import sink_settings_type, source_settings_type  # the one place channels are named

    path = Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
    if not path.exists():
        raise ConfigurationError(
            f"configuration file {path} does not exist",
            how_to_fix="create one with `orderhub init --sandbox URL` (or copy docs from the README), "
                       "or pass --config PATH",
        )
    data, node = read_yaml_with_lines(path, "configuration file", "pass --config PATH")
    if not isinstance(data, dict):
        raise ConfigError(str(path), [ConfigProblem(where="(file)", line=1, message="the top level must be a mapping")])

    problems: list[ConfigProblem] = []
    shops, sinks = [], []
    for section, items, resolver, out in (("shops", data.get("shops") or [], source_settings_type, shops),
                                          ("sinks", data.get("sinks") or [], sink_settings_type, sinks)):
        if not isinstance(items, list):
            problems.append(ConfigProblem(where=section, line=_line_of(node, (section,)),
                                          message="must be a list", how_to_fix="write each entry as '- ...'"))
            continue
        for i, item in enumerate(items):
            key = "channel" if section == "shops" else "kind"
            if not isinstance(item, dict) or key not in item:
                problems.append(ConfigProblem(where=f"{section}[{i}]", line=_line_of(node, (section, i)),
                                              message=f"each entry needs a '{key}'", how_to_fix=f"add '{key}: ...'"))
                continue
            model = resolver(str(item[key]))
            if model is None:
                from connectors.registry import SINKS, SOURCES

                known = sorted(SOURCES if section == "shops" else SINKS)
                problems.append(ConfigProblem(where=f"{section}[{i}].{key}", line=_line_of(node, (section, i, key)),
                                              message=f"unknown {key} {item[key]!r}",
                                              how_to_fix=f"use one of: {', '.join(known)}"))
                continue
            try:
                out.append(model.model_validate(item))
            except ValidationError as exc:
                for err in exc.errors():
                    loc = (section, i, *err["loc"])
                    problems.append(ConfigProblem(where=_loc(loc), line=_line_of(node, loc), message=err["msg"],
                                                  how_to_fix=_HINTS.get(err["type"])))
    rest = {k: v for k, v in data.items() if k not in ("shops", "sinks")}
    try:
        settings = Settings.model_validate({**rest, "shops": shops, "sinks": sinks})
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(ConfigProblem(where=_loc(err["loc"]) or "(file)", line=_line_of(node, err["loc"]),
                                          message=err["msg"], how_to_fix=_HINTS.get(err["type"])))
        settings = None
    if problems or settings is None:
        raise ConfigError(str(path), problems)
    settings.source_path = path
    if settings.mappings_dir and not settings.mappings_dir.is_absolute():
        settings.mappings_dir = (path.parent / settings.mappings_dir).resolve()
    from hub import crypto  # the key is process-wide and revealed on first use, not here (no I/O at load time)

    crypto.configure(settings.personal_data.encryption_key)
    return settings


def check_settings(path: str | os.PathLike[str] | None = None) -> tuple[Settings | None, list[ConfigProblem]]:
    """Everything ``orderhub config check`` reports: schema problems, unresolvable credentials, inline secrets."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return None, exc.problems
    except ConfigurationError as exc:
        return None, [ConfigProblem(where="(file)", message=exc.message, how_to_fix=exc.how_to_fix)]
    problems: list[ConfigProblem] = []
    node = yaml.compose(Path(settings.source_path).read_text(encoding="utf-8"))
    for section, items in (("shops", settings.shops), ("sinks", settings.sinks)):
        for i, item in enumerate(items):
            for name in type(item).model_fields:
                ref = getattr(item, name)
                if not isinstance(ref, SecretRef):
                    continue
                loc = (section, i, name)
                try:
                    ref.reveal()
                except ConfigurationError as exc:
                    problems.append(ConfigProblem(where=_loc(loc), line=_line_of(node, loc), message=exc.message,
                                                  how_to_fix=exc.how_to_fix))
    return settings, problems


Credential = Annotated[SecretRef, BeforeValidator(_coerce_secret)]
"""Type for credential fields in connector settings: a SecretRef, or a bare string taken as an inline value."""
