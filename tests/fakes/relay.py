"""Run processes side by side and pass on their output a line at a time, as a real job's output arrives: srun gets
each task's output in lines (slurmstepd), and each TPU worker's comes over its own ssh connection. A process that
writes a line in pieces (Gloo does) cannot split another's line, as it could in a file they share."""

import subprocess
import sys
import threading

_write = threading.Lock()


def _relay(source, sink) -> None:
    for line in iter(source.readline, b""):
        with _write:
            sink.write(line)
            sink.flush()


def run_all(commands: list[dict]) -> list[int]:
    """Starts one process per `subprocess.Popen` keyword dict; once all output is in, returns their exit statuses as
    a shell gives them (128 + N for a process killed by signal N)."""
    processes, relays = [], []
    for command in commands:
        process = subprocess.Popen(**command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for source, sink in ((process.stdout, sys.stdout.buffer), (process.stderr, sys.stderr.buffer)):
            relays.append(threading.Thread(target=_relay, args=(source, sink)))
            relays[-1].start()
        processes.append(process)
    statuses = [p.wait() for p in processes]
    for relay in relays:
        relay.join()
    return [128 - s if s < 0 else s for s in statuses]
