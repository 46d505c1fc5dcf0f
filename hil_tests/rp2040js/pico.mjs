// meterlink's emulated Raspberry Pi Pico: rp2040js (npm) running a MicroPython UF2, with
// the host-side models and fixes the HIL harness needs. Started by
// meterlink.hil.pico.EmulatedPico; see docs/hil.md ("The Pico").
//
//   node pico.mjs --uf2 FW.uf2 --bootrom B1.bin [--fs IMG] [--speed X] [--unique-id HEX]
//                 [--without uart-fix,flash-model]   (leave a fix out: its tests show why)
//
// On start it prints one JSON line on stdout: {"console": PORT, "uart0": PORT, "ctrl": PORT},
// three loopback TCP ports (chosen by the kernel):
//   console  the USB-CDC REPL as a byte stream (mpremote connect socket://127.0.0.1:PORT)
//   uart0    UART0 (GP0 TX, GP1 RX): the radio-modem line
//   ctrl     one command per line, one reply line each (JSON or "ok"/"err ...")
//              pin N 0|1                  drive GPIO N's input level
//              get N                      {"oe":0|1,"out":0|1,"in":0|1}
//              pulses N COUNT HIGH_US LOW_US  a pulse train on GPIO N timed in guest time
//              pulses?                    pulses of the current train still to send
//              rises                      rising edges all trains made since start
//              time                       guest clock and how it was spent (see stats())
//              reset                      a chip reset (RAM lost, flash kept)
//              save FILE                  write the littlefs region to FILE, keep running
//              cut FILE                   power cut: stop the CPU now, write the littlefs
//                                         region to FILE, reply {"rises": N}, exit
//              speed X                    cap guest time at X times wall time (0: no cap)
//              vsys MV                    the supply voltage the board reads on ADC3
//                                         (through the Pico's 1/3 divider; 3600 at start)
//
// Host bytes reach the guest only as fast as its FIFOs take them (UART0 RX holds 32).
import fs from 'fs';
import net from 'net';
import { RP2040, USBCDC, ConsoleLogger, LogLevel, BasePeripheral } from 'rp2040js';

// ---- arguments ------------------------------------------------------------------------------
const opts = { speed: '1' };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i];
  if (!key.startsWith('--') || i + 1 >= process.argv.length) {
    process.stderr.write(`pico.mjs: bad argument ${key}\n`);
    process.exit(2);
  }
  opts[key.slice(2)] = process.argv[i + 1];
}
const say = (msg) => process.stderr.write(`[pico ${(performance.now() / 1000).toFixed(3)}] ${msg}\n`);

// RPI_PICO: 2 MiB flash; MicroPython's littlefs sits in the last 1408 KiB (0xA0000 on).
const FLASH_BYTES = 2 * 1024 * 1024;
const FS_OFFSET = 0xa0000;
const FS_BYTES = FLASH_BYTES - FS_OFFSET;
const CYCLE_NS = 8; // 125 MHz clk_sys, as rp2040js assumes

// ---- the flash contents, kept across chip resets --------------------------------------------
function loadUf2(path) {
  const image = new Uint8Array(FLASH_BYTES).fill(0xff);
  const data = fs.readFileSync(path);
  let blocks = 0;
  for (let at = 0; at + 512 <= data.length; at += 512) {
    const word = (n) => data.readUInt32LE(at + n);
    if (word(0) !== 0x0a324655 || word(4) !== 0x9e5d5157 || word(508) !== 0x0ab16f30) {
      throw new Error(`${path}: block at byte ${at} is not a UF2 block`);
    }
    if (word(8) & 1) continue; // flag "not main flash"
    const target = word(12) - 0x10000000;
    const size = word(16);
    if (target < 0 || target + size > FLASH_BYTES || size > 476) {
      throw new Error(`${path}: block at byte ${at} targets flash offset ${target}, outside 2 MiB`);
    }
    image.set(data.subarray(at + 32, at + 32 + size), target);
    blocks++;
  }
  if (!blocks) throw new Error(`${path}: no UF2 blocks for main flash`);
  return image;
}
const flashImage = loadUf2(opts.uf2);
if (opts.fs) {
  const fsImage = fs.readFileSync(opts.fs);
  if (fsImage.length !== FS_BYTES) {
    throw new Error(`${opts.fs}: a filesystem image is ${FS_BYTES} bytes, this one ${fsImage.length}`);
  }
  flashImage.set(fsImage, FS_OFFSET);
}
const bootrom = (() => {
  const raw = fs.readFileSync(opts.bootrom);
  return new Uint32Array(raw.buffer, raw.byteOffset, raw.length >> 2);
})();
const without = new Set((opts.without || '').split(',').filter(Boolean));
const uniqueId = Buffer.from(opts['unique-id'] || 'e000000000000000', 'hex');

// ---- fix 1: UART TX interrupt ---------------------------------------------------------------
// rp2040js raises UARTTXINTR on every interrupt check, so a write to UARTICR never clears it;
// MicroPython's machine.UART enables TXIM and its handler then runs forever. On a PL011 the
// TX interrupt is an event of the TX FIFO draining (RP2040 datasheet 4.2.6): here bytes
// leave at once, so it is raised by each write to UARTDR and by nothing else.
export function fixUartTxInterrupt(uart) {
  const write = uart.writeUint32.bind(uart);
  uart.checkInterrupts = () => {
    uart.rp2040.setInterrupt(uart.irq, (uart.interruptStatus & uart.interruptMask) !== 0);
  };
  uart.writeUint32 = (offset, value) => {
    write(offset, value);
    if (offset === 0x000 /* UARTDR */) {
      uart.interruptStatus |= 1 << 5; /* UARTTXINTR */
      uart.checkInterrupts();
    }
  };
}

// ---- fix 2: a SPI NOR flash behind the SSI --------------------------------------------------
// rp2040js answers only the status read that boot stage 2 polls; littlefs needs erase and
// program. This models a W25Q16 as the bootrom's flash routines drive it: chip select forced
// through IO_QSPI GPIO_QSPI_SS_CTRL (OUTOVER), bytes shifted through SSI DR0. A sector
// erase or page program takes effect when chip select rises, whole (no torn page).
class SpiNor {
  constructor(memory) {
    this.memory = memory;
    this.selected = false;
    this.writeEnabled = false;
    this.bytesIn = [];
  }
  select(on) {
    if (on && !this.selected) this.bytesIn = [];
    if (!on && this.selected) this.finish();
    this.selected = on;
  }
  address() {
    const b = this.bytesIn;
    return (b[1] << 16) | (b[2] << 8) | b[3];
  }
  shift(byte) {
    // one byte out, one byte back (SPI is full duplex)
    const b = this.bytesIn;
    b.push(byte);
    const n = b.length - 1;
    const cmd = b[0];
    if (n === 0) return 0xff;
    switch (cmd) {
      case 0x05: return this.writeEnabled ? 0x02 : 0x00; // status 1: WEL; never busy
      case 0x35: return 0x02; // status 2: quad enable
      case 0x9f: return [0xef, 0x40, 0x15][n - 1] ?? 0xff; // JEDEC id: Winbond W25Q16
      case 0x4b: return n >= 5 && n <= 12 ? uniqueId[n - 5] ?? 0 : 0xff; // unique id
      case 0x03: case 0x0b: { // read (0x0b: one dummy byte)
        const first = cmd === 0x03 ? 4 : 5;
        if (n < first) return 0xff;
        const at = this.address() + n - first;
        return at < FLASH_BYTES ? this.memory[at] : 0xff;
      }
      default: return 0xff;
    }
  }
  finish() {
    const b = this.bytesIn;
    const cmd = b[0];
    if (cmd === 0x06) this.writeEnabled = true;
    else if (cmd === 0x04) this.writeEnabled = false;
    else if ((cmd === 0x20 || cmd === 0xd8) && b.length >= 4) {
      const size = cmd === 0x20 ? 4096 : 65536;
      const start = this.address() & ~(size - 1);
      if (this.writeEnabled && start < FLASH_BYTES) this.memory.fill(0xff, start, start + size);
      this.writeEnabled = false;
    } else if (cmd === 0x02 && b.length > 4) {
      const start = this.address();
      const page = start & ~0xff;
      if (this.writeEnabled) {
        // bits only go from 1 to 0; the address wraps inside its 256-byte page
        for (let i = 4; i < b.length && i < 4 + 256; i++) {
          const at = page + ((start + i - 4) & 0xff);
          if (at < FLASH_BYTES) this.memory[at] &= b[i];
        }
      }
      this.writeEnabled = false;
    } else if (cmd === 0x01 || cmd === 0x31) {
      this.writeEnabled = false;
    }
    this.bytesIn = [];
  }
}

export function attachSpiNor(mcu) {
  const nor = new SpiNor(mcu.flash);
  const ssi = mcu.peripherals[0x18000];
  const answers = [];
  const ssiRead = ssi.readUint32.bind(ssi);
  const ssiWrite = ssi.writeUint32.bind(ssi);
  ssi.readUint32 = (offset) => {
    switch (offset) {
      case 0x60: return answers.length ? answers.shift() : 0; // DR0
      case 0x24: return answers.length; // RXFLR
      case 0x28: return 0x06 | (answers.length ? 0x08 : 0); // SR: TFNF, TFE, RFNE
      default: return ssiRead(offset);
    }
  };
  ssi.writeUint32 = (offset, value) => {
    if (offset === 0x60) {
      // Without a forced chip select the SSI frames the transfer itself
      if (!ssi.ssienr) return;
      if (!forced && !nor.selected) nor.select(true);
      answers.push(nor.selected ? nor.shift(value & 0xff) : 0xff);
      return;
    }
    if (offset === 0x08 && !value && !forced) {
      // disabling the SSI ends a transfer it framed itself (boot stage 2 does so)
      nor.select(false);
      answers.length = 0;
    }
    ssiWrite(offset, value);
  };
  let forced = false;
  class IoQspi extends BasePeripheral {
    constructor(rp2040) {
      super(rp2040, 'IO_QSPI_BASE');
      this.regs = new Uint32Array(12);
    }
    readUint32(offset) {
      return offset < 48 ? this.regs[offset >> 2] : 0;
    }
    writeUint32(offset, value) {
      if (offset >= 48) return;
      this.regs[offset >> 2] = value;
      if (offset === 0x0c) { // GPIO_QSPI_SS_CTRL
        const over = (value >> 8) & 3; // 2: drive low (selected), 3: drive high, 0: normal
        forced = over === 2 || over === 3;
        if (over === 2 && !nor.selected) answers.length = 0; // a new transfer
        nor.select(over === 2);
      }
    }
  }
  mcu.peripherals[0x40018] = new IoQspi(mcu); // keyed by address >>> 12
  return nor;
}

// ---- where guest time goes (for the energy budget) ------------------------------------------
// SLEEPDEEP (SCB SCR bit 2) is what MicroPython's lightsleep sets before WFI; rp2040js does
// not keep SCR, so it is kept here.
function trackScr(mcu) {
  const ppb = mcu.ppb;
  const read = ppb.readUint32.bind(ppb);
  const write = ppb.writeUint32.bind(ppb);
  ppb.scr = 0;
  ppb.readUint32 = (offset) => (offset === 0xd10 ? ppb.scr : read(offset));
  ppb.writeUint32 = (offset, value) => {
    if (offset === 0xd10) ppb.scr = value & 0x16;
    else write(offset, value);
  };
}

const stats = { activeCycles: 0, idleNs: 0, deepNs: 0, wakeups: 0, boots: 0 };

// ---- one chip -------------------------------------------------------------------------------
let mcu = null;
let cdc = null;
let usbUp = false;
const toConsole = [];
const toUart = [];
let pulseTrain = null; // {pin, left, highNs, lowNs}
let vsysMv = 3600; // a fresh lithium cell; rp2040js leaves ADC inputs at 0 V

function setVsys(mcu, mv) {
  // 12-bit ADC, 3.3 V reference, VSYS/3 on ADC3
  mcu.adc.channelValues[3] = Math.max(0, Math.min(4095, Math.round((mv / 3 / 3300) * 4095)));
}

function boot(why) {
  mcu = new RP2040();
  mcu.loadBootrom(bootrom); // also erases mcu.flash
  mcu.logger = new ConsoleLogger(LogLevel.Error);
  mcu.flash.set(flashImage);
  if (!without.has('uart-fix')) {
    fixUartTxInterrupt(mcu.uart[0]);
    fixUartTxInterrupt(mcu.uart[1]);
  }
  if (!without.has('flash-model')) attachSpiNor(mcu);
  trackScr(mcu);
  setVsys(mcu, vsysMv);
  mcu.uart[0].onByte = (b) => uart0.send(b);
  usbUp = false;
  cdc = new USBCDC(mcu.usbCtrl);
  cdc.onDeviceConnected = () => {
    usbUp = true;
  };
  cdc.onSerialData = (bytes) => consoleLink.sendAll(bytes);
  mcu.peripherals[0x40058].onWatchdogTrigger = () => {
    say('reset by the watchdog (machine.reset or a timeout)');
    resetChip();
  };
  mcu.core.PC = 0x10000000;
  stats.boots++;
  say(`boot (${why})`);
}

function resetChip() {
  // RAM and peripherals lost, flash kept; the USB device vanishes and re-enumerates
  flashImage.set(mcu.flash.subarray(0, FLASH_BYTES));
  toConsole.length = 0;
  consoleLink.hangUp();
  pulseTrain = null;
  guestBase += mcu.clock.nanos; // guest time goes on across resets
  const levels = mcu.gpio.map((p) => p.rawInputValue);
  boot('reset');
  levels.forEach((v, i) => mcu.gpio[i].setInputValue(!!v));
}

function fsRegion() {
  return Buffer.from(mcu.flash.subarray(FS_OFFSET, FLASH_BYTES));
}

// ---- guest-timed pulse trains ---------------------------------------------------------------
let trainAlarm = null;
let rises = 0; // rising edges the trains have made since this process started
function startPulses(pin, count, highUs, lowUs) {
  pulseTrain = { pin, left: count, highNs: highUs * 1000, lowNs: lowUs * 1000, high: false };
  const alarm = mcu.clock.createAlarm(() => {
    const t = pulseTrain;
    if (!t || t.left <= 0) return;
    t.high = !t.high;
    mcu.gpio[t.pin].setInputValue(t.high);
    if (t.high) rises++;
    if (!t.high) t.left--;
    if (t.left > 0 || t.high) alarm.schedule(t.high ? t.highNs : t.lowNs);
  });
  trainAlarm = alarm;
  alarm.schedule(1000);
}

// ---- the CPU loop ---------------------------------------------------------------------------
let speedCap = Number(opts.speed);
let guestBase = 0;
let guestAtStart = 0;
let wallAtStart = performance.now();
let running = true;

function feedGuest() {
  if (usbUp) {
    while (toConsole.length && !cdc.txFIFO.full) cdc.sendSerialByte(toConsole.shift());
  }
  const rx = mcu.uart[0].rxFIFO;
  while (toUart.length && rx.itemCount < rx.size - 1) mcu.uart[0].feedByte(toUart.shift());
}

function runSlice() {
  if (!running) return;
  feedGuest();
  const clock = mcu.clock;
  const core = mcu.core;
  const sliceEnd = performance.now() + 20;
  let guestLimit = Infinity;
  if (speedCap > 0) {
    guestLimit = guestAtStart - guestBase + (performance.now() + 20 - wallAtStart) * 1e6 * speedCap;
  }
  let wasWaiting = core.waiting;
  let stalled = false;
  let capped = false;
  for (let n = 0; running; n++) {
    if (core.waiting) {
      const dt = clock.nanosToNextAlarm;
      if (dt <= 0) {
        stalled = true; // asleep with no timer armed: only the host can wake it
        break;
      }
      // asleep: skip to the next timer event, but not past the speed cap
      const step = Math.min(dt, Math.max(0, guestLimit - clock.nanos));
      if (mcu.ppb.scr & 4) stats.deepNs += step;
      else stats.idleNs += step;
      clock.tick(step);
      wasWaiting = true;
      if (step < dt) {
        capped = true;
        break;
      }
    } else {
      if (wasWaiting) {
        stats.wakeups++;
        wasWaiting = false;
      }
      const cycles = core.executeInstruction();
      stats.activeCycles += cycles;
      clock.tick(cycles * CYCLE_NS);
    }
    if ((n & 0x3fff) === 0 && n) {
      if (performance.now() > sliceEnd || clock.nanos > guestLimit) break;
      feedGuest();
    }
  }
  if (stalled || capped || clock.nanos > guestLimit) setTimeout(runSlice, 1);
  else setImmediate(runSlice);
}

function guestNanos() {
  return guestBase + mcu.clock.nanos;
}

// ---- host side: three loopback ports --------------------------------------------------------
function byteLink(onBytes) {
  let peer = null;
  const pending = [];
  const server = net.createServer((sock) => {
    if (peer) peer.destroy();
    peer = sock;
    sock.setNoDelay(true);
    if (pending.length) sock.write(Buffer.from(pending.splice(0)));
    sock.on('data', (d) => { for (const b of d) onBytes(b); });
    sock.on('close', () => { if (peer === sock) peer = null; });
    sock.on('error', () => {});
  });
  return {
    server,
    send(b) {
      if (peer) peer.write(Buffer.of(b));
      else if (pending.length < 65536) pending.push(b);
    },
    sendAll(bytes) {
      if (peer) peer.write(Buffer.from(bytes));
      else for (const b of bytes) if (pending.length < 65536) pending.push(b);
    },
    hangUp() {
      if (peer) peer.destroy();
      peer = null;
      pending.length = 0;
    },
  };
}

const consoleLink = byteLink((b) => toConsole.push(b));
const uart0 = byteLink((b) => toUart.push(b));

function command(line) {
  const [cmd, ...a] = line.trim().split(/\s+/);
  const pinArg = (s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0 || n > 29) throw new Error(`no GPIO ${s}`);
    return n;
  };
  switch (cmd) {
    case 'pin':
      mcu.gpio[pinArg(a[0])].setInputValue(a[1] === '1');
      return 'ok';
    case 'get': {
      const p = mcu.gpio[pinArg(a[0])];
      return JSON.stringify({ oe: p.outputEnable ? 1 : 0, out: p.outputValue ? 1 : 0, in: p.inputValue ? 1 : 0 });
    }
    case 'pulses':
      startPulses(pinArg(a[0]), Number(a[1]), Number(a[2]), Number(a[3]));
      return 'ok';
    case 'pulses?':
      return String(pulseTrain ? pulseTrain.left : 0);
    case 'rises':
      return String(rises);
    case 'time':
      return JSON.stringify({
        guest_ns: guestNanos(),
        active_ns: stats.activeCycles * CYCLE_NS,
        idle_ns: stats.idleNs,
        deep_sleep_ns: stats.deepNs,
        wakeups: stats.wakeups,
        boots: stats.boots,
        wall_s: performance.now() / 1000,
      });
    case 'reset':
      resetChip();
      return 'ok';
    case 'save':
      fs.writeFileSync(a[0], fsRegion());
      return 'ok';
    case 'cut':
      running = false; // no further instruction runs
      fs.writeFileSync(a[0], fsRegion());
      setImmediate(() => process.exit(0));
      return JSON.stringify({ rises });
    case 'vsys':
      vsysMv = Number(a[0]);
      setVsys(mcu, vsysMv);
      return 'ok';
    case 'speed':
      speedCap = Number(a[0]);
      guestAtStart = guestNanos();
      wallAtStart = performance.now();
      return 'ok';
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

const ctrl = net.createServer((sock) => {
  let text = '';
  sock.on('data', (d) => {
    text += d.toString();
    let nl;
    while ((nl = text.indexOf('\n')) >= 0) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      let reply;
      try {
        reply = command(line);
      } catch (e) {
        reply = `err ${e.message}`;
      }
      sock.write(reply + '\n');
    }
  });
  sock.on('error', () => {});
});

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
boot('power on');
const ports = {
  console: await listen(consoleLink.server),
  uart0: await listen(uart0.server),
  ctrl: await listen(ctrl),
};
process.stdout.write(JSON.stringify(ports) + '\n');
wallAtStart = performance.now();
runSlice();
