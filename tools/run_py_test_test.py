"""Tests tools/run_py_test.py, the runner of every Python test in the suite:
it runs the runner on two fixture files in a subprocess and checks the JUnit
XML it writes (one case per outcome) and its exit status. The fixtures live
in tools/testdata/ and are no test targets, so their deliberate failures
never count in the suite's totals."""
import os
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

import oracle_lib

RUNNER = oracle_lib.runfile("tools/run_py_test.py")
FAILING = oracle_lib.runfile("tools/testdata/runner_fixture_failing.py")
PASSING = oracle_lib.runfile("tools/testdata/runner_fixture_passing.py")
SUBTESTS_ONLY = oracle_lib.runfile("tools/testdata/runner_fixture_subtests_only.py")


def run_runner(fixture, name):
    xml_path = os.path.join(oracle_lib.tmpdir(), name + ".xml")
    if os.path.exists(xml_path):
        os.remove(xml_path)
    env = dict(os.environ, XML_OUTPUT_FILE=xml_path)
    proc = subprocess.run([sys.executable, RUNNER, fixture], capture_output=True, text=True,
                          env=env, timeout=120)
    root = ET.parse(xml_path).getroot()
    suite = root.find("testsuite")
    cases = {}
    for case in suite.iter("testcase"):
        # "tests...Fixture.test_x" or "...test_x (which='b')": keep the method part.
        short = case.get("name").split("Fixture.", 1)[1]
        failure = case.find("failure")
        note = case.find("system-out")
        cases[short] = (failure.text if failure is not None else None,
                        note.text if note is not None else None)
    return proc, suite, cases


class RunPyTestTest(unittest.TestCase):

    def test_every_failing_outcome_is_a_failed_case(self):
        proc, suite, cases = run_runner(FAILING, "failing")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(sorted(cases), sorted([
            "test_passes", "test_failing_subtest (which='b')", "test_raises_error",
            "test_unexpected_success", "test_skipped"]), proc.stderr)
        self.assertEqual(suite.get("tests"), "5")
        self.assertEqual(suite.get("failures"), "4")
        self.assertIsNone(cases["test_passes"][0])
        self.assertIn("AssertionError: 'b' != 'a'", cases["test_failing_subtest (which='b')"][0])
        self.assertIn("RuntimeError: an error, not a failed assertion", cases["test_raises_error"][0])
        self.assertIn("unexpected success", cases["test_unexpected_success"][0])
        self.assertIn("skipped (counts as a failure): the oracle is missing", cases["test_skipped"][0])
        # The method whose subtest failed is never a passed case of its own.
        self.assertNotIn("test_failing_subtest", cases)

    def test_failing_subtests_alone_fail_the_run(self):
        # What the old runner missed: exit 0 and failures="0" for a file whose
        # only failures are subtests.
        proc, suite, cases = run_runner(SUBTESTS_ONLY, "subtests_only")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(sorted(cases), ["test_passes", "test_two_failing_subtests (i=1)",
                                         "test_two_failing_subtests (i=2)"])
        self.assertEqual(suite.get("tests"), "3")
        self.assertEqual(suite.get("failures"), "2")

    def test_passing_outcomes_pass(self):
        proc, suite, cases = run_runner(PASSING, "passing")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(sorted(cases), ["test_expected_failure", "test_subtests_pass"])
        self.assertEqual(suite.get("tests"), "2")
        self.assertEqual(suite.get("failures"), "0")
        failure, note = cases["test_expected_failure"]
        self.assertIsNone(failure)
        self.assertIn("expected failure", note)
        self.assertIn("AssertionError: 1 != 2", note)


if __name__ == "__main__":
    unittest.main()
