#!/usr/bin/env python3
"""Time from process start to the first byte on stdout, and to exit.

Usage: first_output.py RUNS COMMAND [ARGS...]
Prints one line: RESULT first_ms_min=.. first_ms_median=.. total_ms_median=..
and exits non-zero if any run failed.
"""
import statistics
import subprocess
import sys
import time


def main():
    runs = int(sys.argv[1])
    argv = sys.argv[2:]
    first, total = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if not p.stdout.read(1):
            sys.exit("first_output: no output")
        t1 = time.perf_counter()
        p.stdout.read()
        if p.wait() != 0:
            sys.exit("first_output: exit code %d" % p.returncode)
        t2 = time.perf_counter()
        first.append((t1 - t0) * 1000)
        total.append((t2 - t0) * 1000)
    print("RESULT first_ms_min=%.1f first_ms_median=%.1f total_ms_median=%.1f runs=%d" %
          (min(first), statistics.median(first), statistics.median(total), runs))


if __name__ == "__main__":
    main()
