"""The utility's central system as a test sees it: an MQTT subscriber (paho-mqtt, its
own network thread) that records every message under `meterlink/v1/#`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TOPIC_ALL = "meterlink/v1/#"


@dataclass(frozen=True)
class CentralMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_at: float  # time.time()

    def json(self) -> Any:
        """The payload parsed as JSON (every meterlink topic carries JSON)."""
        return json.loads(self.payload)


class Central:
    """Subscribes to topic on host:port; `messages` grows as they arrive."""

    def __init__(self, host: str, port: int, *, topic: str = TOPIC_ALL, qos: int = 1) -> None:
        self.host, self.port, self.topic, self.qos = host, port, topic, qos
        self.messages: list[CentralMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"central-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 2)

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(self.topic, qos=self.qos)  # again after every reconnect

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        item = CentralMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.time())
        with self._cond:
            self.messages.append(item)
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> None:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise TimeoutError(f"no SUBACK from the broker at {self.host}:{self.port}")

    def wait_for(
        self, predicate: Callable[[CentralMessage], bool], timeout: float = 10.0
    ) -> CentralMessage:
        """The first message (already received or arriving) that matches; TimeoutError
        listing the topics seen if none does in time."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for msg in self.messages[checked:]:
                    if predicate(msg):
                        return msg
                checked = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise TimeoutError(
                        f"no matching MQTT message within {timeout}s; "
                        f"{len(self.messages)} received on {topics}"
                    )
                self._cond.wait(left)

    def on_topic(self, prefix: str) -> list[CentralMessage]:
        with self._cond:
            return [m for m in self.messages if m.topic.startswith(prefix)]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def __enter__(self) -> Central:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
