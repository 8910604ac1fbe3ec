#!/usr/bin/env python3
"""The floor under any request on this machine: one byte sent back and forth between two
processes over loopback TCP (blocking sockets, no HTTP, no asynchronous runtime), as the
service benchmark's client and server exchange a request and its answer.

    python3 bench/serve/loopback.py [ROUND_TRIPS]    # default 20,000
"""
import os
import socket
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
port = listener.getsockname()[1]
if os.fork() == 0:
    peer = socket.create_connection(("127.0.0.1", port))
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := peer.recv(64):
        peer.sendall(data)
    os._exit(0)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
took = []
for _ in range(n):
    start = time.perf_counter_ns()
    conn.sendall(b"x")
    conn.recv(64)
    took.append(time.perf_counter_ns() - start)
conn.close()
os.wait()
took.sort()
print(f"loopback TCP round trip between two processes: p50 {took[n // 2] / 1000:.1f} µs, "
      f"p95 {took[int(n * 0.95)] / 1000:.1f} µs ({n} round trips)")
