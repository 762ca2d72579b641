#!/usr/bin/env python3
"""compare_results.py MNT MODEL SIM_TASKS_JSON IDFILE...: for each task id (one per IDFILE),
MNT/MODEL/ID/state must be "success" and MNT/MODEL/ID/result the sim's result_urls, one a line.
Prints one line per mismatch and "checked N"; exit 1 on any mismatch."""
import json
import os
import sys

mnt, model, simfile = sys.argv[1:4]
with open(simfile) as f:
    sim = {t["taskId"]: t for t in json.load(f)}
bad = 0
n = 0
for idfile in sys.argv[4:]:
    with open(idfile) as f:
        tid = f.read().strip()
    n += 1
    if not tid:
        print("%s: no task id" % idfile)
        bad += 1
        continue
    base = os.path.join(mnt, model, tid)
    with open(os.path.join(base, "state")) as f:
        state = f.read().strip()
    if state != "success":
        print("%s: state %s" % (tid, state))
        bad += 1
        continue
    with open(os.path.join(base, "result")) as f:
        result = f.read()
    want = "".join(u + "\n" for u in sim.get(tid, {}).get("result_urls", []))
    if tid not in sim:
        print("%s: unknown to the sim" % tid)
        bad += 1
    elif result != want:
        print("%s: result %r, sim says %r" % (tid, result, want))
        bad += 1
print("checked %d" % n)
sys.exit(1 if bad else 0)
