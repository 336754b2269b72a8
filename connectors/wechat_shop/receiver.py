"""Run the WeChat callback receiver (connectors/wechat_shop/push.py) for the WeChat shops of an OrderHub
configuration: ``python -m connectors.wechat_shop.receiver orderhub.yaml --port 8088``. Point the shop console's
message-push URL (through the TLS proxy) at it; the hub's push intake drains the inbox it fills."""

from __future__ import annotations

from pathlib import Path

from connectors.wechat_shop.push import CallbackReceiver
from hub.logging import get_logger

log = get_logger(__name__)


def serve(config: str | Path, host: str = "127.0.0.1", port: int = 8088, path: str = "/wechat/callback") -> None:
    """Run the receiver for the WeChat shops of an OrderHub configuration until interrupted (the hub's push intake,
    `orderhub run` / the Airflow DAG, drains the inbox): ``python -m connectors.wechat_shop.receiver orderhub.yaml``."""
    from hub.config import load_settings

    shops = [s for s in load_settings(Path(config)).enabled_shops() if s.channel == "wechat_shop"]
    receiver = CallbackReceiver(shops, host=host, port=port, path=path)
    log.info("WeChat callback receiver listening", url=receiver.url, shops=[s.shop for s in receiver.handler
                                                                             .verifier.shops])
    try:
        receiver._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver._server.server_close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="WeChat shop callback receiver (verifies, stores in the inbox)")
    parser.add_argument("config", help="orderhub.yaml with the WeChat shops (callback_token, push_inbox...)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--path", default="/wechat/callback")
    args = parser.parse_args()
    serve(args.config, args.host, args.port, args.path)
