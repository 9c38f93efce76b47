"""A TCP proxy in a thread, to cut a connection (to the database) the way a network does."""

from __future__ import annotations

import select
import socket
import threading
from typing import Self


class Proxy:
    """Forward 127.0.0.1:<port> to `target`. `cut()`: every byte from then on is swallowed, both
    ways, and connections stay open (a partition: the peer seems alive and never answers);
    `mend()`: new connections go through again (the swallowed ones stay dead)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.listener.close()
        for s in self._sockets:
            s.close()

    def cut(self) -> None:
        self.cut_off.set()

    def mend(self) -> None:
        self.cut_off.clear()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            dead = self.cut_off.is_set()
            threading.Thread(target=self._pump, args=(client, upstream, dead), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, dead: bool) -> None:
        peer = {a: b, b: a}
        while not self.stopping.is_set():
            try:
                readable, _, _ = select.select([a, b], [], [], 0.2)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    dead = dead or self.cut_off.is_set()
                    if not dead:
                        peer[s].sendall(data)
            except (OSError, ValueError):
                return
