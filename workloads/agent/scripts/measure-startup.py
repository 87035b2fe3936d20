#!/usr/bin/env python3
"""Startup-to-first-byte of `agent probe http` against `curl`, on loopback.

Starts `agent serve api` on 127.0.0.1, then runs each client N times (default 20) against /healthz and
prints medians of:
  - wall: from spawning the process to its exit (process start-up, connect, request, response, exit);
  - first byte: the client's own measure (agent: timings.first_byte_ms, from the start of the probe after
    argument parsing; curl: time_starttransfer).

Usage: measure-startup.py /path/to/release/agent [runs]
"""
import json
import statistics
import subprocess
import sys
import time


def main() -> None:
    agent = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = subprocess.Popen(
        [agent, "serve", "api", "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        listening = json.loads(server.stdout.readline())["listening"]["http"]
        url = f"http://{listening}/healthz"
        agent_wall, agent_fb, curl_wall, curl_fb = [], [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            out = subprocess.run(
                [agent, "probe", "http", "--target", listening, "--path", "/healthz"],
                capture_output=True, text=True, check=True,
            )
            agent_wall.append((time.perf_counter() - t0) * 1000)
            result = json.loads(out.stdout)
            assert result["outcome"] == "completed", result
            agent_fb.append(result["timings"]["first_byte_ms"])

            t0 = time.perf_counter()
            out = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}", url],
                capture_output=True, text=True, check=True,
            )
            curl_wall.append((time.perf_counter() - t0) * 1000)
            curl_fb.append(float(out.stdout) * 1000)
        print(f"runs: {runs}")
        print(f"agent probe http: wall median {statistics.median(agent_wall):.2f} ms, "
              f"first byte median {statistics.median(agent_fb):.3f} ms")
        print(f"curl:             wall median {statistics.median(curl_wall):.2f} ms, "
              f"first byte median {statistics.median(curl_fb):.3f} ms")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
