"""A test that hangs fails after pytest-timeout's limit, saying what its event loop was waiting on.

pytest-timeout's own report shows the main thread's stack, which for an async test is only the
event loop's select(): the coroutine that never finished is in a task's stack, so this plugin's
timer puts every pending task's stack in the failure message (under pytest-xdist a worker's
terminal output is not shown, the report is).
"""

import asyncio
import faulthandler
import io
import os
import signal
import sys
import threading

import pytest


def _pending_tasks() -> str:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "(no event loop was running)"
    out = io.StringIO()
    for task in asyncio.all_tasks(loop):
        task.print_stack(limit=12, file=out)
    return out.getvalue() or "(no pending task)"


LAST_CHANCE = 60.0


def _give_up(signum, frame) -> None:
    print(f"watchdog: teardown after a timeout still running after {LAST_CHANCE} s", file=sys.stderr)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(70)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    """Arm SIGALRM like pytest-timeout's signal method, with the loop's tasks in the message."""
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's own timer

    def fire(signum, frame):
        __tracebackhide__ = True
        # If what the failure unwinds into hangs as well (a fixture's teardown), the worker ends.
        signal.signal(signal.SIGALRM, _give_up)
        signal.setitimer(signal.ITIMER_REAL, LAST_CHANCE)
        pytest.fail(f"Timeout: still running after {settings.timeout} s; pending tasks:\n{_pending_tasks()}")

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel
    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True
