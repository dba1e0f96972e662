#!/usr/bin/python3
"""The machine's floor for a loopback round trip, to read `ttfe` figures against: two processes on
two cores (as bench/run.sh pins server and client) ping-pong one byte over TCP (Nagle off), once
back to back and once with a pause between round trips, so that both sides sleep in between.

On a virtual machine a sleeping vCPU can take milliseconds to be woken; a server's first-event
latency at light load cannot be below that. Prints p50 / p99 / max in ms for both modes.

    python3 bench/wake_latency.py [--count 2000] [--pause-ms 10] [--cores 0,1]"""
import argparse
import os
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--pause-ms", type=float, default=10.0)
    ap.add_argument("--cores", default="0,1")
    args = ap.parse_args()
    server_core, client_core = (int(c) for c in args.cores.split(","))
    for mode, pause in (("back to back", 0.0), (f"{args.pause_ms:g} ms apart", args.pause_ms / 1000)):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        child = os.fork()
        if child == 0:
            os.sched_setaffinity(0, {server_core})
            peer, _ = listener.accept()
            peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := peer.recv(64):
                peer.sendall(data)
            os._exit(0)
        os.sched_setaffinity(0, {client_core})
        client = socket.create_connection(("127.0.0.1", port))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for _ in range(args.count):
            t0 = time.perf_counter()
            client.sendall(b"x")
            client.recv(64)
            samples.append((time.perf_counter() - t0) * 1000)
            if pause:
                time.sleep(pause)
        client.close()
        os.waitpid(child, 0)
        listener.close()
        samples.sort()
        n = len(samples)
        print(f"round trip, {mode}: p50 {samples[n // 2]:.3f} / p99 {samples[int(n * 0.99)]:.3f} / "
              f"max {samples[-1]:.3f} ms")


if __name__ == "__main__":
    main()
