"""A small Prometheus text-format registry: counters, gauges and histograms with labels.

No dependency: the gateway exports a few dozen series, which this covers. Label values are
escaped as the text format 0.0.4 says (backslash, double quote, newline), HELP text too
(backslash, newline); edge/tests/test_verify_parts.py parses the output with
prometheus_client's reference parser to prove it (docs/gateway.md says why).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _fmt_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in items) + "}"


def _fmt_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}",
                f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def total(self) -> float:
        return sum(self.values.values())

    def lines(self) -> list[str]:
        return [f"{self.name}{_fmt_labels(k)} {_fmt_value(v)}" for k, v in self.values.items()]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str,
                 func: Callable[[], float] | None = None) -> None:
        super().__init__(name, help_text)
        self.values: dict[Labels, float] = {}
        self.func = func

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def get(self, **labels: str) -> float:
        if self.func is not None and not labels:
            return self.func()
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def lines(self) -> list[str]:
        if self.func is not None:
            return [f"{self.name} {_fmt_value(self.func())}"]
        return [f"{self.name}{_fmt_labels(k)} {_fmt_value(v)}" for k, v in self.values.items()]


class _Series:
    __slots__ = ("count", "counts", "sum")

    def __init__(self, n: int) -> None:
        self.counts = [0] * n
        self.sum = 0.0
        self.count = 0


class Histogram(_Metric):
    """Buckets per label set. Without `labelled`, the unlabelled series exists from the
    start (zero buckets are exported before the first observation)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...],
                 labelled: bool = False) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[Labels, _Series] = {}
        if not labelled:
            self.series[()] = _Series(len(self.buckets) + 1)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series(len(self.buckets) + 1)
        s.counts[bisect.bisect_left(self.buckets, value)] += 1
        s.sum += value
        s.count += 1

    def get(self, **labels: str) -> tuple[int, float]:
        """(count, sum) of one series."""
        s = self.series.get(tuple(sorted(labels.items())))
        return (0, 0.0) if s is None else (s.count, s.sum)

    @property
    def count(self) -> int:
        return sum(s.count for s in self.series.values())

    @property
    def sum(self) -> float:
        return sum(s.sum for s in self.series.values())

    def lines(self) -> list[str]:
        out = []
        for key, s in self.series.items():
            cumulative = 0
            for bound, n in zip((*self.buckets, math.inf), s.counts, strict=True):
                cumulative += n
                out.append(f"{self.name}_bucket"
                           f"{_fmt_labels(key, (('le', _fmt_value(bound)),))} {cumulative}")
            out.append(f"{self.name}_sum{_fmt_labels(key)} {_fmt_value(s.sum)}")
            out.append(f"{self.name}_count{_fmt_labels(key)} {s.count}")
        return out


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def counter(self, name: str, help_text: str) -> Counter:
        m = Counter(name, help_text)
        self.metrics.append(m)
        return m

    def gauge(self, name: str, help_text: str,
              func: Callable[[], float] | None = None) -> Gauge:
        m = Gauge(name, help_text, func)
        self.metrics.append(m)
        return m

    def histogram(self, name: str, help_text: str, buckets: tuple[float, ...],
                  labelled: bool = False) -> Histogram:
        m = Histogram(name, help_text, buckets, labelled)
        self.metrics.append(m)
        return m

    def render(self) -> str:
        out: list[str] = []
        for m in self.metrics:
            out.extend(m.header())
            out.extend(m.lines())
        return "\n".join(out) + "\n"


class GatewayMetrics:
    """The gateway's series; names are documented in docs/gateway.md."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.frames = r.counter("meterlink_frames_total",
                                "Radio frames by outcome (accepted, duplicate, rejected) "
                                "and reason")
        self.link_errors = r.counter("meterlink_link_errors_total",
                                     "Link-layer errors by receiver and reason")
        self.duplicates = r.counter("meterlink_duplicates_total",
                                    "Frames heard again (other receiver or retransmission)")
        self.published = r.counter("meterlink_published_total",
                                   "Messages acknowledged by the broker (PUBACK), by kind")
        self.dropped = r.counter("meterlink_outbox_dropped_total",
                                 "Readings dropped or refused by the outbox policy, by reason")
        self.acks_sent = r.counter("meterlink_acks_sent_total", "ACK downlinks sent")
        self.downlinks_sent = r.counter("meterlink_downlinks_sent_total",
                                        "Queued config/time downlinks sent, by kind")
        self.commands = r.counter("meterlink_commands_total",
                                  "Commands received from the central system, by outcome")
        self.backlog = r.gauge("meterlink_backlog_messages", "Messages waiting in the outbox")
        self.backlog_bytes = r.gauge("meterlink_backlog_bytes", "Bytes of stored messages")
        self.backlog_age = r.gauge("meterlink_backlog_oldest_age_seconds",
                                   "Age of the oldest message waiting in the outbox")
        self.outbox_full = r.gauge("meterlink_outbox_full",
                                   "1 while the outbox is at its size cap or the disk is "
                                   "nearly full")
        self.broker_connected = r.gauge("meterlink_broker_connected",
                                        "1 while connected to the MQTT broker")
        self.broker_connects = r.counter("meterlink_broker_connects_total",
                                         "Successful connections to the broker")
        self.commit_batch = r.histogram("meterlink_commit_batch_frames",
                                        "Frames per outbox commit",
                                        (1, 2, 5, 10, 20, 50, 100, 200, 500))
        self.publish_latency = r.histogram(
            "meterlink_publish_latency_seconds",
            "Time from receiving a frame to the broker's PUBACK",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600),
        )
        self.kernel_drops = r.gauge(
            "meterlink_udp_kernel_drops", "Datagrams the kernel dropped on a UDP receiver's "
            "socket because its buffer was full (the socket's counter, by receiver)")
        self.shed = r.gauge(
            "meterlink_udp_shed", "Readings a paused UDP receiver took off its nearly full "
            "socket queue and dropped so that alarms get through (by receiver)")
        self.ingress_pauses = r.counter(
            "meterlink_ingress_pauses_total",
            "Times the receivers stopped reading because commits fell behind")
        self.pending_frames = r.gauge("meterlink_pending_frames",
                                      "Verified frames waiting for their commit")
        self.outbox_writable = r.gauge("meterlink_outbox_writable",
                                       "1 while the outbox accepts writes (commits and "
                                       "deletes after PUBACK)")
        self.registry_devices = r.gauge("meterlink_registry_devices",
                                        "Devices in the loaded key file")
        self.registry_reloads = r.counter("meterlink_registry_reloads_total",
                                          "Key file reloads by outcome")

    def render(self) -> str:
        return self.registry.render()
