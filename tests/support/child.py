"""A child process with test modes, run as ``python child.py MODE [ARGS]``.

Modes:
    print-lines N              "out i" on stdout and "err i" on stderr, i = 1..N
    stderr-fail                three lines on stderr, then exit 3
    stderr-flood N             N lines of 300 characters on stderr, then exit 1
    ignore-sigterm             ignore SIGTERM, print "ready", sleep
    graceful-sigterm           on SIGTERM print "stopping" and exit 143; print "ready", sleep
    spawn-grandchild FILE WHAT start a grandchild in its own session, write "leader grandchild"
                               pids to FILE, then WHAT: "wait" (sleep), "exit" (exit 0) or
                               "exit-holding" (exit 0, the grandchild keeps stdout and stderr)
    emit-metrics N             report progress, N metrics and an output via training_agent.report
    write-outputs N [S]        write model.bin (N random bytes), final_adapter/ and a checkpoint,
                               declare them and one path outside the work dir; then sleep S s
    progress-redraw            "\\r" redraws on stdout, a 40,000-character line on stderr
    malformed-events           write valid, invalid and unknown lines to the events file
    exit N                     exit with N; a negative N kills itself with signal -N
    print-env                  print NAME=value for every variable, sorted
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

SLEEP_S = 60.0


def print_lines(count: int) -> None:
    for i in range(1, count + 1):
        print(f"out {i}", flush=True)
        print(f"err {i}", file=sys.stderr, flush=True)


def stderr_fail() -> None:
    for line in ("Traceback (most recent call last):", "  oops", "ValueError: boom"):
        print(line, file=sys.stderr, flush=True)
    sys.exit(3)


def stderr_flood(count: int) -> None:
    for i in range(count):
        print(f"line {i} " + "x" * 300, file=sys.stderr)
    sys.exit(1)


def ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(SLEEP_S)


def graceful_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        print("stopping", flush=True)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    time.sleep(SLEEP_S)


def spawn_grandchild(pid_file: str, then: str) -> None:
    output = None if then == "exit-holding" else subprocess.DEVNULL
    grandchild = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep({SLEEP_S})"],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        start_new_session=True,  # leaves our process group: only the tracking id finds it
    )
    Path(pid_file + ".tmp").write_text(f"{os.getpid()} {grandchild.pid}")
    os.replace(pid_file + ".tmp", pid_file)
    print("ready", flush=True)
    if then == "wait":
        time.sleep(SLEEP_S)


def emit_metrics(count: int) -> None:
    from training_agent import report

    report.progress(total_steps=count, total_epochs=1)
    for step in range(1, count + 1):
        report.metric(step, step / count, train_loss=1.0 / step, eval_perplexity=2.0)
    report.output("model.bin")
    print("emitted", flush=True)


def write_outputs(size: int, then_sleep_s: float) -> None:
    from training_agent import report

    os.makedirs("final_adapter", exist_ok=True)
    os.makedirs("checkpoint-1", exist_ok=True)
    with open("final_adapter/adapter_config.json", "w", encoding="utf-8") as config:
        config.write('{"r": 8}')
    with open("final_adapter/adapter_model.bin", "wb") as weights:
        weights.write(os.urandom(4096))
    with open("model.bin", "wb") as model:
        for start in range(0, size, 1 << 20):
            model.write(os.urandom(min(1 << 20, size - start)))
    report.checkpoint(1, "checkpoint-1")
    report.output("final_adapter", kind="adapter")
    report.output("model.bin", kind="model", name="weights")
    report.output("/etc/hostname")
    print("outputs written", flush=True)
    time.sleep(then_sleep_s)


def progress_redraw() -> None:
    sys.stdout.write("start\n10%\r50%\r100%\ndone\n")
    sys.stdout.flush()
    sys.stderr.write("x" * 40_000 + "\n")
    sys.stderr.flush()


def malformed_events() -> None:
    lines = [
        json.dumps({"type": "metric", "step": 1, "epoch": 0.1, "train_loss": 0.5}),
        "{not json",
        json.dumps({"type": "metric", "step": 0, "epoch": 0.0, "train_loss": 0.9}),
        json.dumps({"type": "surprise", "step": 3}),
        json.dumps({"type": "metric", "step": 2, "epoch": 0.2, "train_loss": 0.4}),
    ]
    with open(os.environ["TRAINING_AGENT_EVENTS_FILE"], "a", encoding="utf-8") as events:
        events.write("\n".join(lines) + "\n")


def exit_with(code: int) -> None:
    if code < 0:
        os.kill(os.getpid(), -code)
        time.sleep(SLEEP_S)
    sys.exit(code)


def print_env() -> None:
    for name in sorted(os.environ):
        print(f"{name}={os.environ[name]}", flush=True)


# Each mode, called with the rest of argv (strings; a mode converts what it needs).
MODES: dict[str, Callable[..., None]] = {
    "print-lines": lambda count: print_lines(int(count)),
    "stderr-fail": stderr_fail,
    "stderr-flood": lambda count: stderr_flood(int(count)),
    "ignore-sigterm": ignore_sigterm,
    "graceful-sigterm": graceful_sigterm,
    "spawn-grandchild": spawn_grandchild,
    "emit-metrics": lambda count: emit_metrics(int(count)),
    "write-outputs": lambda size, sleep_s="0": write_outputs(int(size), float(sleep_s)),
    "progress-redraw": progress_redraw,
    "malformed-events": malformed_events,
    "exit": lambda code: exit_with(int(code)),
    "print-env": print_env,
}


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    run = MODES.get(mode)
    if run is None:
        sys.exit(f"unknown mode {mode!r}")
    run(*args)


if __name__ == "__main__":
    main(sys.argv[1:])
