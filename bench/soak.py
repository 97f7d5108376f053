#!/usr/bin/env python3
"""Soak test for NetHost's PROXY port (loopback only, bounded in time).

Against a running NetHost whose net_proxy port maps to the `demo_whoami` service, it
holds thousands of hostile connections open while a steady stream of good
proxied connections is measured:

  * SILENT connections that never send a byte,
  * DRIP connections that send a header one byte a second,
  * RESET connections that reset mid-header or right after a full header,
  * UNTRUSTED connections (--untrusted): a valid header from an address outside
    proxy_trusted_proxies, which the server must close without serving,
  * GOOD connections (one at a time, continuously): full PROXY v1 header, read
    the "ip port" reply, check it names the header's address.

Then it waits for the header timeout and checks that every hostile connection
was closed by the server, and that the server's memory and file descriptors
return to their starting level. Prints one summary line (key=value).
"""
import argparse, asyncio, multiprocessing, os, random, socket, struct, sys, time
from procstat import rss_kib, fd_count

HOSTILE_FROM = None

def source(i):
    # Spread peers over 127.0.0.0/8 so per-address limits see many senders,
    # unless --hostile-from puts them all on one address (a load balancer's).
    if HOSTILE_FROM:
        return HOSTILE_FROM
    return f"127.{1 + (i // 60000) % 250}.{(i // 250) % 250}.{1 + i % 250}"

SPREAD = 0.0
TOTAL = 1

async def open_from(host, port, src, i=None):
    if i is not None and SPREAD > 0:
        # With --spread, hostile connection i arrives i/TOTAL of the way through it.
        await asyncio.sleep(SPREAD * i / TOTAL)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((src, 0))
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    return sock

async def wait_closed(sock, deadline):
    loop = asyncio.get_running_loop()
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=max(0.05, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
    return False

async def silent(host, port, i, timeout, results):
    try:
        sock = await open_from(host, port, source(i), i)
    except OSError:
        results["connect_errors"] += 1
        return
    deadline = time.monotonic() + timeout
    closed = await wait_closed(sock, deadline)
    results["silent_closed" if closed else "silent_open"] += 1
    sock.close()

async def drip(host, port, i, timeout, results):
    try:
        sock = await open_from(host, port, source(i), i)
    except OSError:
        results["connect_errors"] += 1
        return
    deadline = time.monotonic() + timeout
    header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    loop = asyncio.get_running_loop()
    closed = False
    for byte in header:
        try:
            await loop.sock_sendall(sock, bytes([byte]))
        except OSError:
            closed = True
            break
        if await wait_closed(sock, min(deadline, time.monotonic() + 1.0)):
            closed = True
            break
        if time.monotonic() >= deadline:
            break
    results["drip_closed" if closed else "drip_open"] += 1
    sock.close()

async def reset(host, port, i, results):
    try:
        sock = await open_from(host, port, source(i), i)
    except OSError:
        results["connect_errors"] += 1
        return
    loop = asyncio.get_running_loop()
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    cut = random.randint(1, len(data)) if i % 2 else len(data)
    try:
        await loop.sock_sendall(sock, data[:cut])
    except OSError:
        pass
    await asyncio.sleep(random.uniform(0, 0.5))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    results["resets"] += 1

async def untrusted(host, port, i, src, timeout, results):
    try:
        sock = await open_from(host, port, src, i)
    except OSError:
        results["connect_errors"] += 1
        return
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
    except OSError:
        pass
    # Closed without a reply: demo_whoami would answer "203.0.113.7 51234" if it served it.
    deadline = time.monotonic() + timeout
    served = False
    closed = False
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 100), timeout=max(0.05, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not data:
            closed = True
            break
        served = True
    results["untrusted_served" if served else ("untrusted_closed" if closed else "untrusted_open")] += 1
    sock.close()

async def good_stream(host, port, stop, results, latencies, interval):
    loop = asyncio.get_running_loop()
    n = 0
    while not stop.is_set():
        n += 1
        ip = f"198.51.{n // 250 % 250}.{1 + n % 250}"
        start = time.monotonic()
        try:
            sock = await open_from(host, port, "127.0.0.1")
            await loop.sock_sendall(sock, f"PROXY TCP4 {ip} 192.0.2.1 {1000 + n % 60000} 443\r\n".encode())
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 100), timeout=5)
                if not chunk:
                    break
                reply += chunk
            sock.close()
            if reply.decode().strip() == f"{ip} {1000 + n % 60000}":
                results["good_ok"] += 1
                latencies.append(time.monotonic() - start)
            else:
                results["good_wrong"] += 1
        except Exception:
            results["good_errors"] += 1
        await asyncio.sleep(interval)

def good_process(host, port, stop, queue, interval):
    """The measured stream, in a process of its own so that the hostile clients'
    event loop cannot delay it: its latencies are the server's."""
    results = {"good_ok": 0, "good_wrong": 0, "good_errors": 0}
    latencies = []
    async def run():
        flag = asyncio.Event()
        async def watch():
            while not stop.is_set():
                await asyncio.sleep(0.05)
            flag.set()
        watcher = asyncio.create_task(watch())
        await good_stream(host, port, flag, results, latencies, interval)
        await watcher
    asyncio.run(run())
    queue.put((results, latencies))

async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--silent", type=int, default=2500)
    parser.add_argument("--drip", type=int, default=2500)
    parser.add_argument("--resets", type=int, default=2000)
    parser.add_argument("--header-timeout", type=float, default=5)
    parser.add_argument("--hostile-from", help="send every hostile connection from this address (as behind a load balancer)")
    parser.add_argument("--good-interval", type=float, default=0.01, help="seconds between good connections")
    parser.add_argument("--spread", type=float, default=0.0, help="seconds over which the hostile connections arrive (default: all at once)")
    parser.add_argument("--untrusted", type=int, default=0, help="connections with a valid header from an untrusted address")
    parser.add_argument("--untrusted-from", default="127.0.0.9", help="the untrusted address (not in proxy_trusted_proxies)")
    parser.add_argument("--max-p99-ms", type=float, help="fail if the good connections' p99 latency is above this")
    args = parser.parse_args()
    global HOSTILE_FROM, SPREAD, TOTAL
    HOSTILE_FROM = args.hostile_from
    SPREAD = args.spread
    TOTAL = max(1, args.silent + args.drip + args.resets + args.untrusted)
    host = "127.0.0.1"
    results = {k: 0 for k in ["silent_closed", "silent_open", "drip_closed", "drip_open", "resets",
                              "untrusted_closed", "untrusted_open", "untrusted_served",
                              "good_ok", "good_wrong", "good_errors", "connect_errors"]}
    latencies = []
    rss_start, fds_start = rss_kib(args.pid), fd_count(args.pid)
    stop = multiprocessing.Event()
    queue = multiprocessing.Queue()
    good = multiprocessing.Process(target=good_process, args=(host, args.port, stop, queue, args.good_interval))
    good.start()
    # Each hostile connection must be closed by the server within the header
    # timeout of its own connect, plus a margin for a busy machine.
    deadline = args.header_timeout + 10
    hostile = []
    for i in range(args.silent):
        hostile.append(asyncio.create_task(silent(host, args.port, i, deadline, results)))
    for i in range(args.drip):
        hostile.append(asyncio.create_task(drip(host, args.port, args.silent + i, deadline, results)))
    for i in range(args.resets):
        hostile.append(asyncio.create_task(reset(host, args.port, args.silent + args.drip + i, results)))
    for i in range(args.untrusted):
        index = args.silent + args.drip + args.resets + i
        hostile.append(asyncio.create_task(untrusted(host, args.port, index, args.untrusted_from, deadline, results)))
    await asyncio.sleep(1.0)
    peak_rss, peak_fds = rss_kib(args.pid), fd_count(args.pid)
    await asyncio.gather(*hostile)
    stop.set()
    good_results, latencies = queue.get(timeout=30)
    good.join(timeout=10)
    results.update(good_results)
    # NetHost returns freed memory every ten seconds: measure after that.
    await asyncio.sleep(11.0)
    rss_end, fds_end = rss_kib(args.pid), fd_count(args.pid)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else -1
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else -1
    print(" ".join(f"{k}={v}" for k, v in results.items()),
          f"good_p50_ms={p50:.2f} good_p99_ms={p99:.2f}",
          f"rss_start_kib={rss_start} rss_peak_kib={peak_rss} rss_end_kib={rss_end}",
          f"fds_start={fds_start} fds_peak={peak_fds} fds_end={fds_end}")
    failed = (results["silent_open"] or results["drip_open"] or results["good_wrong"] or results["good_errors"]
              or results["untrusted_open"] or results["untrusted_served"] or fds_end > fds_start + 2
              or (args.max_p99_ms is not None and p99 > args.max_p99_ms))
    sys.exit(1 if failed else 0)

asyncio.run(main())
