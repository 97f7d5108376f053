#!/usr/bin/env python3
"""Send and receive buffer memory of a running NetHost (loopback only, bounded).

Two phases against an echo service, each reporting the server's RSS growth:

  * NOREAD: CLIENTS connections send up to --per-client bytes each and never
    read. With backpressure the server stops reading once the echoes wait and
    the clients' sends stall in the kernel; without it the server reads on and
    keeps every echo. RSS is taken once every client has stalled or sent its
    share, while the connections are still open.
  * BURST: BURSTS connections each send one --burst-size burst and read the echo
    back, then stay open and idle. RSS is taken after --settle seconds (NetHost
    returns freed memory to the system every ten seconds); what is left per
    connection is what each keeps between reads.

Prints one summary line (key=value).
"""
import argparse, os, select, socket, sys, time
from procstat import rss_kib

def noread(host, port, clients, per_client, stall):
    socks = []
    for _ in range(clients):
        s = socket.create_connection((host, port))
        s.setblocking(False)
        socks.append(s)
    chunk = b"x" * 65536
    sent = [0] * clients
    last_progress = [time.monotonic()] * clients
    closed = [False] * clients
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        active = False
        for i, s in enumerate(socks):
            if closed[i] or sent[i] >= per_client:
                continue
            if time.monotonic() - last_progress[i] > stall:
                continue  # stalled: the server stopped reading
            active = True
            try:
                n = s.send(chunk[: min(len(chunk), per_client - sent[i])])
                sent[i] += n
                last_progress[i] = time.monotonic()
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed[i] = True
        if not active:
            break
        select.select([], socks, [], 0.01)
    return socks, sent, closed

def burst(host, port, count, size):
    socks = []
    payload = b"b" * size
    for _ in range(count):
        s = socket.create_connection((host, port))
        s.sendall(payload)
        got = 0
        while got < size:
            data = s.recv(min(1 << 20, size - got))
            if not data:
                raise SystemExit("burst: the server closed a connection")
            got += len(data)
        socks.append(s)
    return socks

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--per-client", type=int, default=28 * 1024 * 1024)
    p.add_argument("--stall", type=float, default=1.0)
    p.add_argument("--bursts", type=int, default=2000)
    p.add_argument("--burst-size", type=int, default=256 * 1024)
    p.add_argument("--settle", type=float, default=12.0)
    a = p.parse_args()

    base = rss_kib(a.pid)
    socks, sent, closed = noread(a.host, a.port, a.clients, a.per_client, a.stall)
    time.sleep(0.5)
    held = rss_kib(a.pid)
    for s in socks:
        s.close()
    time.sleep(a.settle)
    base2 = rss_kib(a.pid)
    bsocks = burst(a.host, a.port, a.bursts, a.burst_size)
    time.sleep(a.settle)
    idle = rss_kib(a.pid)
    print(
        f"noread_clients={a.clients} noread_sent_mib={sum(sent) / 2**20:.1f} noread_closed={sum(closed)} "
        f"noread_rss_growth_mb={(held - base) / 1000:.1f} noread_per_client_kib={(held - base) / a.clients:.0f} "
        f"burst_connections={a.bursts} burst_rss_growth_mb={(idle - base2) / 1000:.1f} "
        f"burst_per_connection_kib={(idle - base2) / a.bursts:.1f}"
    )
    for s in bsocks:
        s.close()

if __name__ == "__main__":
    main()
