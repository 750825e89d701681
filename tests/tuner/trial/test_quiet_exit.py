"""A trial worker stopped by Ray's SIGTERM inside a GC callback prints no traceback; other errors still do."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Ray's worker turns SIGTERM into SystemExit (ray._private.worker.sigterm_handler); here the "signal"
# lands inside a weakref callback, where Python can only report it as unraisable.
SCRIPT = textwrap.dedent("""
    import gc, sys, weakref
    if sys.argv[1] == "install":
        from tuner.trial import quiet_exit
        quiet_exit.install()

    class Thing:
        pass

    def raise_exit(_ref):
        raise SystemExit(1)

    def raise_other(_ref):
        raise ValueError("a real bug")

    kind = raise_other if sys.argv[2] == "other" else raise_exit
    thing = Thing()
    ref = weakref.ref(thing, kind)
    del thing
    gc.collect()
    print("still running")
""")


def _run(install: str, kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, install, kind], capture_output=True, text=True,
                          timeout=60, check=True)


def test_a_sigterm_exit_inside_a_gc_callback_prints_no_traceback() -> None:
    without = _run("none", "exit")
    assert "Traceback" in without.stderr and "SystemExit" in without.stderr  # what Ray streamed before
    quiet = _run("install", "exit")
    assert quiet.stderr == ""
    assert quiet.stdout.strip() == "still running"


def test_any_other_unraisable_error_is_still_printed() -> None:
    loud = _run("install", "other")
    assert "ValueError: a real bug" in loud.stderr and "Traceback" in loud.stderr
