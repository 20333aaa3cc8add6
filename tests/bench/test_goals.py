"""The CPU goal of issue 21 is judged for each workload it names, the lone 3-chain included."""

from __future__ import annotations

from bench.goals import judge

THREE = "goal.CPU per task >= 5x below the starting 46.0 ms (chain3, embedded)"


def test_the_lone_3_chains_cpu_is_judged_against_a_fifth_of_its_starting_figure() -> None:
    assert judge({"cpu.embedded.chain3.ms_per_task": 9.2})[THREE] == "met"
    assert judge({"cpu.embedded.chain3.ms_per_task": 9.21})[THREE] == "MISSED"
