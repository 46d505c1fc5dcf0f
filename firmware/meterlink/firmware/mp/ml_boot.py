# Boot, imported once and released: the state record (ml_core.load), config.txt
# (ml_cfg), a fresh provisioning, the frame counter reservation.
from fields import S_DLC, S_FLAGS, S_GEN, S_N, S_REG, S_RESETS, S_RSV  # inlined by the bundler


def boot(c):
    import board
    from array import array
    from ml_cfg import as_text, parse, CfgError
    from ml_core import load
    s = c.s
    # the radio: 0 transparent UART modem, 1 AT modem (RUI3 P2P); its channel
    # and SF set the duty-cycle budget (ml_air)
    c.modem = 0
    c.lf = 868100000
    c.sf = 9
    c.pw = 14
    e = load(s)
    try:
        f = open(board.FS + 'config.txt', 'rb')
    except OSError:
        f = None
        c.err = 1
    g = {}
    if f:
        try:
            g = parse(as_text(f.read()))
            c.rp = board.pin(g['pin_pulse'])
            if g['pin_dir']:
                c.rd = board.pin(g['pin_dir'])
            if g['pin_tamper']:
                c.rt = board.pin(g['pin_tamper'], 1)
        except CfgError as x:
            c.err = x.args[0]
            g = x.args[3]
        except ValueError:  # a pin this board does not have
            c.err = 3
        f.close()
    c.dev = g.get('id', 0)
    c.key = g.get('key', c.key)
    if not c.err:
        if e or s[S_GEN] != g['gen']:
            # first boot of this provisioning: keep only the record sequence,
            # the counter reservation and the last downlink counter (an old
            # config downlink must stay stale: protocol 3.4)
            for i in range(S_GEN, S_N):
                if i != S_RSV and i != S_DLC:
                    s[i] = 0
            s[S_GEN] = g['gen']
            s[S_REG] = g['register']
        else:
            s[S_RESETS] += 1
            if not s[S_FLAGS] & 1:
                c.act = c.pend = 32  # unexpected reset
        if e == 4:
            c.err = 4
        c.w = g['weight']
        c.unit = g['unit']
        c.base = (g['interval'], g['leak_intervals'], g['burst_pulses'],
                  g['burst_intervals'], g['backflow_pulses'])
        c.rxw = g['rx_window_ms']
        c.modem = g['modem']
        c.lf = g['lora_freq']
        c.sf = g['lora_sf']
        c.pw = g['lora_power']
        c.h = array('L', [0] * g['history'])
        if not board.POLL:  # the board counts edges by interrupt
            board.attach(g['pin_pulse'], g['pin_dir'], c.edge)
            c.rp = board.ZERO
    import ml_air
    ml_air.init(c)
    if c.modem:
        import ml_at
        ml_at.init(c)
    s[S_FLAGS] = 0
    c.fc = s[S_RSV]
    s[S_RSV] = c.fc + 32  # reserve frame counters before using any (protocol 3.4)
    c.commit()
    c.t0 = c.tk = board.ticks_ms()
