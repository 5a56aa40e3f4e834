"""Fixture of tools/run_py_test_test.py, never a suite test of its own: the
outcomes the runner counts as passed. Expected cases:
  subtests_pass       passed (three passing subtests folded into it)
  expected_failure    passed, marked "expected failure" (a known defect
                      still there, as the @expectedFailure asserts)
"""
import unittest


class Fixture(unittest.TestCase):

    def test_subtests_pass(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 3)

    @unittest.expectedFailure
    def test_expected_failure(self):
        self.assertEqual(1, 2)


if __name__ == "__main__":
    unittest.main()
