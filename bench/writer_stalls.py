"""Sums the SQLite writer thread's waits in uninterruptible sleep (disk I/O) by cause.

Reads `perf script -F tid,time,trace,ip,sym` of sched:sched_switch events recorded with
stacks: a wait runs from the writer's switch out in state D to its next switch in. The
cause is the SQLite and kernel frames nearest the switch, which tell a commit's frame
writes from a WAL header sync or a checkpoint.
"""

import collections
import re
import sys

WRITER = "herald-sqlite-w"  # the thread name, as the kernel truncates it
SWITCH = re.compile(
    r"\s*\d+\s+([\d.]+):\s+prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ "
    r"prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)"
)
# Frames that say what the writer was doing, nearest the switch first.
TELLING = ("fsync", "fdatasync", "pwrite", "pread", "wal", "Wal", "pager", "Checkpoint")


def switches(lines):
    """Yields (time, prev_comm, prev_pid, prev_state, next_pid, frames) for each switch."""
    current = None
    for line in lines:
        match = SWITCH.match(line)
        if match:
            if current:
                yield current
            time, prev_comm, prev_pid, state, _, next_pid = match.groups()
            current = (float(time), prev_comm, int(prev_pid), state, int(next_pid), [])
        elif current and line.strip():
            current[5].append(line.split()[-1])
    if current:
        yield current


def main():
    blocked = {}  # writer pid -> (time it went to sleep, cause)
    waits = collections.defaultdict(list)
    for time, prev_comm, prev_pid, state, next_pid, frames in switches(sys.stdin):
        if state.startswith("D") and prev_comm.startswith(WRITER):
            telling = [f for f in frames if any(word in f for word in TELLING)]
            blocked[prev_pid] = (time, " < ".join(telling[:5]) or "?")
        if next_pid in blocked:
            since, cause = blocked.pop(next_pid)
            waits[cause].append((time - since) * 1000)
    total = sum(sum(w) for w in waits.values())
    count = sum(len(w) for w in waits.values())
    print(f"writer blocked on the disk: {count} waits, {total:.0f} ms in all")
    for cause, ms in sorted(waits.items(), key=lambda item: -sum(item[1])):
        print(f"  {len(ms)} waits, {sum(ms):.0f} ms, longest {max(ms):.1f} ms: {cause[:200]}")


if __name__ == "__main__":
    main()
