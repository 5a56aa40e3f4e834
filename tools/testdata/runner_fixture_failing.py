"""Fixture of tools/run_py_test_test.py, never a suite test of its own: every
outcome unittest has that must make the runner fail. Expected cases:
  passes                      passed (its two passing subtests folded in)
  failing_subtest [which=b]   failed (the method itself is not counted)
  raises_error                failed (error)
  unexpected_success          failed (marked @expectedFailure, passed)
  skipped                     failed (a skip counts as a failure)
"""
import unittest


class Fixture(unittest.TestCase):

    def test_passes(self):
        for which in ("a", "c"):
            with self.subTest(which=which):
                self.assertEqual(1, 1)

    def test_failing_subtest(self):
        for which in ("a", "b"):
            with self.subTest(which=which):
                self.assertEqual(which, "a")

    def test_raises_error(self):
        raise RuntimeError("an error, not a failed assertion")

    @unittest.expectedFailure
    def test_unexpected_success(self):
        self.assertTrue(True)

    def test_skipped(self):
        self.skipTest("the oracle is missing")


if __name__ == "__main__":
    unittest.main()
