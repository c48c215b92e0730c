"""Run the test suite once per Keras backend, one process each, and print the totals.

The tests marked `slow` (full-size parity checks, compiled fine-tuning runs) run on
one backend, `SLOW_TESTS_BACKEND`, the fastest on the suite; `--no-slow` leaves them
out everywhere.

Usage: python tests/run_all_backends.py [--no-slow] [pytest arguments...]
Exit status 0 only when every backend's run passed.
"""

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree

BACKENDS = ("tensorflow", "jax", "torch")
SLOW_TESTS_BACKEND = "torch"


def main(argv):
    run_slow = "--no-slow" not in argv
    argv = [arg for arg in argv if arg != "--no-slow"]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    status = 0
    with tempfile.TemporaryDirectory() as folder:
        for backend in BACKENDS:
            report = os.path.join(folder, f"{backend}.xml")
            print(f"=== KERAS_BACKEND={backend} ===", flush=True)
            env = dict(os.environ, KERAS_BACKEND=backend)
            slow = ["--runslow"] if run_slow and backend == SLOW_TESTS_BACKEND else []
            code = subprocess.call(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", *slow, *argv],
                env=env,
            )
            status = status or code
            if not os.path.exists(report):
                totals["failed"] += 1
                continue
            suite = ElementTree.parse(report).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            tests, skipped = int(suite.get("tests")), int(suite.get("skipped"))
            failed = int(suite.get("failures")) + int(suite.get("errors"))
            totals["passed"] += tests - skipped - failed
            totals["failed"] += failed
            totals["skipped"] += skipped
    print(f"all backends: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
