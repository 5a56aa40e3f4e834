"""Runs one unittest file and writes a JUnit XML with one entry per case.

Usage: run_py_test.py TEST_FILE [args...]. Extra args are left in sys.argv
for the test module.

Every outcome unittest reports becomes a case, so nothing that failed can
be counted as nothing:
- a passing test method is one passed case; its passing subtests are folded
  into it (they are parts of that one check);
- each failing subtest is its own failed case, and its method is then never
  counted as passed (unittest does not report success for it);
- failures and errors (also in setUpClass/setUpModule) are failed cases;
- an unexpected success is a failed case: the @expectedFailure it carries no
  longer describes the code;
- an expected failure is a passed case marked "expected failure": the test
  asserted that a known defect is still there and it is, which is what
  unittest's own wasSuccessful() counts as success; if the defect goes away
  it turns into an unexpected success, a failure;
- a skip is a failed case: an oracle that did not run has checked nothing.
The exit status is 0 only when unittest calls the run successful, nothing
was skipped and at least one case ran.
"""
import importlib.util
import os
import sys
import time
import traceback
import unittest
from xml.sax.saxutils import quoteattr, escape


class _Recorder(unittest.TextTestResult):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.cases = []  # (name, seconds, failure or None, note or None)
        self._start = 0.0

    def startTest(self, test):
        self._start = time.time()
        super().startTest(test)

    def _record(self, test, failure, note=None):
        """`failure`: None, a text, or an exc_info tuple (message: its exception line)."""
        if isinstance(failure, tuple):
            message = traceback.format_exception_only(failure[0], failure[1])[-1].strip()
            failure = (message, self._exc_info_to_string(failure, test))
        elif failure is not None:
            failure = (failure, failure)
        self.cases.append((test.id(), time.time() - self._start, failure, note))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, None)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:  # passing subtests count through their method's success
            self._record(subtest, err)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, None, "expected failure: " + self._exc_info_to_string(err, test))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected success: the test is marked @expectedFailure but passed")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped (counts as a failure): " + reason)


def write_junit_xml(path, suite_name, cases):
    failed = sum(1 for c in cases if c[2] is not None)
    with open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        f.write('<testsuites><testsuite name=%s tests="%d" failures="%d">\n'
                % (quoteattr(suite_name), len(cases), failed))
        for name, secs, failure, note in cases:
            f.write('<testcase name=%s time="%.3f">' % (quoteattr(name), secs))
            if failure is not None:
                message, text = failure
                f.write("<failure message=%s>%s</failure>" % (quoteattr(message), escape(text)))
            if note is not None:
                f.write("<system-out>%s</system-out>" % escape(note))
            f.write("</testcase>\n")
        f.write("</testsuite></testsuites>\n")


def main():
    path = sys.argv[1]
    sys.argv = [path] + sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location("spatialid_test_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Recorder)
    result = runner.run(suite)
    failed = [c for c in result.cases if c[2] is not None]
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    if xml_path:
        write_junit_xml(xml_path, os.path.basename(path), result.cases)
    print(f"run_py_test: {len(result.cases) - len(failed)} passed, {len(failed)} failed "
          f"({len(result.failures)} failures, {len(result.errors)} errors, "
          f"{len(result.skipped)} skipped, {len(result.expectedFailures)} expected failures, "
          f"{len(result.unexpectedSuccesses)} unexpected successes)", file=sys.stderr)
    if not result.cases:
        print("no test ran", file=sys.stderr)
        sys.exit(1)
    ok = result.wasSuccessful() and not result.skipped and not failed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
