#!/usr/bin/env python3
"""Issue 14: a Lua echo's round-trip latency on a plain port while a TLS
handshake flood hits a direct-TLS Lua service of the same server (loopback only,
bounded in time).

Starts `--binary` (nethost) with two Lua services: bench_echo on a plain port and
bench_tls_echo (`encryption = "ssl"`, RSA-2048 certificate made with openssl) on
another. Measures the echo's round trip (one 16-byte message at a time, one
connection) for `--seconds` without load, then again while `--flooders` processes
open TLS connections to the TLS port as fast as they can, each completing a full
handshake and closing. Prints one key=value line per phase: round trips done,
their p50/p99/max in ms, and the handshakes completed per second.

  python3 bench/tls_flood_latency.py --binary .build/release/nethost
"""
import argparse, multiprocessing, os, shutil, socket, ssl, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))

TLS_ECHO = """
module:set_global()
local listener = {}
function listener.onincoming(conn, data) conn:write(data) end
module:provides("net", { name = "bench_tls_echo", listener = listener, encryption = "ssl" })
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flooder(port, stop_at, counter):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    done = 0
    while time.monotonic() < stop_at:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.do_handshake()
                    done += 1
        except OSError:
            pass
    with counter.get_lock():
        counter.value += done


def measure(port, seconds):
    samples = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        message = b"0123456789abcdef"
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            s.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = s.recv(64)
                if not chunk:
                    raise RuntimeError("echo closed")
                got += chunk
            samples.append((time.perf_counter() - start) * 1000)
            time.sleep(0.005)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return len(samples), pick(0.5), pick(0.99), samples[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="ssl_max_handshakes_per_second (0: none, so the flood reaches the handshakes)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="nethost-tlsflood-")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", f"{work}/bench.key", "-out", f"{work}/bench.crt"], check=True, capture_output=True)
        with open(f"{work}/mod_bench_tls_echo.lua", "w") as f:
            f.write(TLS_ECHO)
        plain, secure = free_port(), free_port()
        with open(f"{work}/nethost.cfg.lua", "w") as f:
            f.write(f"""
plugin_paths = {{ "{HERE}/modules", "{work}" }}
modules_enabled = {{ "bench_echo", "bench_tls_echo" }}
interfaces = {{ "127.0.0.1" }}
bench_echo_ports = {{ {plain} }}
bench_tls_echo_ports = {{ {secure} }}
ssl = {{ certificate = "{work}/bench.crt", key = "{work}/bench.key" }}
ssl_max_handshakes_per_second = {args.rate_limit}
log = {{ warn = "{work}/nethost.log" }}
""")
        server = subprocess.Popen([args.binary, "run", "-c", f"{work}/nethost.cfg.lua"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", plain), timeout=1).close()
                    socket.create_connection(("127.0.0.1", secure), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("nethost did not start")
                    time.sleep(0.1)
            count, p50, p99, worst = measure(plain, args.seconds)
            print(f"phase=idle round_trips={count} p50_ms={p50:.3f} p99_ms={p99:.3f} max_ms={worst:.3f}")
            counter = multiprocessing.Value("i", 0)
            stop_at = time.monotonic() + args.seconds + 1.5
            workers = [multiprocessing.Process(target=flooder, args=(secure, stop_at, counter)) for _ in range(args.flooders)]
            for w in workers:
                w.start()
            time.sleep(1)  # let the flood build up
            count, p50, p99, worst = measure(plain, args.seconds)
            for w in workers:
                w.join()
            rate = counter.value / (args.seconds + 1.5)
            print(f"phase=flood flooders={args.flooders} round_trips={count} p50_ms={p50:.3f} p99_ms={p99:.3f} "
                  f"max_ms={worst:.3f} handshakes_per_s={rate:.0f}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
