#!/usr/bin/env python3
"""Turns oha's JSON report (stdin) into bench/send.lua's RESULT line, so bench/mixed.sh
reads both load generators alike. Only 202s were accepted: every other status, and
every request that got no answer, counts in non2xx."""
import json
import sys

report = json.load(sys.stdin)
codes = report["statusCodeDistribution"]
percentiles = report["latencyPercentiles"]
requests = sum(codes.values()) + sum(report["errorDistribution"].values())


def ms(seconds):
    return 1000 * (seconds or 0)


print(
    f"RESULT requests={requests} seconds={report['summary']['total']:.2f}"
    f" p50_ms={ms(percentiles['p50']):.2f} p90_ms={ms(percentiles['p90']):.2f}"
    f" p99_ms={ms(percentiles['p99']):.2f} max_ms={ms(report['summary']['slowest']):.2f}"
    f" non2xx={requests - codes.get('202', 0)}"
)
