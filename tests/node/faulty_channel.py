"""A channel wrapper for protocol tests: crash at a step, delay or tamper with a send."""

from __future__ import annotations

import time
from collections.abc import Callable

from node.channel import Channel, ForwardingChannel


class Crashed(Exception):
    """A simulated party crash."""


class FaultyChannel(ForwardingChannel):
    """Crash before sending/receiving a step, delay a step's send, or tamper with it."""

    def __init__(
        self,
        inner: Channel,
        crash_on_send: str | None = None,
        crash_on_receive: str | None = None,
        delay_send: tuple[str, float] | None = None,
        tamper: Callable[[str, str, bytes], bytes] | None = None,  # (peer, step, payload)
    ) -> None:
        super().__init__(inner)
        self.crash_on_send, self.crash_on_receive = crash_on_send, crash_on_receive
        self.delay_send, self.tamper = delay_send, tamper

    def send(self, peer: str, step: str, payload: bytes) -> None:
        if step == self.crash_on_send:
            raise Crashed(f"{self.me} crashed before sending {step}")
        if self.delay_send is not None and step == self.delay_send[0]:
            time.sleep(self.delay_send[1])
        if self.tamper is not None:
            payload = self.tamper(peer, step, payload)
        self.inner.send(peer, step, payload)

    def receive(self, peer: str, step: str, timeout: float = 30.0) -> bytes:
        if step == self.crash_on_receive:
            raise Crashed(f"{self.me} crashed before receiving {step}")
        return self.inner.receive(peer, step, timeout)
