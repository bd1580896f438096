#!/usr/bin/env python3
"""Where a lone command waits, from the wire: per-hop times of commands sent
one at a time, read from a loopback capture, so that nothing in the
processes is slowed (strace and debug builds are).

Capture during `cafe bench --floor`'s lone phase (see docs/perf/README.md):

    tcpdump -i lo -s 400 -w lone.pcap \
      'tcp and (port 5672 or port 1883 or port 8080) and (tcp[tcpflags] & tcp-push != 0)'

then:

    python3 hops.py lone.pcap 8080 cafe          # HTTP port, AMQP prefix
    python3 hops.py lone.pcap 8090 plain         # cmd/plaincafe (its queues' prefix)

Each command is followed from the HTTP request to its result on the app's
MQTT connection, by the first matching packet of each hop after the
previous one (commands one at a time: the next starts after the result).
Segments between a packet into a service and the packet out of it are the
service's own time (with the kernel's loopback); the others are the
brokers' (and the bench's simulated device). --writes also says, for the
writes on a command's path, how often one followed another write on its
connection within groupwrite.IdleAfter (1 ms), so went through the writer
goroutine rather than from the caller.
"""
import bisect
import struct
import sys


def packets(path):
    data = open(path, 'rb').read()
    nano = struct.unpack('<I', data[:4])[0] == 0xa1b23c4d
    link = struct.unpack('<I', data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        ts, tu, incl, _ = struct.unpack('<IIII', data[off:off + 16])
        off += 16
        p = data[off:off + incl]
        off += incl
        p = p[14:] if link == 1 else p[16:] if link == 113 else p
        ihl = (p[0] & 15) * 4
        sp, dp = struct.unpack('>HH', p[ihl:ihl + 4])
        pay = p[ihl + (p[ihl + 12] >> 4) * 4:]
        if pay:
            out.append((ts + tu / (1e9 if nano else 1e6), sp, dp, pay))
    return out


PUBLISH, DELIVER, ACK = b'\x00<\x00(', b'\x00<\x00<', b'\x00<\x00P'  # AMQP basic.publish, basic.deliver, basic.ack


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    path, http, prefix = args[0], int(args[1]), args[2].encode()
    pk = packets(path)

    def port(pred, side):
        for _, s, d, p in pk:
            if pred(s, d, p):
                return s if side == 's' else d

    cash = port(lambda s, d, p: d == 5672 and PUBLISH in p and prefix + b'.commands' in p, 's')
    bpub = port(lambda s, d, p: d == 5672 and PUBLISH in p and prefix + b'.results' in p, 's')
    bcon = port(lambda s, d, p: s == 5672 and DELIVER in p and prefix + b'.commands' in p, 'd')
    ccon = port(lambda s, d, p: s == 5672 and DELIVER in p and prefix + b'.results' in p, 'd')
    bmq = port(lambda s, d, p: d == 1883 and p[0] >> 4 == 3 and b'/commands/' in p, 's')
    cmq = port(lambda s, d, p: d == 1883 and p[0] >> 4 == 3 and b'/results' in p and b'clients/' in p, 's')
    hops = [
        ('HTTP request in', lambda s, d, p: d == http and p.startswith(b'POST /v1/devices/')),
        ('command published', lambda s, d, p: s == cash and d == 5672 and PUBLISH in p and prefix + b'.commands' in p),
        ('command delivered', lambda s, d, p: s == 5672 and d == bcon and DELIVER in p and prefix + b'.commands' in p),
        ('command to MQTT', lambda s, d, p: s == bmq and d == 1883 and b'/commands/' in p),
        ('command at device', lambda s, d, p: s == 1883 and d != bmq and b'/commands/' in p),
        ('reply from device', lambda s, d, p: d == 1883 and s != bmq and b'/replies/' in p),
        ('reply at barista', lambda s, d, p: s == 1883 and d == bmq and b'/replies/' in p),
        ('result published', lambda s, d, p: s == bpub and d == 5672 and PUBLISH in p and prefix + b'.results' in p),
        ('result delivered', lambda s, d, p: s == 5672 and d == ccon and DELIVER in p and prefix + b'.results' in p),
        ('result to MQTT', lambda s, d, p: s == cmq and d == 1883 and b'clients/' in p),
        ('result at app', lambda s, d, p: s == 1883 and d != cmq and b'clients/' in p and b'/results' in p),
    ]
    side = [
        ('202 out', lambda s, d, p: s == http and p.startswith(b'HTTP/1.1 202')),
        ('command confirmed', lambda s, d, p: s == 5672 and d == cash and ACK in p),
    ]
    ev = {}
    for t, s, d, p in pk:
        for name, pred in hops + side:
            if pred(s, d, p):
                ev.setdefault(name, []).append(t)

    def after(name, t):
        xs = ev.get(name, [])
        i = bisect.bisect_right(xs, t)
        return xs[i] if i < len(xs) else None

    chains = []
    for a in ev.get(hops[0][0], []):
        c, t = {hops[0][0]: a}, a
        for name, _ in hops[1:]:
            t = after(name, t)
            if t is None or t - a > 0.05:
                break
            c[name] = t
        else:
            for name, _ in side:
                u = after(name, a)
                if u is not None and u - a < 0.05:
                    c[name] = u
            chains.append(c)
    last = hops[-1][0]
    chains = [c for i, c in enumerate(chains) if i + 1 == len(chains) or chains[i + 1][hops[0][0]] > c[last]]

    def q(xs, f):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(f * len(xs)))] if xs else float('nan')

    own = {1, 3, 7, 9}  # segments ending where a service sends what it received
    print('%d lone commands in %s' % (len(chains), path))
    print('%-42s %7s %7s %7s' % ('segment, ms', 'p25', 'p50', 'p90'))
    rows = []
    for i in range(1, len(hops)):
        a, b = hops[i - 1][0], hops[i][0]
        rows.append(('%s %s -> %s' % ('own' if i in own else '   ', a, b), [(c[b] - c[a]) * 1e3 for c in chains]))
    rows.append(('    own time, four segments', [sum((c[hops[i][0]] - c[hops[i - 1][0]]) * 1e3 for i in own) for c in chains]))
    rows.append(('    total (HTTP in -> result at app)', [(c[last] - c[hops[0][0]]) * 1e3 for c in chains]))
    rows.append(('    HTTP in -> 202 out', [(c['202 out'] - c[hops[0][0]]) * 1e3 for c in chains if '202 out' in c]))
    rows.append(('    command published -> confirmed', [(c['command confirmed'] - c['command published']) * 1e3 for c in chains if 'command confirmed' in c]))
    for n, xs in rows:
        print('%-42s %7.3f %7.3f %7.3f' % (n, q(xs, .25), q(xs, .5), q(xs, .9)))
    if '--writes' in sys.argv:
        last_write, count = {}, {}
        path_writes = {'command published': hops[1][1], 'command to MQTT': hops[3][1], 'result published': hops[7][1], 'result to MQTT': hops[9][1]}
        for t, s, d, p in pk:
            if d not in (5672, 1883):
                continue
            for name, pred in path_writes.items():
                if pred(s, d, p):
                    n, g = count.get(name, (0, 0))
                    count[name] = (n + 1, g + (s in last_write and t - last_write[s] < 0.001))
            last_write[s] = t
        for name, (n, g) in count.items():
            print('%-20s %5d writes, %5.1f%% within 1 ms of the previous write on its connection' % (name, n, 100 * g / n))


if __name__ == '__main__':
    main()
