#!/usr/bin/env python3
"""Turns bench/out/results.txt (one key=value line per loadgen run) into a
markdown table of medians, ratios and the issue's targets. Usage:
    bench/summarize.py bench/out/results.txt
"""
import statistics
import sys
from collections import defaultdict

SYSTEMS = ["nethost-lua", "nethost-swift", "haproxy-lua", "nio", "prosody", "nginx", "c", "nethost-lua-cpu", "nethost-lua-perloop"]
ROWS = [  # (test, metric, label, lower is better)
    ("conn_v2", "server_us_per_conn", "conn v2: server CPU µs/conn", True),
    ("conn_v2", "server_user_us_per_conn", "conn v2: of which user space µs/conn", True),
    ("conn_v2", "server_sys_us_per_conn", "conn v2: of which kernel µs/conn", True),
    ("conn_v2", "rate", "conn v2: conns/s", False),
    ("conn_v2", "p50_us", "conn v2: latency p50 µs", True),
    ("conn_v2", "p99_us", "conn v2: latency p99 µs", True),
    ("conn_v2_keep", "server_us_per_conn", "conn v2, client closes first: server CPU µs/conn", True),
    ("conn_v2_keep", "rate", "conn v2, client closes first: conns/s", False),
    ("conn_v1", "server_us_per_conn", "conn v1: server CPU µs/conn", True),
    ("conn_v1", "rate", "conn v1: conns/s", False),
    ("echo_64", "server_us_per_msg", "echo 64 B: server CPU µs/msg", True),
    ("echo_64", "server_user_us_per_msg", "echo 64 B: of which user space µs/msg", True),
    ("echo_64", "server_sys_us_per_msg", "echo 64 B: of which kernel µs/msg", True),
    ("echo_64", "rate", "echo 64 B: msgs/s", False),
    ("echo_64", "p50_us", "echo 64 B: RTT p50 µs", True),
    ("echo_64", "p99_us", "echo 64 B: RTT p99 µs", True),
    ("echo_16k", "mb_s", "echo 16 KiB: MB/s", False),
    ("echo_16k", "server_us_per_msg", "echo 16 KiB: server CPU µs/msg", True),
    ("echo_16k", "server_user_us_per_msg", "echo 16 KiB: of which user space µs/msg", True),
    ("echo_16k", "server_sys_us_per_msg", "echo 16 KiB: of which kernel µs/msg", True),
    ("echo_16k", "p99_us", "echo 16 KiB: RTT p99 µs", True),
    ("idle", "kb_per_conn", "idle: KB per proxied conn", True),
    # The CPU-bound Lua whoami (nethost-lua-cpu, nethost-lua-perloop): connections each Lua state served.
    ("spread", "served_1", "CPU-bound Lua: connections served by Lua state 1", False),
    ("spread", "served_2", "CPU-bound Lua: connections served by Lua state 2", False),
]
RATIOS = [("nethost-lua-perloop", "nethost-lua-cpu"), ("nethost-lua", "haproxy-lua"), ("nethost-lua", "prosody"), ("nethost-lua", "nio"), ("nethost-lua", "c"), ("nethost-swift", "c"), ("nethost-swift", "nio"), ("nio", "c"), ("nginx", "c")]


def parse(path):
    runs = []
    header = []
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            header.append(line)
            continue
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        runs.append(fields)
    return header, runs


def main():
    header, runs = parse(sys.argv[1])
    values = defaultdict(list)
    other = defaultdict(list)
    lg = defaultdict(list)
    failed = []
    for run in runs:
        test, system = run.get("test"), run.get("system")
        if run.get("mode") == "failed" or run.get("errors", "0") != "0" or run.get("mismatches", "0") != "0" \
                or (test == "idle" and run.get("held") != run.get("requested")):
            failed.append(f"round {run.get('round')} {system} {test}: errors={run.get('errors')} "
                          f"mismatches={run.get('mismatches')} held={run.get('held', '-')}")
            continue  # a run with errors is listed, never averaged
        for key, val in run.items():
            try:
                number = float(val)
            except ValueError:
                continue
            if number >= 0:  # loadgen prints -1 for what it could not measure
                values[(test, system, key)].append(number)
        if "other_cpu_pct" in run:
            other[system].append(float(run["other_cpu_pct"]))
        if "lg_cpu_pct" in run:
            lg[system].append(float(run["lg_cpu_pct"]))

    present = [s for s in SYSTEMS if any(k[1] == s for k in values)]

    def med(test, system, metric):
        v = values.get((test, system, metric))
        return statistics.median(v) if v else None

    def fmt(x):
        if x is None:
            return "–"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:.0f}"
        return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"

    out = []
    out.extend(header)
    rounds = max((int(r.get("round", 0)) for r in runs), default=0)
    out.append("")
    out.append(f"Medians over {rounds} round(s). Ratios are NetHost ÷ other on the same row (CPU: lower is better).")
    out.append("")
    ratio_cols = [(a, b) for a, b in RATIOS if a in present and b in present]
    out.append("| metric | " + " | ".join(present) + " | " + " | ".join(f"{a}/{b}" for a, b in ratio_cols) + " |")
    out.append("|---|" + "---:|" * (len(present) + len(ratio_cols)))
    for test, metric, label, _ in ROWS:
        cells = [med(test, s, metric) for s in present]
        if all(c is None for c in cells):
            continue
        ratios = []
        for a, b in ratio_cols:
            x, y = med(test, a, metric), med(test, b, metric)
            ratios.append(f"{x / y:.2f}×" if x is not None and y else "–")
        out.append(f"| {label} | " + " | ".join(fmt(c) for c in cells) + " | " + " | ".join(ratios) + " |")
    out.append("")
    out.append("Load generator CPU (% of its core, median): " +
               ", ".join(f"{s} {statistics.median(lg[s]):.0f}%" for s in present if lg[s]))
    out.append("Other processes' CPU during the runs (% of one core, median / max): " +
               ", ".join(f"{s} {statistics.median(other[s]):.0f}/{max(other[s]):.0f}%" for s in present if other[s]))
    if failed:
        out.append("")
        out.append("Runs with errors, left out of the medians:")
        out.extend(f"- {f}" for f in failed)

    out.append("")
    out.append("Targets (against HAProxy 2.6's Lua applets and bare NIO, in this run):")

    def target(name, value, limit, ok):
        if value is None or limit is None:
            out.append(f"- [ ] {name}: not measured")
        else:
            out.append(f"- [{'x' if ok(value, limit) else ' '}] {name}: {value:.2f} (target {limit}) "
                       f"{'MET' if ok(value, limit) else 'NOT MET'}")

    def ratio(a, b, test, metric):
        x, y = med(test, a, metric), med(test, b, metric)
        return x / y if x is not None and y else None

    le = lambda v, l: v <= l  # noqa: E731
    ge = lambda v, l: v >= l  # noqa: E731
    target("Lua service, CPU per connection (server closes) ÷ HAProxy Lua",
           ratio("nethost-lua", "haproxy-lua", "conn_v2", "server_us_per_conn"), 1.0, le)
    target("Lua service, CPU per connection (client closes first) ÷ HAProxy Lua",
           ratio("nethost-lua", "haproxy-lua", "conn_v2_keep", "server_us_per_conn"), 1.0, le)
    target("Lua service, CPU per 64-byte message ÷ HAProxy Lua", ratio("nethost-lua", "haproxy-lua", "echo_64", "server_us_per_msg"), 1.0, le)
    target("Swift service, CPU per connection ÷ bare NIO", ratio("nethost-swift", "nio", "conn_v2", "server_us_per_conn"), 1.1, le)
    target("Swift service, CPU per 64-byte message ÷ bare NIO", ratio("nethost-swift", "nio", "echo_64", "server_us_per_msg"), 1.1, le)
    target("16 KiB echo through a Lua service, MB/s", med("echo_16k", "nethost-lua", "mb_s"), 1500, ge)
    target("16 KiB echo through a Lua service ÷ HAProxy Lua", ratio("nethost-lua", "haproxy-lua", "echo_16k", "mb_s"), 1.0, ge)
    target("KB per idle proxied connection (Lua echo)", med("idle", "nethost-lua", "kb_per_conn"), 3, le)
    target("KB per idle proxied connection (Swift echo)", med("idle", "nethost-swift", "kb_per_conn"), 3, le)
    print("\n".join(out))


if __name__ == "__main__":
    main()
