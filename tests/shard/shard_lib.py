"""Shared set-up of the sharding tests: a tiny random LLaVA, a small image
set drawn by //examples:grid_data, one single-process batch extraction to
compare against, and helpers that run shards, merge them and compare.

Every process runs the model with one thread and the same batch size, and
the shard units hold whole batches (72 or 48 of a pair's 144 layouts, batch
8), so each image's hidden states are bit-identical in every process and the
merged files differ from the single run's only by the order of the fp32
additions in the sums. The bound below is therefore a few fp32 ulps.
"""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import torch

import oracle_lib

BATCH_EXTRACTION = oracle_lib.runfile("examples/batch_extraction")
MERGE_SHARDS = oracle_lib.runfile("examples/merge_shards")
GRID_DATA = oracle_lib.runfile("examples/grid_data")
MAKE_TINY = oracle_lib.runfile("tools/make_tiny_llava.py")
TORCHRUN_SH = oracle_lib.runfile("examples/launch/torchrun.sh")
SLURM_SBATCH = oracle_lib.runfile("examples/launch/slurm.sbatch")
BIN_DIR = os.path.dirname(BATCH_EXTRACTION)

PAIRS = ["camel_frog", "dog_camel", "frog_dog"]
NAME = "tiny"
# |merged - single| <= ULPS fp32 ulps of the file's largest magnitude.
ULPS = 8
FP32_EPS = 2.0 ** -23
BOUND = ULPS * FP32_EPS

# Variables of launchers that must not leak into the test's own processes.
LAUNCHER_PREFIXES = ("SLURM_", "SLURMD_", "SBATCH_", "SRUN_", "TORCHELASTIC_")
LAUNCHER_VARS = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                 "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR",
                 "MASTER_PORT"}


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(LAUNCHER_PREFIXES) and k not in LAUNCHER_VARS}
    env.pop("SPATIALID_DEFAULT_MODEL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fixture:
    """Model, images and the single run, made once per test class."""

    def __init__(self, tag, pairs=PAIRS):
        self.pairs = list(pairs)
        self.tmp = os.path.join(oracle_lib.tmpdir(), tag)
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        t0 = time.time()
        self.model_dir = self.make_model("model", seed=7)
        self.objects = objects = os.path.join(self.tmp, "objects")
        os.makedirs(objects)
        from PIL import Image, ImageDraw
        for name, colour in (("camel", (200, 150, 60, 255)), ("frog", (40, 180, 70, 255)),
                             ("dog", (120, 80, 200, 255))):
            im = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
            ImageDraw.Draw(im).ellipse((8, 14, 88, 82), fill=colour)
            im.save(os.path.join(objects, name + ".png"))
        self.images = os.path.join(self.tmp, "images")
        oracle_lib.run([GRID_DATA, f"--objects_dir={objects}", f"--out={self.images}",
                        f"--pairs={','.join(self.pairs)}", "--sizes=224", "--no_same_row_or_col"])
        self.single = os.path.join(self.tmp, "single")
        t1 = time.time()
        oracle_lib.run([BATCH_EXTRACTION, *self.flags(), f"--out={self.single}"], env=clean_env())
        self.single_seconds = time.time() - t1
        print(f"[{tag}] model and images {t1 - t0:.1f} s; single run "
              f"{self.single_seconds:.1f} s", flush=True)

    def make_model(self, name, seed):
        path = os.path.join(self.tmp, name)
        oracle_lib.run([sys.executable, MAKE_TINY, path, "--size", "test", "--dtype", "float32",
                        "--seed", str(seed)])
        return path

    def flags(self, model_dir=None):
        """The flags every process of a run shares (the single run's too)."""
        return ["--model=llava-7b", f"--model_dir={model_dir or self.model_dir}",
                "--dtype=float32", f"--images={self.images}", f"--name={NAME}",
                "--batch_size=8", "--threads=1", "--quiet"]

    def run_shards_concurrently(self, out, num_shards, extra=()):
        """`num_shards` batch_extraction processes at once, one per --shard."""
        procs = [subprocess.Popen([BATCH_EXTRACTION, *self.flags(), f"--out={out}",
                                   f"--shard={k}", f"--num_shards={num_shards}", *extra],
                                  env=clean_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for k in range(num_shards)]
        for k, p in enumerate(procs):
            _, err = p.communicate()
            if p.returncode != 0:
                raise AssertionError(f"shard {k} of {num_shards} exited {p.returncode}: {err}")

    def merge(self, out, *extra):
        return oracle_lib.run([MERGE_SHARDS, f"--out={out}", f"--model={NAME}", *extra],
                              env=clean_env())


def shard_lines(text):
    """The (K, N, launcher) of each 'shard K of N (from X)' line that
    batch_extraction prints, sorted."""
    return sorted(re.findall(r"shard (\d+) of (\d+) \(from ([a-z ]+)\)", text))


def run_with_envs(test, fixture, out, envs):
    """One batch_extraction (not quiet) per launcher environment, all at
    once; returns their stderr."""
    args = [a for a in fixture.flags() if a != "--quiet"]
    procs = [subprocess.Popen([BATCH_EXTRACTION, *args, f"--out={out}"], env=clean_env(**e),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for e in envs]
    text = ""
    for p, e in zip(procs, envs):
        _, err = p.communicate()
        test.assertEqual(p.returncode, 0, f"{e}: {err}")
        text += err
    return text


def output_files(root):
    """The files a run leaves, relative to `root`, without the shard states."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".shards"]
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def max_abs(obj):
    if isinstance(obj, dict):
        return max(max_abs(v) for v in obj.values())
    return obj.double().abs().max().item()


def assert_same_as_single(test, fixture, out, what, single=None):
    """Same files, keys, dtypes and shapes as the single run; values within
    BOUND x the largest magnitude of the IDs they come from: the file's own
    for the pair and universal IDs, the universal IDs' for the x/y axes (the
    axes are differences of IDs, smaller than the IDs, and inherit the IDs'
    rounding). `single`: another single run's folder. Returns the worst
    relative diff."""
    single = single or fixture.single
    files = output_files(out)
    test.assertEqual(files, output_files(single), what)
    test.assertEqual(len(files), 3 + len(fixture.pairs), what)  # pairs, universal, x and y axes
    id_scale = max_abs(torch.load(os.path.join(single, f"{NAME}.pt"), weights_only=True))
    worst_rel = 0.0
    leaves_all = 0
    for f in files:
        ours = torch.load(os.path.join(out, f), weights_only=True)
        ref = torch.load(os.path.join(single, f), weights_only=True)
        worst = scale = 0.0
        leaves = 0

        def walk(a, b, path):
            nonlocal worst, scale, leaves
            if isinstance(b, dict):
                test.assertIsInstance(a, dict, f"{what} {f} {path}")
                test.assertEqual(list(a.keys()), list(b.keys()), f"{what} {f} keys at {path}")
                for k in b:
                    walk(a[k], b[k], path + [k])
                return
            test.assertTrue(torch.is_tensor(a), f"{what} {f} {path}")
            test.assertEqual(a.dtype, b.dtype, f"{what} {f} dtype at {path}")
            test.assertEqual(tuple(a.shape), tuple(b.shape), f"{what} {f} shape at {path}")
            worst = max(worst, (a.double() - b.double()).abs().max().item())
            scale = max(scale, b.double().abs().max().item())
            leaves += 1

        walk(ours, ref, [])
        test.assertGreater(leaves, 0, f"{what} {f}")
        test.assertGreater(scale, 0.0, f"{what} {f}")
        if f in (f"{NAME}_x.pt", f"{NAME}_y.pt"):
            scale = id_scale
        test.assertLessEqual(worst, BOUND * scale, f"{what} {f}: max diff {worst} > bound")
        worst_rel = max(worst_rel, worst / scale)
        leaves_all += leaves
    print(f"{what}: {len(files)} files, {leaves_all} tensors, same keys; max |diff| "
          f"{worst_rel:.3g} x scale = {worst_rel / FP32_EPS:.2f} fp32 ulps "
          f"(bound {ULPS} ulps = {BOUND:.3g} x scale)", flush=True)
    return worst_rel


def assert_one_line_error(test, proc, *needles):
    test.assertNotEqual(proc.returncode, 0, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, proc.stderr)
    for n in needles:
        test.assertIn(n, lines[0])
    print(f"refused: {lines[0]}", flush=True)
    return lines[0]


class SlurmCluster:
    """A real single-node Slurm (munged, slurmctld, slurmd started as root
    with a throw-away key, state and ports) for the launcher tests. Raises
    if any part is missing or the node does not come up within a minute."""

    SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"

    def __init__(self):
        self.procs_pidfiles = []
        # The daemons outlive the test unless stopped: also on exit and on
        # the SIGTERM Bazel sends at a timeout.
        atexit.register(self.stop)
        signal.signal(signal.SIGTERM, lambda *_: (self.stop(), os._exit(143)))
        # Unix socket paths must stay under 108 bytes: a short folder in /tmp.
        self.dir = tempfile.mkdtemp(prefix="sid-slurm-", dir="/tmp")
        path = self.SBIN + ":" + os.environ.get("PATH", "")
        self.bins = {}
        for b in ("munged", "slurmctld", "slurmd", "srun", "sbatch", "sinfo", "scontrol"):
            found = shutil.which(b, path=path)
            if found is None:
                raise RuntimeError(f"{b} not found: install Debian's slurm-wlm and munge "
                                   "(third_party/PINS)")
            self.bins[b] = found
        d = self.dir
        for sub in ("munge", "state", "spool", "log"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(os.path.join(d, "munge"), 0o700)
        key = os.path.join(d, "munge", "key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        self.socket = os.path.join(d, "munge", "sock")
        self._start([self.bins["munged"], "--force", f"--socket={self.socket}",
                     f"--key-file={key}", f"--log-file={d}/munge/log",
                     f"--pid-file={d}/munge/pid", f"--seed-file={d}/munge/seed"],
                    f"{d}/munge/pid")
        self.node = "sidnode"
        self.conf = os.path.join(d, "slurm.conf")
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=sidtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName={self.node} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=test Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")
        self.env = clean_env(SLURM_CONF=self.conf, PATH=path)
        self._start([self.bins["slurmctld"], "-c", "-f", self.conf], f"{d}/slurmctld.pid")
        self._start([self.bins["slurmd"], "-f", self.conf, "-N", self.node], f"{d}/slurmd.pid")
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            p = subprocess.run([self.bins["sinfo"], "-h", "-N", "-o", "%T"], env=self.env,
                               capture_output=True, text=True)
            state = (p.stdout + p.stderr).strip()
            if p.returncode == 0 and state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the Slurm node did not come up in 60 s (sinfo: {state!r}); "
                           f"logs: {self.logs()}")

    def _start(self, args, pidfile):
        p = subprocess.run(args, env=clean_env(SLURM_CONF=getattr(self, "conf", "")),
                           capture_output=True, text=True)
        if p.returncode != 0:
            self.stop()
            raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
        self.procs_pidfiles.append(pidfile)
        deadline = time.time() + 10
        while not os.path.exists(pidfile) and time.time() < deadline:
            time.sleep(0.05)

    def logs(self):
        out = []
        for f in ("log/slurmctld.log", "log/slurmd.log", "munge/log"):
            path = os.path.join(self.dir, f)
            if os.path.exists(path):
                out.append(f"{f}: " + " | ".join(open(path).read().strip().splitlines()[-5:]))
        return "; ".join(out)

    def stop(self):
        # Only the daemons this object started, by their pid files.
        for pidfile in reversed(self.procs_pidfiles):
            try:
                pid = int(open(pidfile).read().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        self.procs_pidfiles = []
        time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, args, **kw):
        return oracle_lib.run([self.bins.get(args[0], args[0]), *args[1:]], env=self.env, **kw)
