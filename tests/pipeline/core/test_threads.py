"""Torch threads per job: jobs x threads = cores for parallel sweeps, a named count everywhere."""

import pytest
import torch

from ggevo.pipeline.core.errors import ConfigError
from ggevo.pipeline.core.threads import job_threads, parallel_jobs, set_job_threads


def test_auto_divides_the_cores_among_the_jobs_running_at_once():
    assert job_threads("auto", jobs=2, available=2) == 1
    assert job_threads("auto", jobs=4, available=16) == 4
    assert job_threads("auto", jobs=3, available=16) == 5
    assert job_threads("auto", jobs=8, available=2) == 1  # never zero
    assert job_threads("auto", jobs=1, available=16) is None  # one job: torch's default


def test_a_named_count_wins_and_a_bad_one_names_the_key():
    assert job_threads(3, jobs=2, available=2) == 3
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ConfigError, match="threads"):
            job_threads(bad, jobs=1, available=2)


def test_outside_a_multirun_one_job_runs_and_a_count_is_applied():
    assert parallel_jobs() == 1
    before = torch.get_num_threads()
    try:
        assert set_job_threads({"threads": 1}) == 1
    finally:
        torch.set_num_threads(before)
