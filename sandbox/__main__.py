"""``python -m sandbox [--port 8765] [--seed 1]``: run the simulators on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse

from sandbox.server import DEFAULT_PORT, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    parser.add_argument("--seed", type=int, default=1, help="world seed (default 1)")
    args = parser.parse_args(argv)
    serve(port=args.port, seed=args.seed)


if __name__ == "__main__":
    main()
