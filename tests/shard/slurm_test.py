"""batch_extraction under Slurm: the shard comes from srun's SLURM_PROCID /
SLURM_NTASKS (inside a step: SLURM_STEP_ID set) or from a job array's
SLURM_ARRAY_TASK_ID / _MIN / _STEP / _COUNT. Emulated environments first,
then a real single-node Slurm that setUpClass starts (munged, slurmctld and
slurmd as root, throw-away key, state and ports): srun -n 3, sbatch --array
with a dependent merge job, and examples/launch/slurm.sbatch. Each merged
result must equal the single run to a few fp32 ulps. Without Slurm or munge
the class fails (it never skips)."""
import os
import subprocess
import sys
import time
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/shard/shard_lib.py")))
import shard_lib as sl  # noqa: E402




class SlurmTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fx = sl.Fixture("slurm", pairs=sl.PAIRS[:2])  # 2 x 144 layouts
        t = time.time()
        cls.cluster = sl.SlurmCluster()
        print(f"real Slurm up in {time.time() - t:.1f} s ({cls.cluster.dir})", flush=True)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "cluster", None):
            cls.cluster.stop()

    # --- emulated environments ---

    def test_emulated_srun(self):
        out = os.path.join(self.fx.tmp, "emulated_srun")
        envs = [dict(SLURM_PROCID=r, SLURM_NTASKS=3, SLURM_LOCALID=r, SLURM_STEP_ID=0,
                     SLURM_JOB_ID=4242, SLURM_NNODES=1, SLURM_NODEID=0,
                     SLURM_STEP_NUM_TASKS=3, SLURM_JOB_NODELIST="n01")
                for r in range(3)]
        self.assertEqual(sl.shard_lines(sl.run_with_envs(self, self.fx, out, envs)),
                         [(str(r), "3", "slurm") for r in range(3)])
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "srun env, 3 tasks")

    def test_emulated_job_array_with_step(self):
        # --array=4-8:2: tasks 4, 6, 8 are shards 0, 1, 2 (the batch script
        # itself, outside any step, with -n 2 set: still one shard per task).
        out = os.path.join(self.fx.tmp, "emulated_array")
        envs = [dict(SLURM_ARRAY_TASK_ID=t, SLURM_ARRAY_TASK_MIN=4, SLURM_ARRAY_TASK_MAX=8,
                     SLURM_ARRAY_TASK_STEP=2, SLURM_ARRAY_TASK_COUNT=3, SLURM_ARRAY_JOB_ID=77,
                     SLURM_JOB_ID=80 + t, SLURM_PROCID=0, SLURM_NTASKS=2, SLURM_LOCALID=0)
                for t in (4, 6, 8)]
        self.assertEqual(sl.shard_lines(sl.run_with_envs(self, self.fx, out, envs)),
                         [(str(r), "3", "slurm array") for r in range(3)])
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "job array env, 3 tasks")

    def test_emulated_environment_edge_cases(self):
        base = [sl.BATCH_EXTRACTION, *self.fx.flags(), f"--out={os.path.join(self.fx.tmp, 'edge')}"]
        # A task id off the array's step is refused, naming the range.
        p = subprocess.run(base, env=sl.clean_env(SLURM_ARRAY_TASK_ID=5, SLURM_ARRAY_TASK_MIN=4,
                                                  SLURM_ARRAY_TASK_STEP=2,
                                                  SLURM_ARRAY_TASK_COUNT=3),
                           capture_output=True, text=True)
        sl.assert_one_line_error(self, p, "array task 5", "4-8:2")
        # The batch script of an -n 3 job (no step) is not shard 0 of 3:
        # regression, it used to take SLURM_PROCID=0 / SLURM_NTASKS=3 as a shard.
        out = os.path.join(self.fx.tmp, "batch_script")
        oracle_lib.run([sl.BATCH_EXTRACTION, *self.fx.flags(), f"--out={out}", "--pairs=camel_frog"],
                       env=sl.clean_env(SLURM_PROCID=0, SLURM_NTASKS=3, SLURM_JOB_ID=9))
        self.assertFalse(os.path.exists(os.path.join(out, ".shards")))
        self.assertTrue(os.path.exists(os.path.join(out, "camel_frog", f"{sl.NAME}.pt")))
        # Explicit flags win over the launcher's environment.
        p = subprocess.run([a for a in base if a != "--quiet"] + ["--shard=1", "--num_shards=2",
                                                                   "--pairs=camel_frog"],
                           env=sl.clean_env(SLURM_PROCID=2, SLURM_NTASKS=3, SLURM_STEP_ID=0),
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sl.shard_lines(p.stderr), [("1", "2", "flags")])

    # --- a real Slurm ---

    def test_real_srun(self):
        out = os.path.join(self.fx.tmp, "real_srun")
        p = self.cluster.run(["srun", "-n", "3", "--overcommit", sl.BATCH_EXTRACTION,
                              *[a for a in self.fx.flags() if a != "--quiet"], f"--out={out}"])
        self.assertEqual(sl.shard_lines(p.stderr), [(str(r), "3", "slurm") for r in range(3)])
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "real srun -n 3")

    def test_real_job_array_and_dependent_merge(self):
        out = os.path.join(self.fx.tmp, "real_array")
        logs = os.path.join(self.fx.tmp, "real_array_logs")
        os.makedirs(logs, exist_ok=True)
        flags = " ".join(a for a in self.fx.flags() if a != "--quiet")
        jid = self.cluster.run(
            ["sbatch", "--parsable", "--array=0-2", "-n", "1", "-o", f"{logs}/%A_%a.txt",
             f"--wrap={sl.BATCH_EXTRACTION} {flags} --out={out}"]).stdout.strip()
        self.cluster.run(
            ["sbatch", "--wait", f"--dependency=afterok:{jid}", "-o", f"{logs}/merge.txt",
             f"--wrap={sl.MERGE_SHARDS} --out={out} --model={sl.NAME}"])
        text = "".join(open(os.path.join(logs, f)).read() for f in sorted(os.listdir(logs)))
        self.assertEqual(sl.shard_lines(text), [(str(r), "3", "slurm array") for r in range(3)])
        self.assertIn("merge_shards: merged 3 shards", text)
        sl.assert_same_as_single(self, self.fx, out, "real sbatch --array=0-2 + merge job")

    def test_launch_script_srun_and_array(self):
        """examples/launch/slurm.sbatch as written (its #SBATCH lines ask for
        2 nodes and GPUs, overridden here for one CPU node)."""
        fit = ["--nodes=1", "--gres=none", "--overcommit"]
        env_args = [f"--export=ALL,DEVICE=cpu,SPATIALID_BIN={sl.BIN_DIR}"]
        tail = [f"--name={sl.NAME}", "--dtype=float32", "--batch_size=8", "--threads=1"]
        out = os.path.join(self.fx.tmp, "script_srun")
        self.cluster.run(["sbatch", "--wait", *fit, "--ntasks=3", "--ntasks-per-node=3",
                          *env_args, "-o", f"{self.fx.tmp}/script_srun.txt", sl.SLURM_SBATCH,
                          "llava-7b", self.fx.model_dir, self.fx.images, out, *tail])
        log = open(f"{self.fx.tmp}/script_srun.txt").read()
        self.assertEqual(sl.shard_lines(log), [(str(r), "3", "slurm") for r in range(3)], log)
        self.assertIn("merge_shards: merged 3 shards", log)
        sl.assert_same_as_single(self, self.fx, out, "slurm.sbatch, srun -n 3")

        out = os.path.join(self.fx.tmp, "script_array")
        jid = self.cluster.run(["sbatch", "--parsable", "--array=0-3", *fit, "--ntasks=1",
                                "--ntasks-per-node=1", *env_args, "-o",
                                f"{self.fx.tmp}/script_array_%a.txt", sl.SLURM_SBATCH, "llava-7b",
                                self.fx.model_dir, self.fx.images, out, *tail]).stdout.strip()
        self.cluster.run(["sbatch", "--wait", f"--dependency=afterok:{jid}", "-o",
                          f"{self.fx.tmp}/script_array_merge.txt",
                          f"--wrap={sl.MERGE_SHARDS} --out={out} --model={sl.NAME}"])
        logs = "".join(open(f"{self.fx.tmp}/script_array_{t}.txt").read() for t in range(4))
        self.assertEqual(sl.shard_lines(logs), [(str(r), "4", "slurm array") for r in range(4)], logs)
        self.assertNotIn("merge_shards", logs)  # array tasks leave the merge to the merge job
        sl.assert_same_as_single(self, self.fx, out, "slurm.sbatch --array=0-3 + merge job")


if __name__ == "__main__":
    unittest.main()
