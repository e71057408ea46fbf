"""Model checking of the claim / lease / fencing / ack protocol (model/intentq.pml) with Spin.

Each check generates a verifier with ``spin -a``, compiles it with gcc and runs it in a
temporary directory. The protocol must pass every property; each deliberately broken
variant must produce a counterexample that ``spin -t`` replays. docs/reliability/model.md
explains the properties and the numbers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "model" / "intentq.pml"
INSTALL = "apt-get install spin (it brings gcc)"
# The protocol as it is meant to be: a worker told LeaseLost gives its message back.
SAFETY = ("-DSAFETY", "-DNOCLAIM")  # assertions and invalid end states; no LTL claim
LIVENESS = ("-DNFAIR=4",)  # weak fairness over the model's 8 to 9 processes
PAN_SEARCH = ("-m100000", "-w24")  # depth limit far above the deepest path; 2^24 hash slots


@dataclass(frozen=True)
class Check:
    name: str
    spin_flags: tuple[str, ...]
    cc_flags: tuple[str, ...]
    pan_flags: tuple[str, ...] = ()


HOLDS = [
    # (a), (b) and the crash-loop bound of (d): 2 workers, 2 intents, one delivered twice.
    Check("safety-2-workers-duplicate", (), SAFETY),
    # The same with ApproximateReceiveCount past max_receives possible at any receive.
    Check("safety-2-workers-receive-limit", ("-DRECEIVE_LIMIT", "-DNDUP=0"), SAFETY),
    # Three workers: a fenced owner fenced again by a third (crashes: only the poison's).
    Check("safety-3-workers", ("-DNW=3", "-DNDUP=0", "-DMAX_CRASHES=0"), SAFETY),
    # (c) every intent ends completed or dead-lettered, under weak fairness.
    Check(
        "liveness-settled",
        ("-DMAX_STALLS=1", "-DNDUP=0"),
        LIVENESS,
        ("-a", "-f", "-N", "settled"),
    ),
    # (d) the intent that kills its worker every time ends in the DLQ.
    Check(
        "liveness-poison",
        ("-DMAX_STALLS=1", "-DNDUP=0"),
        LIVENESS,
        ("-a", "-f", "-N", "poison"),
    ),
]


@dataclass(frozen=True)
class Broken:
    check: Check
    violated: str  # the assertion Spin must report, as pan prints it


BROKEN = [
    # Ack before record: the message is deleted while the key is still in progress.
    Broken(
        Check("broken-ack-first", ("-DBROKEN_ACK_FIRST",), SAFETY),
        "assertion violated ((out!=",
    ),
    # Complete without the token check: a fenced owner overwrites the record.
    Broken(
        Check("broken-no-fence", ("-DBROKEN_NO_FENCE",), SAFETY),
        "assertion violated ((st[k]==",
    ),
]

# Acking a message whose claim was lost (as intentq 0.1 did): when the key's new owner took
# it over through an older delivery of the same message, that ack deletes the only message
# while the intent is unsettled. The executor gives such a message back instead (fenced).
ACK_ON_LEASE_LOST = Broken(
    Check("broken-ack-on-lease-lost", ("-DBROKEN_ACK_ON_LEASE_LOST", "-DNDUP=0"), SAFETY),
    "assertion violated (((st[k]==",
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; the model checks need it: {INSTALL}")
    return path


def _run(args: list[str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout + done.stderr


def verify(check: Check, workdir: Path) -> tuple[str, Path]:
    """spin -a, gcc, pan: returns pan's report and the working directory."""
    spin, gcc = _tool("spin"), _tool("gcc")
    workdir.mkdir()
    model = workdir / MODEL.name
    shutil.copyfile(MODEL, model)
    out = _run([spin, "-a", *check.spin_flags, model.name], workdir, 60)
    assert (workdir / "pan.c").exists(), f"spin -a failed:\n{out}"
    out = _run([gcc, "-O2", "-w", *check.cc_flags, "-o", "pan", "pan.c"], workdir, 120)
    assert (workdir / "pan").exists(), f"gcc failed:\n{out}"
    report = _run(["./pan", *PAN_SEARCH, *check.pan_flags], workdir, 600)
    return report, workdir


def errors(report: str) -> int:
    found = re.search(r"errors: (\d+)", report)
    assert found, f"pan printed no result:\n{report}"
    return int(found.group(1))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("check", HOLDS, ids=lambda c: c.name)
def test_the_protocol_passes_every_property(check: Check, tmp_path: Path) -> None:
    report, _ = verify(check, tmp_path / check.name)
    assert errors(report) == 0, report
    # An exhaustive search: never cut short by the depth limit or by memory.
    assert "max search depth too small" not in report, report
    assert "Search not completed" not in report, report
    if "-a" in check.pan_flags:
        assert "acceptance   cycles \t+ (fairness enabled)" in report, report
    else:
        assert "invalid end states\t+" in report, report


def _assert_counterexample(broken: Broken, tmp_path: Path) -> None:
    check = broken.check
    report, workdir = verify(check, tmp_path / check.name)
    assert errors(report) > 0, report
    assert broken.violated in report, report
    trail = workdir / f"{MODEL.name}.trail"
    assert trail.exists(), f"no trail written:\n{report}"
    replay = _run([_tool("spin"), "-t", *check.spin_flags, MODEL.name], workdir, 120)
    assert "spin: trail ends after" in replay, replay
    assert "assertion violated" in replay, replay


@pytest.mark.timeout(600)
@pytest.mark.parametrize("broken", BROKEN, ids=lambda b: b.check.name)
def test_a_broken_twin_yields_a_replayable_counterexample(broken: Broken, tmp_path: Path) -> None:
    _assert_counterexample(broken, tmp_path)


@pytest.mark.timeout(600)
def test_acking_on_lease_lost_can_leave_an_intent_without_a_message(tmp_path: Path) -> None:
    # The twin of the executor's fix; see "Lease lost" in docs/reliability/model.md.
    _assert_counterexample(ACK_ON_LEASE_LOST, tmp_path)
