"""Counts test cases of a `bazel test` run from its build events and JUnit XML.

Every test target of the patterns must have a test result in the run's
build-event file (cached results count, with their XML); a target without
one did not build and counts as one failure. A target whose XML lists no
case counts by its own status. Prints the failing cases, then the line
"N passed, N failed".
"""
import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bep", required=True)
    ap.add_argument("targets", nargs="+")
    args = ap.parse_args()
    query = " + ".join(f"tests({t})" for t in args.targets)
    out = subprocess.run(["bazel", "query", query, "--output=label"], capture_output=True, text=True)
    labels = [l for l in out.stdout.split() if l.startswith("//")]

    results = {}  # label -> (status, xml path or None)
    with open(args.bep) as f:
        for line in f:
            ev = json.loads(line)
            tr = ev.get("id", {}).get("testResult")
            if not tr:
                continue
            body = ev.get("testResult", {})
            xml = None
            for o in body.get("testActionOutput", []):
                if o.get("name") == "test.xml" and o.get("uri", "").startswith("file://"):
                    xml = o["uri"][len("file://"):]
            results[tr["label"]] = (body.get("status", "FAILED"), xml)

    passed = failed = 0
    failures = []
    for label in labels:
        if label not in results:
            failed += 1
            failures.append(f"{label} (did not build or run)")
            continue
        status, xml = results[label]
        n_cases = n_bad = 0
        if xml and os.path.exists(xml):
            try:
                for case in ET.parse(xml).getroot().iter("testcase"):
                    n_cases += 1
                    bad = (case.find("failure") is not None or case.find("error") is not None
                           or case.find("skipped") is not None or case.get("status") == "notrun")
                    if bad:
                        n_bad += 1
                        failures.append(f"{label}: {case.get('classname', '')}.{case.get('name')}")
            except ET.ParseError:
                n_cases = 0
        if n_cases == 0 or (status != "PASSED" and n_bad == 0):
            # No usable per-case report, or the target failed outside its cases
            # (crash, timeout): count the target itself.
            if status == "PASSED" and n_cases == 0:
                passed += 1
            else:
                failed += 1
                failures.append(f"{label} ({status})")
            passed += n_cases - n_bad if status == "PASSED" else 0
            continue
        passed += n_cases - n_bad
        failed += n_bad
    for f in failures:
        print("FAILED:", f)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
