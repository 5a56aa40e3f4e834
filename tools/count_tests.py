"""Counts test cases of a `bazel test` run from its build events and JUnit XML.

The test targets come from `bazel query 'tests(PATTERN) + ...'`. A query
that fails (a BUILD file that does not load, say) or finds no test target
is itself a failure: the run cannot say what it should have counted, and a
"0 passed, 0 failed" would read as a clean run.

Every test target must have at least one test result in the run's
build-event file (cached results count, with their XML); a target without
one did not build and counts as one failure. Every testResult event of a
target counts: its shards, its runs (--runs_per_test) and its attempts
(--flaky_test_attempts), each with its own XML, are summed, so a failed
attempt that a later attempt "fixed" still counts as a failure. An event
whose XML lists no case counts as one case by its own status; a failed event
whose XML names no failing case (a crash, a timeout) counts one failure.

Prints the failing cases, then, last, the line "N passed, N failed"; exits
non-zero when anything failed.

Usage: count_tests.py --bep FILE [--bazel CMD] PATTERN...
(--bazel: the command that answers the query, default `bazel`; tests give a
stand-in.)
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET


def query_test_labels(bazel, patterns):
    """Returns (labels, error text or None)."""
    query = " + ".join(f"tests({t})" for t in patterns)
    cmd = shlex.split(bazel) + ["query", query, "--output=label"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        return [], f"`{' '.join(cmd)}` could not run: {e}"
    labels = [l for l in out.stdout.split() if l.startswith("//") or l.startswith("@")]
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        return labels, f"`{' '.join(cmd)}` failed with exit {out.returncode}: {tail}"
    if not labels:
        return labels, f"`{' '.join(cmd)}` found no test target; nothing was counted"
    return labels, None


def read_test_results(bep_path):
    """label -> [(status, xml path or None, event id)] in the order of the file."""
    results = {}
    with open(bep_path) as f:
        for line in f:
            if not line.strip():
                continue
            ev = json.loads(line)
            tr = ev.get("id", {}).get("testResult")
            if not tr:
                continue
            body = ev.get("testResult", {})
            xml = None
            for o in body.get("testActionOutput", []):
                if o.get("name") == "test.xml" and o.get("uri", "").startswith("file://"):
                    xml = o["uri"][len("file://"):]
            where = f"run {tr.get('run', 1)}, shard {tr.get('shard', 1)}, attempt {tr.get('attempt', 1)}"
            results.setdefault(tr["label"], []).append((body.get("status", "FAILED"), xml, where))
    return results


def count_event(label, status, xml, where):
    """(passed, failed, failure lines) of one testResult event."""
    n_cases = n_bad = 0
    failures = []
    if xml and os.path.exists(xml):
        try:
            for case in ET.parse(xml).getroot().iter("testcase"):
                n_cases += 1
                bad = (case.find("failure") is not None or case.find("error") is not None
                       or case.find("skipped") is not None or case.get("status") == "notrun")
                if bad:
                    n_bad += 1
                    failures.append(f"{label}: {case.get('classname', '')}.{case.get('name')} ({where})")
        except ET.ParseError:
            n_cases = n_bad = 0
            failures = []
    if n_cases == 0 or (status != "PASSED" and n_bad == 0):
        # No usable per-case report, or the target failed outside its cases
        # (crash, timeout): count the event itself.
        if status == "PASSED":
            return 1, 0, []
        return 0, 1, [f"{label} ({status}, {where})"]
    return n_cases - n_bad, n_bad, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bep", required=True)
    ap.add_argument("--bazel", default="bazel", help="command that runs `query`")
    ap.add_argument("targets", nargs="+")
    args = ap.parse_args()

    labels, query_error = query_test_labels(args.bazel, args.targets)
    results = read_test_results(args.bep)
    passed = failed = 0
    failures = []
    if query_error:
        # Still count what did run, so the log shows it, but the run failed.
        failed += 1
        failures.append(f"the test query: {query_error}")
        labels = sorted(set(labels) | set(results))
    for label in labels:
        if label not in results:
            failed += 1
            failures.append(f"{label} (did not build or run)")
            continue
        for status, xml, where in results[label]:
            p, f, lines = count_event(label, status, xml, where)
            passed += p
            failed += f
            failures += lines
    for f in failures:
        print("FAILED:", f)
    sys.stdout.flush()
    if query_error:
        print(f"count_tests: error: {query_error}", file=sys.stderr, flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
