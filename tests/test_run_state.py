"""A run is a value: it draws from its own generators and sets nothing process-wide, so runs
interleaved in one process compute, bit for bit, what each computes alone."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from gansweep import device
from gansweep.runs import checkpoint, trainer
from gansweep.runs.checkpoint import ResumeError
from gansweep.gan import state as run_state
from gansweep.gan.models import DCGAN, MLPGAN
from gansweep.runs.trainer import Run
from tests.helpers import compose_config

# two settings that differ in everything a pack would mix: loss family, seed, learning rates;
# 2 epochs of 2 batches, an FID every epoch (evaluation between the steps of the other run)
PAIR = (["+experiment=seed_coulomb_1", "seed=0"], ["+experiment=seed_standard", "seed=1"])
BUDGET = ["trainer.epochs=2", "fid.every_epochs=1", "fid.metrics=[fid]", "trainer.threads=1"]
TIMING = {"wall_seconds", "seconds_per_step_median", "pid", "host", "seconds", "finished_at",
          "started_at"}


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items()
                if k not in TIMING and not k.endswith("_at")}
    return value


def _numbers(run_dir):
    """What a run computed: summary.json's values but timings, metrics.jsonl's rows but
    timings, and every tensor of last.pt."""
    summary = _untimed(json.loads((run_dir / "summary.json").read_text()))
    rows = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    return summary, rows, state


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{prefix}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flat(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _assert_same(a, b):
    (sa, ra, ta), (sb, rb, tb) = a, b
    assert sa == sb and ra == rb
    fa, fb = dict(_flat(ta)), dict(_flat(tb))
    assert fa.keys() == fb.keys()
    for key, value in fa.items():
        if key == ".counters.seconds":  # wall time
            continue
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, fb[key]), key
        else:
            assert value == fb[key], key


@pytest.mark.slow
def test_two_runs_interleaved_in_one_process_each_equal_the_run_alone(tiny_overrides, tmp_path):
    cfgs = [compose_config([*tiny_overrides, *pair, *BUDGET]) for pair in PAIR]
    alone = []
    for i, cfg in enumerate(cfgs):
        trainer.configure_process(cfg)
        assert Run(cfg, tmp_path / f"alone{i}").train()["status"] == "ok"
        alone.append(_numbers(tmp_path / f"alone{i}"))

    runs = [Run(cfg, tmp_path / f"together{i}") for i, cfg in enumerate(cfgs)]
    for r in runs:
        r.start()
    try:
        while not all(r.done for r in runs):
            for r in runs:
                if not r.done:
                    torch.rand(7)  # the global RNG moves between steps: no run may read it
                    r.advance()
    finally:
        for r in runs:
            r.close()
    for i, r in enumerate(runs):
        assert r.finish()["status"] == "ok"
        _assert_same(_numbers(tmp_path / f"together{i}"), alone[i])


@pytest.mark.slow
def test_a_whole_run_leaves_the_global_rng_as_it_found_it(tiny_overrides, tmp_path):
    cfg = compose_config([*tiny_overrides, *PAIR[0], *BUDGET])
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    assert Run(cfg, tmp_path).train()["status"] == "ok"
    assert torch.equal(torch.get_rng_state(), before)


def _called(source: str) -> set[str]:
    """The dotted names of every function called (and attribute assigned) in ``source``."""
    import ast
    import textwrap

    def dotted(node):
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        return node.id if isinstance(node, ast.Name) else "?"

    tree = ast.parse(textwrap.dedent(source))
    names = {dotted(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names |= {dotted(t) for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets}
    return names


def test_no_process_wide_setting_inside_a_runs_code_path():
    """Threads, backends, the global seed: set once per process (configure_process), never
    by what a run is (gansweep.gan.state) or by the driver of one run (trainer.Run)."""
    forbidden = {"torch.manual_seed", "torch.set_num_threads", "configure_backends", "select",
                 "torch.set_rng_state", "torch.cuda.manual_seed", "torch.cuda.set_rng_state",
                 "torch.use_deterministic_algorithms", "torch.set_float32_matmul_precision",
                 "torch.backends.cuda.matmul.allow_tf32", "torch.backends.cudnn.allow_tf32",
                 "torch.backends.cudnn.benchmark", "torch.backends.cudnn.deterministic"}
    for source in (inspect.getsource(trainer.Run), inspect.getsource(run_state)):
        assert not _called(source) & forbidden, _called(source) & forbidden
    # the check sees such calls where they are: in the process's set-up
    assert {"torch.set_num_threads", "configure_backends", "select"} <= _called(
        inspect.getsource(device.configure_process))


@pytest.mark.parametrize("cls", [DCGAN, MLPGAN])
def test_a_models_weights_from_its_generator_equal_those_after_the_global_seed(cls):
    torch.manual_seed(5)
    seeded = cls()
    after_global = torch.get_rng_state()
    outside = torch.get_rng_state()
    generator = torch.Generator().manual_seed(5)
    own = cls(generator=generator)
    assert torch.equal(torch.get_rng_state(), outside)  # the global RNG was not drawn from
    assert torch.equal(generator.get_state(), after_global)  # the stream goes on alike
    for (name, a), (_, b) in zip(seeded.state_dict().items(), own.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_users_model_drawing_from_the_global_rng_gets_the_runs_stream(tmp_path):
    """A model class without a ``generator`` parameter is built on the run's stream, handed to
    the global RNG for its construction: its weights equal those after torch.manual_seed."""
    cfg = compose_config(["+experiment=mixture_standard"]).model
    cfg._target_ = "tests.test_run_state.PlainMLP"
    torch.manual_seed(9)
    expected = PlainMLP(**{k: v for k, v in cfg.items() if k != "_target_"})
    after = torch.get_rng_state()
    generator = torch.Generator().manual_seed(9)
    torch.manual_seed(0)
    outside = torch.get_rng_state()
    gan = run_state.build_gan(cfg, generator)
    assert torch.equal(torch.get_rng_state(), outside)
    assert torch.equal(generator.get_state(), after)
    for a, b in zip(expected.state_dict().values(), gan.state_dict().values()):
        assert torch.equal(a, b)


class PlainMLP(MLPGAN):
    """A user's model: no ``generator`` parameter, its weights from torch's global RNG."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


def test_a_cuda_checkpoint_of_an_earlier_release_is_refused_by_name(tmp_path):
    old = {"device_type": "cuda", "rng": {"torch": torch.get_rng_state()}}
    with pytest.raises(ResumeError, match="earlier release.*trainer.resume=never"):
        checkpoint.check_streams(old, tmp_path, "cuda")
    checkpoint.check_streams(old, tmp_path, "cpu")  # a CPU one continues: the same masks
    checkpoint.check_streams({**old, "streams": checkpoint.STREAMS_VERSION}, tmp_path, "cuda")
