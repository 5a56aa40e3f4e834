"""Tests tools/count_tests.py, which turns a `bazel test` run into the suite's
"N passed, N failed" line, on synthetic build-event files and JUnit XMLs.
The query goes through a stand-in bazel (--bazel), a script that prints the
labels it is given or fails as a BUILD loading error makes bazel fail."""
import json
import os
import stat
import subprocess
import sys
import textwrap
import unittest

import oracle_lib

COUNT_TESTS = oracle_lib.runfile("tools/count_tests.py")


class CountTestsTest(unittest.TestCase):

    def setUp(self):
        self.dir = os.path.join(oracle_lib.tmpdir(), "count_tests", self.id().rsplit(".", 1)[1])
        os.makedirs(self.dir, exist_ok=True)
        self.events = []

    def fake_bazel(self, stdout="", stderr="", rc=0):
        """A stand-in `bazel` that answers any query with stdout, stderr, rc."""
        path = os.path.join(self.dir, "fake_bazel")
        with open(path, "w") as f:
            f.write(textwrap.dedent(f"""\
                #!{sys.executable}
                import sys
                assert sys.argv[1] == "query", sys.argv
                sys.stdout.write({stdout!r})
                sys.stderr.write({stderr!r})
                sys.exit({rc})
                """))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def xml(self, name, cases):
        """A JUnit XML; cases: list of 'pass', 'fail', 'error' or 'skip'."""
        path = os.path.join(self.dir, name + ".xml")
        with open(path, "w") as f:
            f.write('<?xml version="1.0"?>\n<testsuites><testsuite name="s">\n')
            for i, c in enumerate(cases):
                inner = {"pass": "", "fail": "<failure message='x'>x</failure>",
                         "error": "<error message='x'/>", "skip": "<skipped/>"}[c]
                f.write(f'<testcase classname="C" name="case{i}">{inner}</testcase>\n')
            f.write("</testsuite></testsuites>\n")
        return path

    def result(self, label, status, xml=None, run=1, shard=1, attempt=1):
        body = {"status": status}
        if xml:
            body["testActionOutput"] = [{"name": "test.log", "uri": "file:///nonexistent/test.log"},
                                        {"name": "test.xml", "uri": "file://" + xml}]
        self.events.append({"id": {"testResult": {"label": label, "run": run, "shard": shard,
                                                  "attempt": attempt,
                                                  "configuration": {"id": "abc"}}},
                            "testResult": body})

    def count(self, bazel, targets=("//...",)):
        bep = os.path.join(self.dir, "bep.json")
        with open(bep, "w") as f:
            f.write(json.dumps({"id": {"started": {}}, "started": {"uuid": "u"}}) + "\n")
            for ev in self.events:
                f.write(json.dumps(ev) + "\n")
        proc = subprocess.run([sys.executable, COUNT_TESTS, "--bep", bep, "--bazel", bazel,
                               *targets], capture_output=True, text=True, timeout=60)
        lines = proc.stdout.strip().splitlines()
        self.assertTrue(lines, proc.stderr)
        print(proc.stdout + proc.stderr)
        return proc, lines[-1]

    def test_failed_query_fails_loudly(self):
        # A BUILD file that does not load: bazel query exits 7 (or 1) and
        # prints nothing on stdout; the old counter printed "0 passed, 0 failed".
        bazel = self.fake_bazel(stderr="ERROR: /w/tests/BUILD.bazel:3:1: name 'spatialid_py_tes' "
                                       "is not defined\n", rc=7)
        proc, last = self.count(bazel)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "0 passed, 1 failed")
        self.assertIn("failed with exit 7", proc.stdout)
        self.assertIn("is not defined", proc.stdout)
        self.assertIn("count_tests: error:", proc.stderr)

    def test_failed_query_still_counts_what_ran(self):
        # --keep_going queries give partial results and a non-zero exit.
        self.result("//a:t", "PASSED", self.xml("a", ["pass", "pass"]))
        bazel = self.fake_bazel(stdout="//a:t\n", stderr="ERROR: //b: no such package\n", rc=3)
        proc, last = self.count(bazel)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "2 passed, 1 failed")

    def test_no_test_target_fails_loudly(self):
        proc, last = self.count(self.fake_bazel(stdout=""), targets=("//docs/...",))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "0 passed, 1 failed")
        self.assertIn("found no test target", proc.stdout)

    def test_missing_bazel_fails_loudly(self):
        proc, last = self.count(os.path.join(self.dir, "no_such_bazel"))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "0 passed, 1 failed")
        self.assertIn("could not run", proc.stdout)

    def test_a_failed_attempt_counts_although_a_retry_passed(self):
        # --flaky_test_attempts=2: attempt 1 failed one case, attempt 2
        # passed. The old counter kept only the last event: 3 passed, 0 failed.
        self.result("//a:flaky", "FAILED", self.xml("attempt1", ["pass", "fail", "pass"]), attempt=1)
        self.result("//a:flaky", "PASSED", self.xml("attempt2", ["pass", "pass", "pass"]), attempt=2)
        proc, last = self.count(self.fake_bazel(stdout="//a:flaky\n"))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "5 passed, 1 failed")
        self.assertIn("FAILED: //a:flaky: C.case1 (run 1, shard 1, attempt 1)", proc.stdout)

    def test_shards_and_runs_are_summed(self):
        for shard in (1, 2, 3):
            self.result("//a:sharded", "PASSED", self.xml(f"shard{shard}", ["pass"] * shard),
                        shard=shard)
        for run in (1, 2):
            self.result("//a:runs", "PASSED", self.xml(f"run{run}", ["pass", "pass"]), run=run)
        proc, last = self.count(self.fake_bazel(stdout="//a:sharded\n//a:runs\n"))
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertEqual(last, "10 passed, 0 failed")

    def test_one_failing_shard_fails_the_target(self):
        self.result("//a:sharded", "PASSED", self.xml("s1", ["pass", "pass"]), shard=1)
        self.result("//a:sharded", "FAILED", None, shard=2)  # a crash: no XML
        proc, last = self.count(self.fake_bazel(stdout="//a:sharded\n"))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "2 passed, 1 failed")
        self.assertIn("//a:sharded (FAILED, run 1, shard 2, attempt 1)", proc.stdout)

    def test_cases_targets_without_results_and_bad_cases(self):
        self.result("//a:cases", "FAILED", self.xml("cases", ["pass", "fail", "error", "skip", "pass"]))
        self.result("//a:no_xml", "PASSED")  # a target without per-case report
        self.result("//a:timeout", "TIMEOUT", self.xml("timeout", ["pass"]))  # failed outside its cases
        self.result("//other:not_queried", "FAILED")  # outside the patterns: not counted
        proc, last = self.count(self.fake_bazel(
            stdout="//a:cases\n//a:no_xml\n//a:timeout\n//a:did_not_build\n"))
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(last, "3 passed, 5 failed")
        self.assertIn("//a:did_not_build (did not build or run)", proc.stdout)
        self.assertIn("//a:timeout (TIMEOUT", proc.stdout)
        self.assertNotIn("not_queried", proc.stdout)

    def test_clean_run_passes(self):
        self.result("//a:t", "PASSED", self.xml("t", ["pass"] * 4))
        proc, last = self.count(self.fake_bazel(stdout="//a:t\n"))
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(last, "4 passed, 0 failed")


if __name__ == "__main__":
    unittest.main()
