"""A real TCP proxy on a loopback port, for tests that need to see or break what goes over the wire.

``TcpProxy(target_host, target_port)`` forwards every connection to the target. ``recorded()`` returns the bytes
clients sent (to check what a sink really told a system), ``cut()`` closes every live connection at once (a network
drop / server restart as the client sees it) while new connections keep working.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, record: bool = False) -> None:
        self.target = (target_host, target_port)
        self.record = record
        self._sent: list[bytes] = []
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._live.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, dest: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client and self.record:
                    with self._lock:
                        self._sent.append(data)
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, dest):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    s.close()
                with self._lock:
                    self._live.discard(s)

    def recorded(self) -> bytes:
        with self._lock:
            return b"".join(self._sent)

    def cut(self) -> int:
        """Drop every live connection (RST-like: both sides see the socket die); returns how many were cut."""
        with self._lock:
            live = list(self._live)
            self._live.clear()
        for s in live:
            with suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                s.close()
        return len(live) // 2

    def close(self) -> None:
        self._closed = True
        with suppress(OSError):
            self._server.close()
        self.cut()
