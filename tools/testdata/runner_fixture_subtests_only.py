"""Fixture of tools/run_py_test_test.py, never a suite test of its own: the
reproduction of issue 15, one passing test and one whose only failures are
two failing subtests (the old runner reported exit 0, failures="0")."""
import unittest


class Fixture(unittest.TestCase):

    def test_passes(self):
        self.assertTrue(True)

    def test_two_failing_subtests(self):
        for i in (1, 2):
            with self.subTest(i=i):
                self.assertEqual(i, 0)


if __name__ == "__main__":
    unittest.main()
