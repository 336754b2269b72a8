"""``orderhub connector new NAME``: a new source connector from the template kept in ``connectors/_template/``.

Writes ``connectors/NAME/`` (settings, client, streams, write-back, contract profile, README), ``mappings/NAME.yaml``
and a recorded mapping case with its payload, then prints the registry line to add. Nothing is registered
automatically: the registry stays an explicit list (connectors/registry.py). The template files are plain text with
``string.Template`` placeholders (``${name}``, ``${Name}``, ``${title}``), no template engine.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Annotated

import typer

import connectors
import mappings

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
TEMPLATE_DIR = Path(connectors.__file__).resolve().parent / "_template"
# template file -> where it goes, relative to the root (the folder holding connectors/ and mappings/)
LAYOUT = {
    "__init__.py.tmpl": "connectors/{name}/__init__.py",
    "settings.py.tmpl": "connectors/{name}/settings.py",
    "client.py.tmpl": "connectors/{name}/client.py",
    "streams.py.tmpl": "connectors/{name}/streams.py",
    "writeback.py.tmpl": "connectors/{name}/writeback.py",
    "contract.py.tmpl": "connectors/{name}/contract.py",
    "README.md.tmpl": "connectors/{name}/README.md",
    "mapping.yaml.tmpl": "mappings/{name}.yaml",
    "cases.yaml.tmpl": "mappings/cases/{name}.yaml",
    "payload.json.tmpl": "mappings/cases/payloads/{name}_order__paid.json",
}


@dataclass(frozen=True)
class Generated:
    name: str
    files: list[Path]
    registry_lines: tuple[str, str]


def default_root() -> Path:
    """The source tree the running OrderHub comes from: the folder that holds the connectors/ and mappings/
    packages."""
    return Path(mappings.__file__).resolve().parent.parent


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name) or name.startswith("_"):
        raise typer.BadParameter(f"{name!r} is not a channel slug: lower case letters, digits and _ (2-31 "
                                 "characters, starting with a letter, not a Python keyword), e.g. pinduoduo")
    return name


def generate(name: str, root: Path, *, title: str | None = None) -> Generated:
    """Write the connector ``name`` under ``root`` from the template; refuses to overwrite anything."""
    check_name(name)
    values = {"name": name, "Name": "".join(part.capitalize() for part in name.split("_")),
              "title": title or name.replace("_", " ").title()}
    targets = {src: root / dest.format(name=name) for src, dest in LAYOUT.items()}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing:
        raise FileExistsError(f"would overwrite {', '.join(existing)}")
    written = []
    for src, target in targets.items():
        text = Template((TEMPLATE_DIR / src).read_text(encoding="utf-8")).substitute(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return Generated(name, written, (f"import connectors.{name} as {name}", f'    "{name}": {name}.SOURCE,'))


connector_app = typer.Typer(help="Source connector kit: a new channel from the template.", no_args_is_help=True)


@connector_app.command("new")
def new_command(
        name: Annotated[str, typer.Argument(help="channel slug, e.g. pinduoduo or douyin")],
        root: Annotated[Path | None, typer.Option(help="folder holding connectors/ and mappings/ (default: this "
                                                        "OrderHub's source tree)")] = None,
        title: Annotated[str | None, typer.Option(help="display name, e.g. 'Pinduoduo'")] = None) -> None:
    """Write connectors/NAME/, mappings/NAME.yaml and a mapping case from the template; print the registry line."""
    check_name(name)
    root = (root or default_root()).resolve()
    try:
        result = generate(name, root, title=title)
    except FileExistsError as exc:
        typer.echo(f"error: {exc}; pick another name or remove them first", err=True)
        raise typer.Exit(3) from None
    for path in result.files:
        typer.echo(f"wrote {path.relative_to(root)}")
    typer.echo("\nAdd to connectors/registry.py (the import with the others, the entry in SOURCES):")
    typer.echo(f"    {result.registry_lines[0]}")
    typer.echo(result.registry_lines[1])
    typer.echo(f"\nThen: fill in connectors/{name}/contract.py and a sandbox shop builder (sandbox/configuration.py), "
               f"and run `pytest tests/contract -k {name}`.")


def register(app: typer.Typer) -> None:
    app.add_typer(connector_app, name="connector")
