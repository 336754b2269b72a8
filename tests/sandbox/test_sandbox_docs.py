"""The sandbox's interface is part of the product: every route it serves and every fault knob is documented."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.app import SandboxApp

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"


def _docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [SANDBOX / "README.md", *sorted(SANDBOX.glob("docs/*.md"))])


def _normalise(path: str) -> str:
    # /_sandbox/orders/<channel>/<order_id>/modify and /_sandbox/orders/jd/<id>/modify are the same shape
    return re.sub(r"<[^>]+>", "<>", path)


def test_every_route_of_the_shared_port_is_documented():
    app = SandboxApp(seed=1)
    try:
        documented = {_normalise(p.replace("{", "<").replace("}", ">"))
                      for p in re.findall(r"/[A-Za-z0-9_./<>{}:-]+", _docs())}

        def is_documented(route: str) -> bool:
            # a system's page may document its real paths once, under the shared-port prefix it names
            candidates = {route, "/" + route.split("/", 2)[-1]} if route.count("/") > 1 else {route}
            for candidate in candidates:
                static = candidate.split("<>", 1)[0]
                if candidate in documented or (candidate.endswith("<>") and any(d.startswith(static)
                                                                                 for d in documented)):
                    return True
            return False

        missing = sorted({r for r in (_normalise(rule.rule) for rule in app.routes.iter_rules())
                          if not is_documented(r)})
    finally:
        app.close()
    assert missing == [], f"routes missing from sandbox/README.md or sandbox/docs/: {missing}"


def test_every_fault_knob_is_documented():
    app = SandboxApp(seed=1)
    try:
        knobs = set(app.faults.snapshot())
    finally:
        app.close()
    text = _docs()
    missing = sorted(k for k in knobs if k not in text)
    assert missing == [], f"knobs missing from the docs: {missing}"


def test_every_registered_system_has_its_page():
    app = SandboxApp(seed=1)
    try:
        names = set(app.systems)
    finally:
        app.close()
    pages = {p.stem for p in SANDBOX.glob("docs/*.md")}
    assert names <= pages | {"sf", "cainiao", "kuaidi100"} and "logistics" in pages
