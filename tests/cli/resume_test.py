"""Resume under SIGKILL: grid_data killed mid-way and started again with the
same flags must end with PNGs byte-identical to an uninterrupted run's and no
temporary file left behind."""
import filecmp
import os
import shutil
import signal
import subprocess
import time
import unittest

from PIL import Image, ImageDraw

import oracle_lib

GRID_DATA = oracle_lib.runfile("examples/grid_data")


def pngs(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


class ResumeTest(unittest.TestCase):

    def args(self, out):
        return [GRID_DATA, f"--objects_dir={self.objects}", f"--out={out}", "--sizes=224,112"]

    def setUp(self):
        self.tmp = os.path.join(oracle_lib.tmpdir(), "cli_resume")
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.objects = os.path.join(self.tmp, "objects")
        os.makedirs(self.objects)
        for name, colour in (("camel", (200, 150, 60, 255)), ("frog", (40, 180, 70, 255))):
            im = Image.new("RGBA", (72, 72), (0, 0, 0, 0))
            ImageDraw.Draw(im).ellipse((6, 10, 66, 62), fill=colour)
            im.save(os.path.join(self.objects, name + ".png"))
        self.ref = os.path.join(self.tmp, "ref")
        oracle_lib.run(self.args(self.ref))

    def kill_and_resume(self, name, when):
        out = os.path.join(self.tmp, name)
        proc = subprocess.Popen(self.args(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        when(out)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL, "the run finished before the kill")
        oracle_lib.run(self.args(out))
        files = pngs(out)
        self.assertEqual(files, pngs(self.ref))
        _, mismatch, errors = filecmp.cmpfiles(self.ref, out, files, shallow=False)
        self.assertEqual(mismatch + errors, [])
        print(f"{name}: {len(files)} PNGs identical after kill and resume")

    def test_kill_after_first_image(self):
        def first_png(out):
            deadline = time.time() + 60
            while time.time() < deadline and not any(f.endswith(".png") for f in pngs(out) if os.path.exists(out)):
                time.sleep(0.01)
        self.kill_and_resume("after_first", first_png)

    def test_kill_early(self):
        self.kill_and_resume("early", lambda out: time.sleep(0.4))

    def test_temporary_pngs_of_a_killed_run_are_removed(self):
        # A run killed inside a PNG write leaves {png}.tmp.{pid}.{n}@{host}.{boot};
        # the rerun removes this host's of dead pids and keeps a live
        # writer's and every one of another host (a run on another node
        # sharing the folder, whose pid means nothing here).
        out = os.path.join(self.tmp, "stale")
        shutil.copytree(self.ref, out)
        done = subprocess.Popen(["true"])
        done.wait()  # its pid is now a dead writer's
        folder = os.path.join(out, "camel_frog", "1_2")
        stale = [oracle_lib.temporary_name(os.path.join(folder, "0_0_224.png"), done.pid),
                 oracle_lib.temporary_name(os.path.join(folder, "3_3_112.png"), done.pid, n=7)]
        live = oracle_lib.temporary_name(os.path.join(folder, "0_1_224.png"), os.getpid())
        foreign = oracle_lib.temporary_name(os.path.join(folder, "0_2_224.png"), done.pid,
                                            host="another-node")
        for path in stale + [live, foreign]:
            with open(path, "wb") as f:
                f.write(b"\x89PNG half")
        proc = oracle_lib.run(self.args(out))
        self.assertIn(f"removed 2 temporary files of an interrupted run from {out}", proc.stderr)
        self.assertEqual([p for p in stale if os.path.exists(p)], [])
        self.assertTrue(os.path.exists(live))
        self.assertTrue(os.path.exists(foreign), "another host's temporary was removed")
        os.remove(live)
        os.remove(foreign)
        self.assertEqual(pngs(out), pngs(self.ref))


if __name__ == "__main__":
    unittest.main()
