"""Runs one unittest file and writes a JUnit XML with one entry per case.

Usage: run_py_test.py TEST_FILE [args...]. Extra args are left in sys.argv
for the test module. A skipped test counts as a failure: an oracle that did
not run has not checked anything.
"""
import importlib.util
import os
import sys
import time
import unittest
from xml.sax.saxutils import quoteattr, escape


class _Recorder(unittest.TextTestResult):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.cases = []  # (name, seconds, failure text or None)
        self._start = 0.0

    def startTest(self, test):
        self._start = time.time()
        super().startTest(test)

    def _record(self, test, err_text):
        self.cases.append((test.id(), time.time() - self._start, err_text))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, None)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped (counts as a failure): " + reason)


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
        with open(xml_path, "w") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            f.write('<testsuites><testsuite name=%s tests="%d" failures="%d">\n'
                    % (quoteattr(os.path.basename(path)), len(result.cases), len(failed)))
            for name, secs, err in result.cases:
                f.write('<testcase name=%s time="%.3f"' % (quoteattr(name), secs))
                if err is None:
                    f.write("/>\n")
                else:
                    f.write("><failure message=%s>%s</failure></testcase>\n"
                            % (quoteattr(err.splitlines()[-1] if err else ""), escape(err)))
            f.write("</testsuite></testsuites>\n")
    if not result.cases:
        print("no test ran", file=sys.stderr)
        sys.exit(1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
