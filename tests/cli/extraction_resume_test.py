"""Resume under SIGKILL for the model binaries, and their progress lines.

batch_extraction and small_id_grid killed mid-run (once their first output
file exists, and early) and started again with the same flags must end with
.pt files byte-identical to an uninterrupted run's and no temporary file
left in the output folder. Bytes, not just values: the .pt writer embeds
nothing run-specific (no time stamps, fixed zip record names), which the
early kills show too, since their reruns start from nothing. Temporaries of
a dead writer are removed by the rerun; a live writer's are kept.
"""
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/cli/model_fixture.py")))
import model_fixture as fx  # noqa: E402

BINARIES = {"small_id_grid": fx.SMALL_ID_GRID, "batch_extraction": fx.BATCH_EXTRACTION}
# The first file each binary writes: a pair's IDs (two pairs, so more follow).
FIRST_OUTPUT = os.path.join("camel_frog", "llava-7b.pt")


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def dead_pid():
    """A pid that no process has now (a child that has exited and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def run_on_terminal(args):
    """Runs args with stderr on a pseudo-terminal; returns (exit code, what it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the pty closes when the child exits
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode("utf-8", "replace")


class ExtractionResumeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "cli_extraction_resume")
        # 2 pairs x 144 layouts (no shared row or column): ~10 s a run here.
        cls.model_dir, cls.images = fx.make_inputs(
            cls.tmp, ("--pairs=camel_frog,dog_cake", "--sizes=16", "--cell=32",
                      "--no_same_row_or_col"))
        # The uninterrupted reference runs; their progress output is kept
        # for the progress tests: batch_extraction's through a pipe (a log),
        # small_id_grid's through a pseudo-terminal.
        cls.ref = {}
        batch_out = os.path.join(cls.tmp, "ref_batch_extraction")
        proc = fx.run(cls.args(cls, "batch_extraction", batch_out, quiet=False))
        assert proc.returncode == 0, proc.stderr
        cls.log_progress = proc.stderr
        grid_out = os.path.join(cls.tmp, "ref_small_id_grid")
        code, cls.tty_progress = run_on_terminal(cls.args(cls, "small_id_grid", grid_out, quiet=False))
        assert code == 0, cls.tty_progress
        for binary, out in (("batch_extraction", batch_out), ("small_id_grid", grid_out)):
            cls.ref[binary] = {f: read(os.path.join(out, f)) for f in files(out)}

    def args(self, binary, out, quiet=True):
        return [BINARIES[binary], f"--model_dir={self.model_dir}", f"--images={self.images}",
                f"--out={out}", "--dtype=float32", "--batch_size=8", "--layers=0,1,3",
                *(["--quiet"] if quiet else [])]

    def assert_same_as_reference(self, binary, out):
        got = files(out)
        self.assertEqual(got, sorted(self.ref[binary]), f"{out}: files differ (temporaries left?)")
        for f in got:
            self.assertEqual(read(os.path.join(out, f)), self.ref[binary][f], f"{out}/{f} differs")

    def kill_and_resume(self, binary, name, wait_for):
        out = os.path.join(self.tmp, name)
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(self.args(binary, out), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_for(out)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL, "the run finished before the kill")
        left = files(out) if os.path.isdir(out) else []
        rerun = fx.run(self.args(binary, out, quiet=False))
        self.assertEqual(rerun.returncode, 0, rerun.stderr)
        self.assert_same_as_reference(binary, out)
        print(f"{binary} {name}: killed with {left} on disk; rerun gives "
              f"{len(self.ref[binary])} byte-identical files, no temporaries")
        return rerun.stderr

    def first_output(self, out):
        deadline = time.time() + 120
        while time.time() < deadline and not os.path.exists(os.path.join(out, FIRST_OUTPUT)):
            time.sleep(0.01)
        self.assertTrue(os.path.exists(os.path.join(out, FIRST_OUTPUT)), "no first output")

    def test_batch_killed_after_first_pair(self):
        err = self.kill_and_resume("batch_extraction", "batch_after_first", self.first_output)
        self.assertIn("resuming; 144 of 288 images already done", err)

    def test_batch_killed_early(self):
        self.kill_and_resume("batch_extraction", "batch_early", lambda out: time.sleep(1.0))

    def test_grid_killed_after_first_pair(self):
        self.kill_and_resume("small_id_grid", "grid_after_first", self.first_output)

    def test_grid_killed_early(self):
        self.kill_and_resume("small_id_grid", "grid_early", lambda out: time.sleep(1.0))

    def test_stale_temporaries_removed_live_ones_kept(self):
        # What a run killed inside a write leaves: {file}.tmp.{pid}.{n}@{host}.{boot}.
        # The pair files are already there (copied from the reference run),
        # so the rerun only recomputes the universal IDs and axes.
        out = os.path.join(self.tmp, "stale")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(os.path.join(self.tmp, "ref_batch_extraction"), out)
        dead = dead_pid()
        tmp = oracle_lib.temporary_name
        stale = [tmp(os.path.join(out, "llava-7b.pt"), dead),
                 tmp(os.path.join(out, "llava-7b_x.pt"), dead, n=3),
                 tmp(os.path.join(out, "camel_frog", "llava-7b.pt"), dead, n=1)]
        live = tmp(os.path.join(out, "llava-7b_text.pt"), os.getpid())  # a writer still running
        other = tmp(os.path.join(out, "qwen-7b.pt"), dead)              # another model's run
        # A writer on another node sharing --out: never taken for a dead local one.
        foreign = tmp(os.path.join(out, "llava-7b_y.pt"), dead, host="another-node")
        for path in stale + [live, other, foreign]:
            with open(path, "wb") as f:
                f.write(b"half a file")
        proc = fx.run(self.args("batch_extraction", out, quiet=False))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"removed 3 temporary files of an interrupted run from {out}", proc.stderr)
        for path in stale:
            self.assertFalse(os.path.exists(path), path)
        self.assertTrue(os.path.exists(live))
        self.assertTrue(os.path.exists(other))
        self.assertTrue(os.path.exists(foreign), "another host's temporary was removed")
        for path in (live, other, foreign):
            os.remove(path)
        self.assert_same_as_reference("batch_extraction", out)

    def test_progress_in_a_log_is_plain_lines_with_rate_and_eta(self):
        err = self.log_progress
        self.assertNotIn("\r", err)
        self.assertNotIn("\033[", err)
        lines = [l for l in err.splitlines() if l.startswith("batch_extraction: ") and "/288" in l]
        self.assertGreaterEqual(len(lines), 2, err)
        number = r"\d+(\.\d+)?"
        for line in lines[:-1]:
            self.assertRegex(line, rf"^batch_extraction: \d+/288 \({number}%\), {number}/s, "
                                   rf"ETA \d+[hms]")
        self.assertRegex(lines[-1], rf"^batch_extraction: 288/288 \(100\.0%\), {number}/s, took ")
        print("log lines:", lines)

    def test_progress_on_a_terminal_redraws_one_line(self):
        self.assertIn("\r\033[K", self.tty_progress)  # redrawn in place
        self.assertRegex(self.tty_progress, r"\r\033\[Ksmall_id_grid: \d+/288 \([\d.]+%\), "
                                            r"[\d.]+/s, ETA \d+[hms]")
        self.assertRegex(self.tty_progress, r"small_id_grid: 288/288 \(100\.0%\), [\d.]+/s, took ")


if __name__ == "__main__":
    unittest.main()
