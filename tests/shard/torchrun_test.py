"""batch_extraction under torchrun: the shard comes from RANK/WORLD_SIZE (and
the GPU from LOCAL_RANK). Emulated environments first (one node of 3, two
nodes of 2), then real torchrun from the venv (torch.distributed.run
--no-python: --standalone, and two agents meeting in a c10d rendezvous on
localhost as two nodes would), then examples/launch/torchrun.sh. Each merged
result must equal the single run to a few fp32 ulps."""
import os
import subprocess
import sys
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/shard/shard_lib.py")))
import shard_lib as sl  # noqa: E402

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]




class TorchrunTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fx = sl.Fixture("torchrun", pairs=sl.PAIRS[:2])  # 2 x 144 layouts

    def test_emulated_single_node(self):
        out = os.path.join(self.fx.tmp, "emulated_1x3")
        envs = [dict(RANK=r, WORLD_SIZE=3, LOCAL_RANK=r, LOCAL_WORLD_SIZE=3, GROUP_RANK=0,
                     ROLE_RANK=r, ROLE_WORLD_SIZE=3, MASTER_ADDR="127.0.0.1",
                     MASTER_PORT=29500, TORCHELASTIC_RUN_ID="none", OMP_NUM_THREADS=1)
                for r in range(3)]
        text = sl.run_with_envs(self, self.fx, out, envs)
        self.assertEqual(sl.shard_lines(text), [(str(r), "3", "torchrun") for r in range(3)])
        self.assertEqual(text.count(") on cpu"), 3, text)  # --device=cpu: no GPU chosen
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "torchrun env, 1 node x 3")

    def test_emulated_two_nodes(self):
        out = os.path.join(self.fx.tmp, "emulated_2x2")
        envs = [dict(RANK=2 * node + local, WORLD_SIZE=4, LOCAL_RANK=local, LOCAL_WORLD_SIZE=2,
                     GROUP_RANK=node, GROUP_WORLD_SIZE=2, MASTER_ADDR="node0", MASTER_PORT=29500)
                for node in range(2) for local in range(2)]
        text = sl.run_with_envs(self, self.fx, out, envs)
        self.assertEqual(sl.shard_lines(text), [(str(r), "4", "torchrun") for r in range(4)])
        self.assertEqual(text.count(") on cpu"), 4, text)  # --device=cpu: no GPU chosen
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "torchrun env, 2 nodes x 2")

    def test_local_rank_picks_the_gpu(self):
        # With --device=cuda the process asks for cuda:LOCAL_RANK, wrapped to
        # the devices CUDA_VISIBLE_DEVICES leaves it; this build has no CUDA,
        # so the error names the device it chose.
        for visible, device in (("0,1,2,3", "cuda:1"), ("", "cuda:1"), ("3", "cuda:0")):
            p = subprocess.run([sl.BATCH_EXTRACTION, *self.fx.flags(), "--device=cuda",
                                f"--out={os.path.join(self.fx.tmp, 'cuda')}"],
                               env=sl.clean_env(RANK=5, WORLD_SIZE=8, LOCAL_RANK=1,
                                                CUDA_VISIBLE_DEVICES=visible),
                               capture_output=True, text=True)
            sl.assert_one_line_error(self, p, f"--device={device}:")

    def test_real_torchrun_standalone(self):
        out = os.path.join(self.fx.tmp, "real_standalone")
        oracle_lib.run([*TORCHRUN, "--no-python", "--standalone", "--nproc_per_node=3",
                        sl.BATCH_EXTRACTION, *self.fx.flags(), f"--out={out}"],
                       env=sl.clean_env())
        manifests = sorted(f for f in os.listdir(os.path.join(out, ".shards", sl.NAME))
                           if f.endswith(".json"))
        self.assertEqual(manifests, [f"shard-{k}-of-3.json" for k in range(3)])
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "real torchrun, 3 processes")

    def test_real_torchrun_two_nodes_through_the_launch_script(self):
        """examples/launch/torchrun.sh as two nodes of 2 on localhost; node 0
        merges after torchrun returns."""
        out = os.path.join(self.fx.tmp, "real_two_nodes")
        port = sl.free_port()
        procs = []
        for node in range(2):
            env = sl.clean_env(NNODES=2, NODE_RANK=node, RDZV=f"127.0.0.1:{port}", GPUS=2,
                               DEVICE="cpu", TORCHRUN=" ".join(TORCHRUN),
                               SPATIALID_BIN=sl.BIN_DIR)
            procs.append(subprocess.Popen(
                ["bash", sl.TORCHRUN_SH, "llava-7b", self.fx.model_dir, self.fx.images, out,
                 f"--name={sl.NAME}", "--dtype=float32", "--batch_size=8", "--threads=1",
                 "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        logs = []
        for p in procs:
            _, err = p.communicate(timeout=240)
            logs.append(err)
            self.assertEqual(p.returncode, 0, err)
        self.assertIn("merge_shards: merged 4 shards", logs[0])
        self.assertNotIn("merge_shards", logs[1])
        sl.assert_same_as_single(self, self.fx, out, "torchrun.sh, 2 nodes x 2")

    def test_launch_script_single_node_and_usage(self):
        out = os.path.join(self.fx.tmp, "script_one_node")
        # An nvidia-smi that finds no GPU, whatever this machine has.
        stub = os.path.join(self.fx.tmp, "stub_bin")
        os.makedirs(stub, exist_ok=True)
        with open(os.path.join(stub, "nvidia-smi"), "w") as f:
            f.write("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
        os.chmod(os.path.join(stub, "nvidia-smi"), 0o755)
        env = sl.clean_env(GPUS=3, DEVICE="cpu", TORCHRUN=" ".join(TORCHRUN),
                           SPATIALID_BIN=sl.BIN_DIR, PATH=f"{stub}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        oracle_lib.run(["bash", sl.TORCHRUN_SH, "llava-7b", self.fx.model_dir, self.fx.images, out,
                        f"--name={sl.NAME}", "--dtype=float32", "--batch_size=8", "--threads=1",
                        "--quiet"], env=env)
        sl.assert_same_as_single(self, self.fx, out, "torchrun.sh, 1 node x 3")
        # No GPUS and no nvidia-smi: one process, not zero (regression: the
        # script passed --nproc_per_node=0). --strict_axes reaches the merge
        # too (regression: only the extraction got it, the merged axes were
        # the default ones).
        env.pop("GPUS")
        strict = os.path.join(self.fx.tmp, "single_strict_axes")
        oracle_lib.run([sl.BATCH_EXTRACTION, *self.fx.flags(), f"--out={strict}",
                        "--strict_axes"], env=sl.clean_env())
        out1 = os.path.join(self.fx.tmp, "script_no_gpus")
        oracle_lib.run(["bash", sl.TORCHRUN_SH, "llava-7b", self.fx.model_dir, self.fx.images,
                        out1, f"--name={sl.NAME}", "--dtype=float32", "--batch_size=8",
                        "--threads=1", "--quiet", "--strict_axes"], env=env)
        self.assertEqual(sorted(os.listdir(os.path.join(out1, ".shards", sl.NAME))),
                         ["shard-0-of-1", "shard-0-of-1.json"])
        sl.assert_same_as_single(self, self.fx, out1, "torchrun.sh, 1 process, --strict_axes",
                                 single=strict)
        p = subprocess.run(["bash", sl.TORCHRUN_SH], env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("NODE_RANK", p.stderr)


if __name__ == "__main__":
    unittest.main()
