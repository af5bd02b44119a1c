#!/usr/bin/env python3
"""The Apprise side of bench/mixed.sh: send notifications with Apprise's JSON webhook
notifier (json://host:port/path) for a fixed time, as a team sending at volume would.

usage: apprise_send.py URL SECONDS [--procs N] [--threads T] [--mode threads|async]

One process per core (the GIL holds one process to about one core), each with T
threads calling Apprise.notify() in a loop, one Apprise object per thread. --mode
async runs T tasks per process awaiting Apprise.async_notify() instead; in Apprise 2.2
that runs the same blocking send (requests, a new connection per message) in
Apprise's thread pool, with an event loop on top. On 2 cores against a loopback nginx
(2026-12-03, 4-5 s runs, noisy: a build shared the cores) 1 thread per process was
the fastest, more threads only added GIL contention, and async with 8-32 tasks was no
faster: so threads, 1 per process. Against a remote endpoint more threads would pay.
Prints: RESULT sent=N failed=N start=EPOCH seconds=S (until the last send returned).
"""
import argparse
import asyncio
import multiprocessing as mp
import os
import threading
import time

import apprise

TITLE, BODY = "Your code", "Your code is 123456"


def new_apprise(url):
    ap = apprise.Apprise()
    if not ap.add(url):
        raise SystemExit(f"apprise refused the URL {url}")
    return ap


def run_threads(url, threads, start, stop):
    counts = []  # (sent, failed) per thread; list.append is atomic

    def loop(ap):
        sent = failed = 0
        while time.time() < stop:
            if ap.notify(body=BODY, title=TITLE):
                sent += 1
            else:
                failed += 1
        counts.append((sent, failed))

    workers = [threading.Thread(target=loop, args=(new_apprise(url),)) for _ in range(threads)]
    time.sleep(max(0.0, start - time.time()))
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(c[0] for c in counts), sum(c[1] for c in counts), time.time()


async def run_async(url, tasks, start, stop):
    ap = new_apprise(url)  # one object: async_notify calls may overlap on it

    async def loop():
        sent = failed = 0
        while time.time() < stop:
            if await ap.async_notify(body=BODY, title=TITLE):
                sent += 1
            else:
                failed += 1
        return sent, failed

    await asyncio.sleep(max(0.0, start - time.time()))
    counts = await asyncio.gather(*(loop() for _ in range(tasks)))
    return sum(c[0] for c in counts), sum(c[1] for c in counts), time.time()


def worker(args):
    url, mode, threads, start, stop = args
    if mode == "async":
        return asyncio.run(run_async(url, threads, start, stop))
    return run_threads(url, threads, start, stop)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    p.add_argument("--procs", type=int, default=os.cpu_count())
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mode", choices=["threads", "async"], default="threads")
    a = p.parse_args()
    # Every process starts at the same moment, after its start-up (imports, fork).
    start = time.time() + 1.0
    stop = start + a.seconds
    with mp.get_context("fork").Pool(a.procs) as pool:
        results = pool.map(worker, [(a.url, a.mode, a.threads, start, stop)] * a.procs)
    sent, failed = sum(r[0] for r in results), sum(r[1] for r in results)
    end = max(r[2] for r in results)
    print(f"RESULT sent={sent} failed={failed} start={start:.3f} seconds={end - start:.2f}"
          f" procs={a.procs} threads={a.threads} mode={a.mode}")


if __name__ == "__main__":
    main()
