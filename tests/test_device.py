"""The GPU path, proven as far as a CPU can: checkpoints load to CPU and refuse another
device type, a training step reads nothing back to the host, checkpoints keep their own
cadence, numeric flags (TF32, determinism) are set and recorded, jobs spread over GPUs,
and timing synchronises on CUDA. Tests that need a real GPU are in test_gpu.py."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils._python_dispatch import TorchDispatchMode

from tests.helpers import compose_config
from gansweep import device
from gansweep.runs import checkpoint
from gansweep.gan import step
from gansweep.fid import cache as fid_cache, extractors as fid_extractors
from gansweep.gan.step import train_step
from gansweep.train import launcher_device
from gansweep.runs.checkpoint import ResumeError
from gansweep.runs.signals import Interrupted
from gansweep.runs.trainer import Run, configure_process
from gansweep.schema import ConfigError, check

GANS = {"standard": ["+experiment=seed_standard"], "coulomb": ["+experiment=seed_coulomb_1"]}


@pytest.fixture
def tiny_overrides(tiny_overrides):
    """These tests fake a GPU on CPU, or check CPU values: on CPU even where the suite
    runs on a GPU (GANSWEEP_TEST_DEVICE=cuda)."""
    return [*tiny_overrides, "trainer.device=cpu", "trainer.deterministic=false"]


@pytest.fixture(autouse=True)
def default_backends():
    """Flags are process-wide: leave them as every other test expects."""
    yield
    device.configure_backends(torch.device("cpu"))


@pytest.fixture
def fake_gpus(monkeypatch):
    """A CPU build that believes it has three GPUs (nothing is ever run on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)


class HostReads(TorchDispatchMode):
    """Counts what ``.item()``, ``int(t)``, ``bool(t)`` dispatch to (a device->host read and
    a stream synchronisation on a GPU) and boolean-mask indexing (``nonzero``: another)."""

    def __init__(self):
        super().__init__()
        self.reads = self.nonzero = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        if func.__name__.startswith("nonzero"):
            self.nonzero += 1
        return func(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------- 3. no host syncs
@pytest.mark.slow
@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("gan", sorted(GANS))
def test_a_training_step_reads_nothing_back_to_the_host(tiny_overrides, tmp_path, gan, impl):
    r = Run(compose_config([*tiny_overrides, *GANS[gan], f"model.impl={impl}"]), tmp_path)
    for _ in range(2):  # the second step: zero-debias counters past 1
        with HostReads() as mode:
            train_step(r.state.parts, r.data[:32], r.state.noise, r.counters.step)
        assert mode.reads == 0
        if impl == "fast":  # the reference potential's boolean masks are left as they were
            assert mode.nonzero == 0
    assert int(r.g.bn1.debias_steps) == 2


@pytest.mark.slow
def test_the_loop_reads_only_to_log_and_check_samples(tiny_overrides, tmp_path, monkeypatch):
    """With checkpoints stubbed, 4 batches logged every 2nd (and the last) read nothing back
    except the one sample grid's finiteness check; the losses travel in one transfer
    (``tolist``, no scalar reads). Before: 3 per G step (BatchNorm debias) + 2 per row."""
    cfg = compose_config([*tiny_overrides, *GANS["coulomb"], "model.impl=fast", "fid=none",
                          "trainer.max_batches_per_epoch=4", "trainer.log_every=2",
                          "trainer.sample_every=100"])
    r = Run(cfg, tmp_path)
    monkeypatch.setattr(Run, "save_checkpoint", lambda run: None)
    monkeypatch.setattr(r, "final_samples", lambda: r.dirs.root)
    with HostReads() as mode:
        r.train()
    rows = [json.loads(line) for line in r.dirs.metrics.read_text().splitlines()]
    assert [row["batch"] for row in rows] == [0, 2, 3]
    assert all(isinstance(row["d_loss"], float) for row in rows)
    assert mode.reads == 1


def test_zero_debias_power_on_the_device_equals_pythons():
    for t in (1, 2, 7, 468, 46800):
        assert 1.0 - torch.pow(0.99, torch.tensor(float(t), dtype=torch.float64)).item() \
            == 1.0 - 0.99 ** t


# ----------------------------------------------------------------------------- 1. load to CPU
@pytest.mark.slow
def test_resume_on_a_gpu_loads_to_cpu_and_gives_the_rng_cpu_byte_tensors(
        tiny_overrides, tmp_path, monkeypatch):
    """A run on 'cuda' (faked: this build has none) resumes a checkpoint made on cuda. Loading
    it with map_location=<device> fails here (and on a GPU lands the RNG states there,
    where torch.set_rng_state refuses them); it must load to CPU."""
    cfg = compose_config(tiny_overrides)
    first = Run(cfg, tmp_path)
    first.save_checkpoint()
    state = torch.load(first.dirs.checkpoint, weights_only=False)
    state["device_type"] = "cuda"
    torch.save(state, first.dirs.checkpoint)

    second = Run(cfg, tmp_path)
    second.device = torch.device("cuda")  # what a GPU run has; its tensors stay on CPU here
    loaded = []
    real_load = checkpoint.load
    monkeypatch.setattr(checkpoint, "load", lambda p: (loaded.append(real_load(p)), loaded[-1])[1])
    monkeypatch.setattr(checkpoint, "check_streams", lambda *a: None)  # a CUDA run of this release
    assert second.resume()
    assert [(s.device.type, s.dtype) for s in loaded[0]["rng"].values()] == [("cpu", torch.uint8)] * 2
    assert torch.equal(second.state.streams.model.get_state(), state["rng"]["torch"])
    assert torch.equal(second.state.streams.noise.get_state(), state["rng"]["noise"])


def test_load_state_dict_moves_the_shuffle_to_the_device(tiny_overrides, tmp_path, monkeypatch):
    r = Run(compose_config(tiny_overrides), tmp_path)
    r.state.perm, r.state.perm_epoch = torch.randperm(512), 0
    state = r.state_dict()
    moved = []
    real_to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda t, *a, **k: (moved.append(a), real_to(t, *a, **k))[1])
    r.load_state_dict(state)
    assert (r.device,) in moved and torch.equal(r.state.perm, state["perm"])


# ----------------------------------------------------------------------------- 2. device identity
def _checkpoint_from(tmp_path, overrides, **changes):
    r = Run(compose_config(overrides), tmp_path)
    r.save_checkpoint()
    state = torch.load(r.dirs.checkpoint, weights_only=False)
    state.update(changes)
    torch.save(state, r.dirs.checkpoint)


@pytest.mark.slow
def test_a_checkpoint_made_on_cuda_is_refused_on_cpu_with_the_fix(tiny_overrides, tmp_path):
    cuda_generator_state = torch.zeros(16, dtype=torch.uint8)  # Philox seed + offset
    rng = {"torch": torch.get_rng_state(), "noise": cuda_generator_state,
           "cuda": cuda_generator_state}
    _checkpoint_from(tmp_path, tiny_overrides, device_type="cuda", rng=rng)
    with pytest.raises(ResumeError, match=r"made on cuda \(float32\) but this run is on cpu "
                                          r"\(float32\).*trainer\.device=cuda"):
        Run(compose_config(tiny_overrides), tmp_path).resume()


def test_an_older_cuda_checkpoint_is_recognised_by_its_cuda_rng_state(tiny_overrides, tmp_path):
    r = Run(compose_config(tiny_overrides), tmp_path)
    state = r.state_dict()
    del state["device_type"], state["precision"]
    state["rng"]["cuda"] = torch.zeros(16, dtype=torch.uint8)
    with pytest.raises(ResumeError, match="made on cuda"):
        checkpoint.check_device(state, r.dirs.root, r.device.type, r.precision)
    del state["rng"]["cuda"]
    checkpoint.check_device(state, r.dirs.root, r.device.type, r.precision)  # an older CPU checkpoint resumes on CPU


@pytest.mark.slow
def test_a_tf32_checkpoint_is_refused_at_float32(tiny_overrides, tmp_path):
    _checkpoint_from(tmp_path, tiny_overrides, device_type="cpu", precision="tf32")
    with pytest.raises(ResumeError, match="trainer.tf32=true"):
        Run(compose_config(tiny_overrides), tmp_path).resume()


# ----------------------------------------------------------------------------- 4. cadence
def _checkpoints_taken(r, monkeypatch):
    taken = []
    real = Run.save_checkpoint
    monkeypatch.setattr(Run, "save_checkpoint",
                        lambda run: (taken.append((run.counters.epoch, run.counters.batch)),
                                     real(run))[1])
    return taken


CADENCE = ["fid=none", "trainer.epochs=2", "trainer.max_batches_per_epoch=7",
           "trainer.sample_every=1", "trainer.log_every=1"]


@pytest.mark.slow
def test_checkpoints_follow_checkpoint_every_not_the_samples(tiny_overrides, tmp_path, monkeypatch):
    r = Run(compose_config([*tiny_overrides, *CADENCE, "trainer.checkpoint_every=3",
                            "trainer.checkpoint_minutes=null"]), tmp_path)
    taken = _checkpoints_taken(r, monkeypatch)
    r.train()
    assert taken == [(0, 0), (0, 3), (0, 6), (1, 0), (1, 3), (1, 6), (2, 0)]
    assert len(list(r.dirs.samples.glob("000*_*.png"))) == 14  # a grid every batch still


@pytest.mark.slow
def test_checkpoints_by_wall_clock_minutes(tiny_overrides, tmp_path, monkeypatch):
    r = Run(compose_config([*tiny_overrides, *CADENCE, "trainer.checkpoint_every=null",
                            "trainer.checkpoint_minutes=1"]), tmp_path)
    now = [0.0]
    r.wall = lambda: now[0]
    real_d_step = step.d_step
    monkeypatch.setattr(step, "d_step", lambda *a: (now.__setitem__(0, now[0] + 30), real_d_step(*a))[1])
    taken = _checkpoints_taken(r, monkeypatch)
    r.train()
    assert taken == [(0, 0), (0, 2), (0, 4), (0, 6), (1, 0), (1, 2), (1, 4), (1, 6), (2, 0)]


@pytest.mark.slow
def test_sigterm_always_checkpoints(tiny_overrides, tmp_path, monkeypatch):
    r = Run(compose_config([*tiny_overrides, *CADENCE, "trainer.checkpoint_every=null",
                            "trainer.checkpoint_minutes=null"]), tmp_path)
    real_g_step = step.g_step

    def g_step(parts, z):
        if r.counters.batch == 2:
            r.stop_signal = 15  # what the SIGTERM handler records
        return real_g_step(parts, z)

    monkeypatch.setattr(step, "g_step", g_step)
    taken = _checkpoints_taken(r, monkeypatch)
    with pytest.raises(Interrupted):
        r.train()
    assert taken == [(0, 0), (0, 3)]
    state = torch.load(r.dirs.checkpoint, weights_only=False)
    assert state["counters"]["step"] == 3 and state["counters"]["seconds"] > 0


# ----------------------------------------------------------------------------- 5, 9. flags
@pytest.mark.slow
def test_tf32_is_off_by_default_and_on_only_when_asked(tiny_overrides, tmp_path):
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's own default for convolutions
    configure_process(compose_config(tiny_overrides))  # the process's settings, not a run's
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"
    configure_process(compose_config([*tiny_overrides, "trainer.tf32=true"]))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "high"
    assert device.precision("cpu") == "float32"  # TF32 is a CUDA matter
    assert device.precision("cuda") == "tf32"


def test_deterministic_mode_and_cudnn_autotuning(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    device.configure_backends(torch.device("cuda"), deterministic=True)
    assert torch.backends.cudnn.deterministic and torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    device.configure_backends(torch.device("cuda"))
    assert not torch.backends.cudnn.deterministic and not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark  # autotuned convolutions when not deterministic
    device.configure_backends(torch.device("cpu"))
    assert not torch.backends.cudnn.benchmark


@pytest.mark.slow
def test_summary_and_checkpoint_record_device_and_precision(tiny_overrides, tmp_path):
    summary = Run(compose_config([*tiny_overrides, "fid=none"]), tmp_path).train()
    assert (summary["device"], summary["precision"], summary["deterministic"]) == \
        ("cpu", "float32", False)
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)
    assert (state["device_type"], state["precision"]) == ("cpu", "float32")


def test_fid_cache_key_names_device_type_and_precision():
    def key(name):
        extractor = fid_extractors.Extractor("lenet", "lenet-x", 128, None, torch.device(name), 500,
                                             "", forward=lambda model, images: images)
        return fid_cache.reference_key(extractor, 1000)

    assert key("cpu").endswith("_1000_cpu-float32")
    assert key("cuda:1").endswith("_1000_cuda-float32")
    torch.backends.cudnn.allow_tf32 = True
    assert key("cuda").endswith("_1000_cuda-tf32")


# ----------------------------------------------------------------------------- 6. devices
def test_cuda_n_is_accepted_and_checked(fake_gpus):
    assert device.check_device_name("cuda:2") is None
    assert "3 GPU(s)" in device.check_device_name("cuda:3")
    assert "auto, cpu, cuda or cuda:N" in device.check_device_name("gpu")
    check(compose_config(["trainer.device=cuda:1"]))
    with pytest.raises(ConfigError, match=r"trainer.device='cuda:7'.*3 GPU\(s\)"):
        check(compose_config(["trainer.device=cuda:7"]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_n_without_cuda_is_refused():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        check(compose_config(["trainer.device=cuda:0"]))


def _hydra(target, num, **launcher):
    return OmegaConf.create({"launcher": {"_target_": target, **launcher}, "job": {"num": num}})


JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def test_joblib_jobs_go_round_robin_over_the_gpus(fake_gpus):
    assert [launcher_device(_hydra(JOBLIB, n), "auto") for n in range(4)] == \
        ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    assert launcher_device(_hydra(JOBLIB, 4), "cuda") == "cuda:1"
    assert launcher_device(_hydra(JOBLIB, 4), "cuda:2") == "cuda:2"  # explicit wins
    assert launcher_device(_hydra(JOBLIB, 4), "cpu") == "cpu"
    # one job per node or per GPU allocation: the scheduler's CUDA_VISIBLE_DEVICES decides
    assert launcher_device(_hydra(SUBMITIT, 4, gpus_per_node=1), "auto") == "auto"


def test_joblib_without_gpus_stays_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launcher_device(_hydra(JOBLIB, 3), "auto") == "auto"


def test_warns_when_a_gpu_launcher_lands_on_a_machine_without_cuda(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="gansweep.device"):
        launcher_device(_hydra(SUBMITIT, 0, gpus_per_node=2), "auto")
    assert "asked for 2 GPU(s) per node but CUDA is not visible" in caplog.text
    caplog.clear()
    launcher_device(_hydra(SUBMITIT, 0, gpus_per_node=0), "auto")  # CPU asked, CPU got
    launcher_device(_hydra(SUBMITIT, 0, gpus_per_node=2), "cpu")  # CPU on purpose
    assert "CUDA is not visible" not in caplog.text


# ----------------------------------------------------------------------------- 7. timing
def test_step_clock_synchronises_on_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(d))
    clock = device.StepClock(torch.device("cpu"))
    clock.tick()
    seconds, steps = clock.lap()
    assert calls == [] and steps == 1 and seconds >= 0
    cuda = torch.device("cuda:1")
    clock = device.StepClock(cuda)
    clock.tick()
    clock.tick()
    assert clock.lap()[1] == 2 and calls == [cuda, cuda]  # restart and lap both wait


def test_selecting_cuda_with_or_without_an_index(monkeypatch):
    """torch.cuda.set_device refuses a bare "cuda" (what trainer.device=auto resolves to)."""
    current, resets = [], []
    monkeypatch.setattr(torch._C, "_cuda_setDevice", current.append, raising=False)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", resets.append)
    device.select(torch.device("cuda"))
    device.select(torch.device("cuda:2"))
    device.select(torch.device("cpu"))
    assert current == [2] and resets == [torch.device("cuda"), torch.device("cuda:2")]


def test_memory_report_on_cuda_only(monkeypatch):
    assert device.memory_report(torch.device("cpu")) == {}
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 300 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda d=None: 512 * 2**20)
    assert device.memory_report(torch.device("cuda")) == {
        "max_memory_allocated_mb": 300.0, "max_memory_reserved_mb": 512.0}


# ----------------------------------------------------------------------------- 8. the suite
def test_the_suite_runs_on_cpu_unless_told_otherwise():
    expected = os.environ.get("GANSWEEP_TEST_DEVICE", "cpu")
    assert compose_config([]).trainer.device == expected
