"""pytest plugin (entry point `meterlink_hil`): fixtures for emulated boards, the radio
channel, a real broker, a central-system subscriber and the gateway process, and
artefacts kept under `artifacts/hil/<test id>/` when a test fails.

Heavy or still-changing parts (the radio channel needs meterlink.protocol) are imported
inside the fixtures, so a broken part cannot stop unrelated test runs from loading.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from meterlink.hil.board import EmulatedBoard
from meterlink.hil.broker import Mosquitto

if TYPE_CHECKING:
    from meterlink.hil.central import Central
    from meterlink.hil.gateway_process import GatewayProcess
    from meterlink.hil.pico import EmulatedPico
    from meterlink.hil.radio import RadioChannel
    from meterlink.provisioning.provision import ProvisionRequest, ProvisionResult

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meterlink-hil", "meterlink HIL harness")
    group.addoption(
        "--hil-deterministic",
        action="store_true",
        help="boards from the board/boards fixtures run with -icount (guest time follows "
        "the instruction count) and a fixed -seed",
    )
    group.addoption(
        "--hil-icount-shift",
        type=int,
        default=6,
        help="icount shift for --hil-deterministic: 2^N ns per instruction (default 6)",
    )
    group.addoption("--hil-seed", type=int, default=0, help="QEMU -seed for boards (default 0)")
    group.addoption(
        "--hil-artifacts",
        choices=("failed", "always", "never"),
        default="failed",
        help="when to copy UART logs, flash images and radio traces to artifacts/hil/",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def hil_test_failed(node: pytest.Item) -> bool:
    """True if the setup or the call of this test failed (usable in fixture teardown)."""
    return any(r.failed for r in node.stash.get(_REPORTS, {}).values())


def artifact_dir(config: pytest.Config, nodeid: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", nodeid).strip("_")
    return Path(config.rootpath) / "artifacts" / "hil" / safe


class ArtifactKeeper:
    """Collects what a test's fixtures produce; copies it to artifact_dir on failure."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.mode: str = request.config.getoption("--hil-artifacts")
        self.dir = artifact_dir(request.config, request.node.nodeid)

    @property
    def wanted(self) -> bool:
        node = self.request.node
        return self.mode == "always" or (
            self.mode == "failed" and isinstance(node, pytest.Item) and hil_test_failed(node)
        )

    def keep(self, *paths: Path) -> None:
        """Copies the existing files among paths, if artefacts are wanted."""
        if not self.wanted:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in paths:
            if path.exists():
                shutil.copy2(path, self.dir / path.name)


@pytest.fixture
def hil_artifacts(request: pytest.FixtureRequest) -> ArtifactKeeper:
    return ArtifactKeeper(request)


def _board_options(config: pytest.Config) -> dict[str, Any]:
    return {
        "deterministic": bool(config.getoption("--hil-deterministic")),
        "icount_shift": int(config.getoption("--hil-icount-shift")),
        "seed": int(config.getoption("--hil-seed")),
    }


def _retire_board(board: EmulatedBoard, keeper: ArtifactKeeper) -> None:
    """Keeps the board's artefacts if wanted (a flash image taken by a power cut), then
    closes it."""
    try:
        if keeper.wanted:
            paths = [board.uart_log, board.qemu_log]
            if board.running:
                paths.append(board.power_cut())
            elif board.flash_image is not None:
                paths.append(board.flash_image)
            keeper.keep(*paths)
    finally:
        board.close()


@pytest.fixture
def board(
    tmp_path: Path, request: pytest.FixtureRequest, hil_artifacts: ArtifactKeeper
) -> Iterator[EmulatedBoard]:
    """One started board at the REPL prompt; closed (and its artefacts kept on failure)
    at teardown. Guest-paced if the test has @pytest.mark.hil_guest_paced."""
    options = _board_options(request.config)
    if request.node.get_closest_marker("hil_guest_paced") and not options["deterministic"]:
        options.update(guest_paced=True, icount_shift=None)  # PACED_ICOUNT_SHIFT
    b = EmulatedBoard(tmp_path / "board", name="board", **options)
    try:
        b.start()
        yield b
    finally:
        _retire_board(b, hil_artifacts)


def require_pico() -> None:
    """Skips the test, saying in one line how to get what is missing, if the emulated
    Pico cannot run here (no rp2040js, no UF2 with a pinned checksum)."""
    from meterlink.hil.pico import runner_missing

    why = runner_missing()
    if why:
        pytest.skip(f"rp2 HIL tests skipped: {why}")


def retire_pico(pico: EmulatedPico, keeper: ArtifactKeeper) -> None:
    """Keeps the Pico's logs and littlefs image if wanted, then ends its emulator."""
    try:
        if keeper.wanted:
            paths = [pico.usb_log, pico.uart_log, pico.emulator_log]
            if pico.running:
                paths.append(pico.power_cut())
            elif pico.fs_image is not None:
                paths.append(pico.fs_image)
            keeper.keep(*paths)
    finally:
        pico.close()


@pytest.fixture
def pico(tmp_path: Path, hil_artifacts: ArtifactKeeper) -> Iterator[EmulatedPico]:
    """One emulated Raspberry Pi Pico (MicroPython v1.27.0 on rp2040js), started, at the
    USB REPL prompt; skipped with the reason if the emulator or the UF2 is missing."""
    require_pico()
    from meterlink.hil.pico import EmulatedPico

    p = EmulatedPico(tmp_path / "pico", name="pico")
    try:
        p.start()
        yield p
    finally:
        retire_pico(p, hil_artifacts)


BoardsFactory = Callable[..., list[EmulatedBoard]]


@pytest.fixture
def boards(
    tmp_path: Path, request: pytest.FixtureRequest, hil_artifacts: ArtifactKeeper
) -> Iterator[BoardsFactory]:
    """boards(n, **EmulatedBoard options) -> n started boards named board0..board<n-1>,
    booted in parallel. Can be called more than once; names continue."""
    made: list[EmulatedBoard] = []

    def factory(n: int, **options: Any) -> list[EmulatedBoard]:
        opts = {**_board_options(request.config), **options}
        first = len(made)
        new = [
            EmulatedBoard(tmp_path / f"board{first + i}", name=f"board{first + i}", **opts)
            for i in range(n)
        ]
        made.extend(new)
        with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
            results = [pool.submit(b.start) for b in new]
            for r in results:
                r.result()
        return new

    try:
        yield factory
    finally:
        for b in made:
            _retire_board(b, hil_artifacts)


@pytest.fixture
def channel(tmp_path: Path, hil_artifacts: ArtifactKeeper) -> Iterator[RadioChannel]:
    """A started radio channel without impairments (set loss etc. on it, or build your
    own RadioChannel for other settings); trace in radio-trace.jsonl."""
    from meterlink.hil.radio import RadioChannel

    trace = tmp_path / "radio-trace.jsonl"
    ch = RadioChannel(trace_path=trace)
    ch.start()
    try:
        yield ch
    finally:
        ch.close()
        hil_artifacts.keep(trace)


@pytest.fixture
def broker(tmp_path: Path, hil_artifacts: ArtifactKeeper) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port (stop()/start() for an outage)."""
    m = Mosquitto(tmp_path / "broker")
    m.start()
    try:
        yield m
    finally:
        m.close()
        hil_artifacts.keep(m.log_path)


@pytest.fixture
def central(broker: Mosquitto) -> Iterator[Central]:
    """An MQTT subscriber to meterlink/v1/# on the broker fixture."""
    from meterlink.hil.central import Central

    c = Central(broker.host, broker.port)
    c.start()
    try:
        yield c
    finally:
        c.close()


GatewayFactory = Callable[..., "GatewayProcess"]


@pytest.fixture
def gateway(tmp_path: Path, hil_artifacts: ArtifactKeeper) -> Iterator[GatewayFactory]:
    """gateway(config_path, *extra_args) starts `meterlink gateway run --config PATH`;
    every gateway started is stopped at teardown; its log is kept on failure."""
    from meterlink.hil.gateway_process import GatewayProcess

    started: list[GatewayProcess] = []

    def factory(config: Path, *extra_args: str) -> GatewayProcess:
        log = tmp_path / f"gateway{len(started)}.log"
        g = GatewayProcess(Path(config), log, extra_args=extra_args)
        g.start()
        started.append(g)
        return g

    try:
        yield factory
    finally:
        for g in started:
            g.stop()
            hil_artifacts.keep(g.log_path)


class ProvisioningGateway:
    """The real gateway on the `channel` fixture's receiver rx0 and the `broker`, reading
    an empty key file that provisioning fills in (`keys`). provision() runs the
    installer's two steps, flash_and_restart() and self_test(), as `meterlink provision`
    does; every line the tool says is kept in `lines`, and the gateway is sent SIGHUP
    when the tool has updated the key file, so that it knows the new module."""

    def __init__(self, keys: Path, process: GatewayProcess) -> None:
        self.keys = keys
        self.process = process
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        import signal

        self.lines.append(line)
        if "gateway key file" in line and self.process.proc is not None:
            self.process.proc.send_signal(signal.SIGHUP)

    def provision(self, emulated: Any, request: ProvisionRequest, *,
                  show_progress: bool = False) -> ProvisionResult:
        """emulated: an EmulatedBoard or EmulatedPico (its port is released meanwhile)."""
        from meterlink.provisioning.provision import flash_and_restart, self_test

        with emulated.released():
            flashed = flash_and_restart(request, self.say, show_progress=show_progress)
        return self_test(flashed, self.say)


def serial_gateway_config(tmp_path: Path, keys: Path, channel: RadioChannel,
                          broker: Mosquitto) -> Path:
    """A gateway.toml in tmp_path: the key file `keys`, one serial receiver on `channel`,
    the local `broker`, an outbox in tmp_path/outbox, the status page on a free port."""
    (tmp_path / "outbox").mkdir(exist_ok=True)
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw-hil"\nkeys_file = "{keys}"\n\n'
        f'[[serial]]\nname = "rx0"\nport = "{channel.add_receiver("rx0")}"\n\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n\n'
        f'[outbox]\npath = "{tmp_path / "outbox" / "outbox.db"}"\n\n'
        f"[http]\nport = 0\n"
    )
    return config


@pytest.fixture
def provisioning_gateway(tmp_path: Path, channel: RadioChannel, broker: Mosquitto,
                         gateway: GatewayFactory) -> ProvisioningGateway:
    """A gateway for provisioning tests (ProvisioningGateway); attach the board to the
    channel first, and give the request keys_out=provisioning_gateway.keys."""
    from meterlink.provisioning.exports import export_key_file

    keys = tmp_path / "keys.json"
    export_key_file([], keys)
    return ProvisioningGateway(keys, gateway(serial_gateway_config(tmp_path, keys, channel,
                                                                   broker)))
