"""A loader in a child process, run to its end or SIGKILLed at a chosen point: what a crash leaves behind."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def run_child(args: list[str], *, timeout: float, kill_when: Callable[[], bool] | None = None) -> None:
    """Run `args` to its end (it must succeed), or SIGKILL it as soon as `kill_when()` holds (polled every
    5 ms, e.g. once the sandbox has seen a number of requests), as a crash or an OOM kill would."""
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if kill_when is None:
            _, err = process.communicate(timeout=timeout)
            assert process.returncode == 0, err.decode()[-2000:]
            return
        while process.poll() is None and not kill_when():
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
