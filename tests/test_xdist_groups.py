"""The slow suite's grouping: with ``-n 2 --dist loadgroup`` (as CI runs it) a file's tests share one worker."""

import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = '''
import os, time

def _record(name):
    time.sleep(0.5)  # long enough that an idle second worker would take the next test
    with open(name, "w") as fh:
        fh.write(os.environ.get("PYTEST_XDIST_WORKER", "none"))

def test_a():
    _record("a")

def test_b():
    _record("b")

def test_c():
    _record("c")
'''


def test_a_files_tests_run_on_one_worker(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-n", "2", "--dist",
                           "loadgroup", "-p", "no:cacheprovider", "test_probe.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    workers = {(tmp_path / name).read_text() for name in "abc"}
    assert len(workers) == 1 and workers != {"none"}, workers
