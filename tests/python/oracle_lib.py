"""Helpers for the Python oracle tests that drive spatialid's C++ binaries."""
import os
import subprocess


def runfile(label_path):
    """Absolute path of a runfile given its workspace-relative path."""
    base = os.environ.get("TEST_SRCDIR")
    if base:
        candidate = os.path.join(base, os.environ.get("TEST_WORKSPACE", "spatialid"), label_path)
        if os.path.exists(candidate):
            return candidate
    return os.path.abspath(label_path)


def assets_dir():
    """Folder tools/setup.sh fills with npm tokenizer files and openmoji SVGs."""
    path = os.environ.get("SPATIALID_ASSETS") or os.path.expanduser("~/.cache/spatialid/assets")
    if not os.path.isdir(path):
        raise RuntimeError(f"assets folder {path} is missing; run tools/setup.sh")
    return path


def tokenizer_dir(name):
    """Folder with tokenizer.json and tokenizer_config.json: llama2, llama3, qwen3, gemma3."""
    path = os.path.join(assets_dir(), "tokenizers", name)
    if not os.path.isfile(os.path.join(path, "tokenizer.json")):
        raise RuntimeError(f"{path}/tokenizer.json is missing; run tools/setup.sh")
    return path


def tmpdir():
    return os.environ.get("TEST_TMPDIR") or os.path.abspath("tmp_test")


def run(args, **kw):
    """Runs a binary; on failure raises with its stderr so the test log says why."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def temporary_name(final_path, pid, host=None, boot=None, n=0):
    """The temporary a spatialid writer with `pid` on `host` (default: this
    host, this boot) uses for `final_path` (spatialid/io/temporary_name.h):
    {final}.tmp.{pid}.{n}@{host}.{boot}."""
    import socket
    if host is None:
        host = socket.gethostname().replace("@", "_").replace("/", "_") or "unknown-host"
    if boot is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip().replace("-", "")[:8] or "0"
        except OSError:
            boot = "0"
    return f"{final_path}.tmp.{pid}.{n}@{host}.{boot}"
