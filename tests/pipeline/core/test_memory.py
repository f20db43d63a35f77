"""Large tensors reuse freed memory: a generation's N×D allocations stop paying page faults."""

import subprocess
import sys

import pytest

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.memory import apply_memory_setting

# Rounds of what a generation does to memory: 80 MB tensors made from others and freed. With reuse the heap
# grows to its peak in the first rounds, in the first or now and then in a later one (fragmentation); the
# median round pays no page at all (measured: [58,641, 0, 19,531, 19,532, 0, 0, 0, 0, 0, 0]), where every
# round without reuse pays for three fresh tensors (~58,600).
PROBE = """
import resource, statistics, sys
import ggevo.pipeline.run.validate
from ggevo.pipeline.core.memory import reuse_large_allocations
took = reuse_large_allocations() if sys.argv[1] == "on" else False
import torch
a = torch.ones(20_000_000)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def generation():
    b = a * 2 + 1
    c = b.clone()
    del b, c
rounds = []
for _ in range(12):
    start = faults()
    generation()
    rounds.append(faults() - start)
print(took, statistics.median(rounds[2:]))
"""


def _faults(setting: str) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True)
    took, faults = out.stdout.split()
    return took == "True", float(faults)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_reused_memory_takes_a_fraction_of_the_page_faults():
    took, on = _faults("on")
    _, off = _faults("off")
    if not took:
        pytest.skip("this C library has no mallopt")
    pages = 3 * 80e6 / 4096  # three fresh 80 MB tensors a round without reuse
    assert off > 0.5 * pages, off  # the default allocator maps fresh pages every round
    assert on < 0.1 * off, (on, off)


def test_the_setting_is_a_boolean_named_in_the_error():
    with pytest.raises(ConfigError, match="reuse_memory"):
        apply_memory_setting({"reuse_memory": "yes"})
    assert apply_memory_setting({"reuse_memory": False}) is False
