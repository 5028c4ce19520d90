"""The fault-injection suite (integration/faults.py) at a size CI affords:
30,000 events, 3 kills at random instants, a crash at every failpoint, a full
disk, a 12 s broker outage, retention, and 2.6% malformed messages. `make faults`
runs the full size."""

import faults


def test_fault_suite_reduced(tmp_path):
    rows = faults.main(["--events", "30000", "--kills", "3", "--chunk", "500", "--outage", "12",
                        "--work", str(tmp_path)])
    failed = [r for r in rows if r[5] != "ok"]
    assert not failed, failed
    assert len(rows) == 6
