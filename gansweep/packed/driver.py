"""Training a group of compatible runs as one fused model (``hydra/launcher=packed``).

Each run is a ``gansweep.runs.trainer.Run`` (its dir, lock, checkpoints, evaluation, summary,
loggers) around its ``RunState`` (what it is); ``PackedRuns`` trains their batches in one
fused step (``gansweep.packed.step``), drawing each run's data order, z and Dropout masks
from its own generators, in its own order (the numbers of the run alone). The runs' own
networks and optimisers hold their state only at the points where something reads it: the
pack writes it back (``sync``) before a checkpoint, an evaluation, a stop or the end, and
builds itself again from them when a run leaves (finished, diverged).

A group of one run, or a run the fused model does not implement, trains as
``gansweep.runs.trainer.run`` trains it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig

from gansweep import artifacts
from gansweep.runs import extend, summary
from gansweep.runs.checkpoint import Diverged
from gansweep.gan.rng import RunDropout
from gansweep.gan.models import GAN
from gansweep.gan.objectives import CoulombGAN, StandardGAN
from gansweep.packed.models import auto_conv_impl, pack
from gansweep.packed.objectives import PackedCoulomb, PackedStandard
from gansweep.packed.optim import PackedKerasAdam
from gansweep.packed.step import Pack, packed_train_step
from gansweep.runs.signals import Interrupted, on_stop_signals
from gansweep.runs.job import run_when_free
from gansweep.runs.trainer import Run, configure_process

log = logging.getLogger(__name__)


def _dropout_of(net: torch.nn.Module) -> RunDropout | None:
    layers = [m for m in net.modules() if isinstance(m, RunDropout)]
    if len(layers) > 1:
        raise ValueError("a packed D has at most one Dropout layer")
    return layers[0] if layers and 0.0 < layers[0].p < 1.0 else None


class PackedRuns:
    """The fused model, optimisers and objective of N runs' states, and the way back."""

    def __init__(self, states: list, conv_impl: str = "grouped", cuda_graphs: bool = False):
        self.states = states
        first = states[0]
        self.device = first.device
        self.gans = [GAN(s.g, s.d, s.latent_dim) for s in states]
        if conv_impl == "auto":
            conv_impl = auto_conv_impl(self.gans[0], self.device)
        self.model = pack(self.gans, conv_impl).to(self.device)
        self.opt_d = PackedKerasAdam.from_single(list(self.model.discriminator.parameters()),
                                                 [s.opt_d for s in states])
        self.opt_g = PackedKerasAdam.from_single(list(self.model.generator.parameters()),
                                                 [s.opt_g for s in states])
        objectives = [s.objective for s in states]
        if all(isinstance(o, CoulombGAN) for o in objectives):
            objective = PackedCoulomb(objectives).to(self.device)
        elif all(isinstance(o, StandardGAN) for o in objectives):
            objective = PackedStandard(objectives)
        else:
            raise ValueError("a pack holds one loss family")
        self.step_pack = Pack(self.model.generator, self.model.discriminator, self.opt_d,
                              self.opt_g, objective, first.parts.fake_mode,
                              first.parts.autocast)
        self.dropouts = [_dropout_of(s.d) for s in states]
        self.graphs = cuda_graphs and self.device.type == "cuda"
        self.graphed: GraphedStep | None = None

    def _state_tensors(self) -> list[torch.Tensor]:
        """What a step changes in place: parameters, buffers, optimiser moments and counts."""
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        for opt in (self.opt_d, self.opt_g):
            tensors += [opt.iterations] + [opt.state[p][k] for p in opt.params
                                           for k in ("m", "v")]
        return tensors

    def _step(self, real, z_fake, z_g, *rest):
        """``packed_train_step`` on flat tensors (a CUDA graph's static inputs)."""
        masks, steps = (rest[:2], rest[2]) if len(rest) == 3 else (None, rest[0])
        return packed_train_step(self.step_pack, real, z_fake, z_g, masks, steps)

    def _masks(self, batch: int):
        if self.dropouts[0] is None:
            return None
        like_d = torch.empty(2 * batch, 256, device=self.device)
        like_g = torch.empty(batch, 256, device=self.device)
        pairs = [(layer.mask(like_d), layer.mask(like_g)) for layer in self.dropouts]
        return torch.stack([d for d, _ in pairs]), torch.stack([g for _, g in pairs])

    def train_batch(self) -> list[dict]:
        """One batch of every run, as ``RunState.train_batch`` returns it for each."""
        reals, z_fake, z_g, logged = [], [], [], []
        for s in self.states:
            reals.append(s.data[s.batch_index()])
            z_fake.append(s.noise())
            z_g.append(s.noise())
            logged.append({"lr_d": s.opt_d.current_lr(), "lr_g": s.opt_g.current_lr(),
                           "eps": s.objective.eps(s.counters.step)})
        steps = torch.tensor([s.counters.step for s in self.states], device=self.device)
        inputs = (torch.stack(reals), torch.stack(z_fake), torch.stack(z_g),
                  *(self._masks(reals[0].shape[0]) or ()), steps)
        if self.graphs and self.graphed is None:
            self.graphed = GraphedStep(self._step, inputs, self._state_tensors())
        d_loss, g_loss, fakes = (self.graphed or self._step)(*inputs)
        for s in self.states:  # the runs' own counts (host ints: their logged lr')
            s.opt_d.iterations += 1
            s.opt_g.iterations += 1
        return [{"d_loss": d_loss[i], "g_loss": g_loss[i], "fakes": fakes[i], **logged[i]}
                for i in range(len(self.states))]

    @torch.no_grad()
    def sync(self) -> None:
        """Write every run's weights, buffers and optimiser state back into its own networks
        and optimisers (what its checkpoint, evaluation and pictures read)."""
        self.model.unstack(self.gans)
        for i, s in enumerate(self.states):
            s.opt_d.load_state_dict(self.opt_d.single_state_dict(i))
            s.opt_g.load_state_dict(self.opt_g.single_state_dict(i))


def _due_before(r: Run) -> bool:
    """Whether ``before_batch`` will read the run's weights (a checkpoint or a stop)."""
    return r.stop_signal is not None or r.checkpoint_due(r.counters.batch)


def _due_after(r: Run) -> bool:
    """Whether ``after_batch`` will read the run's G (the epoch's last batch: evaluation)."""
    return r.counters.batch == r.batches_per_epoch - 1


def _settled(value) -> Callable[[], dict]:
    """A job's outcome as ``gansweep.train.job_outcome`` takes it: its summary, or raising
    what stopped it."""
    def outcome() -> dict:
        if isinstance(value, BaseException):
            raise value
        return value
    return outcome


def train_group(jobs: list[tuple[DictConfig, Path]], conv_impl: str = "auto",
                cuda_graphs: bool = True) -> list[Callable[[], dict]]:
    """Train the runs of ``jobs`` (config, dir) together; one outcome per job, in order.

    A job whose dir another process holds (another launch into the same sweep training it)
    is not a failed job: once the others are trained and their locks released, it waits for
    that holder and runs again, as under the other launchers (``run_when_free``):
    a run the holder finished is skipped and its result returned, one it left is resumed."""
    if len(jobs) == 1:
        cfg, out_dir = jobs[0]
        return [lambda: run_when_free(cfg, out_dir)]
    results: list = [None] * len(jobs)
    busy: list[int] = []
    with contextlib.ExitStack() as held:
        runs: dict[int, Run] = {}
        device = None
        for i, (cfg, out_dir) in enumerate(jobs):
            if any(out_dir == other for _, other in jobs[:i]):  # one run listed twice (same
                busy.append(i)  # identity): its result once the first is trained
                continue
            try:
                artifacts.ensure_writable(out_dir)
                try:
                    held.enter_context(artifacts.RunLock(out_dir))
                except artifacts.RunLocked as exc:
                    _say_busy(out_dir, exc)
                    busy.append(i)
                    continue
                done = summary.finished(cfg, out_dir)
                if done is not None:
                    log.info("%s already finished this config; skipping", out_dir)
                    results[i] = done
                    continue
                extend.prepare(cfg, out_dir)
                if device is None:
                    device = configure_process(cfg)
                runs[i] = Run(cfg, out_dir)
            except Exception as exc:  # noqa: BLE001 - recorded by job_outcome, as alone
                results[i] = exc
        results = _train_packed(runs, results, conv_impl, cuda_graphs)
    if busy:  # our locks are released: a job listed twice in this launch waits for nobody
        for i in busy:
            artifacts.RunLock(jobs[i][1]).wait()
        again = train_group([jobs[i] for i in busy], conv_impl, cuda_graphs)
        for i, outcome in zip(busy, again):
            results[i] = _outcome_value(outcome)
    return [_settled(r) for r in results]


def _say_busy(out_dir: Path, exc: artifacts.RunLocked) -> None:
    holder = exc.holder
    log.warning("job dir %s is in use by pid %s on host %s (since %s): waiting for it to "
                "finish, then using its result", out_dir, holder.get("pid", "?"),
                holder.get("host", "?"), holder.get("since", "?"))


def _outcome_value(outcome: Callable[[], dict]):
    """An outcome's summary, or the exception it raises (to be raised again by ``_settled``)."""
    try:
        return outcome()
    except Exception as exc:  # noqa: BLE001 - raised again where job_outcome reads it
        return exc


def _train_packed(runs: dict[int, Run], results: list, conv_impl: str,
                  cuda_graphs: bool) -> list:
    """Start the runs, train the unfinished ones packed until each is done, diverged or
    stopped, and finish each as soon as it is done. Fills ``results`` (summary or error)."""
    started: dict[int, Run] = {}
    for i, r in runs.items():
        try:
            r.start()
            started[i] = r
        except Exception as exc:  # noqa: BLE001 - recorded by job_outcome, as alone
            results[i] = exc
    active = dict(started)

    def stop_all(signum, frame):
        for r in active.values():
            r.request_stop(signum)

    try:
        with on_stop_signals(stop_all):
            while active:
                members = [i for i, r in active.items() if not r.done]
                for i in [i for i in active if i not in members]:  # resumed when already done
                    results[i] = _finish(active.pop(i))
                    if isinstance(results[i], Interrupted):
                        stop_all(results[i].signum, None)
                if not members:
                    break
                packed = PackedRuns([active[i].state for i in members], conv_impl, cuda_graphs)
                log.info("training %d runs as one fused model", len(members))
                while set(active) == set(members):
                    _train_round(packed, members, active, results)
                packed.sync()  # who leaves takes its state; who stays is packed again
                for i in members:
                    if i not in active and results[i] is None:  # done: its final checkpoint
                        results[i] = _finish(started[i])  # and evaluation now
                    if isinstance(results[i], Interrupted):  # a stop during its final
                        stop_all(results[i].signum, None)  # evaluation stops the others too
    except Interrupted as exc:
        for i, r in active.items():
            r.close()
            results[i] = exc
    except BaseException:
        for r in active.values():
            r.close()
        raise
    return results


def _train_round(packed: PackedRuns, members: list[int], active: dict[int, Run],
                 results: list) -> None:
    """One batch of every member: what is due before it, the fused step, what is due after
    it. A run that diverges, fails or finishes leaves ``active`` (the others carry on, as
    each would alone); a stop raises ``Interrupted`` once every run has its checkpoint."""
    if any(_due_before(active[i]) for i in members):
        packed.sync()
    stopped = []
    for i in members:
        try:
            active[i].before_batch()
        except Interrupted as exc:
            stopped.append(exc)
        except Exception as exc:  # noqa: BLE001 - e.g. a checkpoint finding it diverged
            _leave(i, active, results, exc)
    if stopped:
        for r in active.values():
            r.status("interrupted", error=str(stopped[0]), last_sample=r.last_sample())
        raise stopped[0]
    if set(active) != set(members):  # one left before the step: the pack is built again
        return
    outs = packed.train_batch()
    if any(_due_after(active[i]) for i in members):
        packed.sync()
    for i, out in zip(members, outs):
        r = active[i]
        try:
            r.after_batch(out)
        except Interrupted as exc:  # came in its last batch: checkpointed, done; the
            r.status("interrupted", error=str(exc), last_sample=r.last_sample())
            _leave(i, active, results, exc)  # others stop at their next batch boundary
            continue
        except Exception as exc:  # noqa: BLE001 - diverged, or failed as it would alone
            _leave(i, active, results, exc)
            continue
        if r.done:
            del active[i]


def _leave(i: int, active: dict[int, Run], results: list, exc: Exception) -> None:
    """Run ``i`` stops alone: diverged (its summary says so), failed or stopped (the error is
    its outcome, recorded by job_outcome as for a run alone)."""
    r = active.pop(i)
    results[i] = r.diverged(exc) if isinstance(exc, Diverged) else exc
    r.close()


def _finish(r: Run):
    """The final checkpoint, evaluation and summary of a run that is done."""
    r.close()
    try:
        return r.finish()
    except Exception as exc:  # noqa: BLE001 - recorded by job_outcome, as alone
        return exc


class GraphedStep:
    """The fused step captured once in a CUDA graph and replayed: the step's ~400 kernel
    launches become one, the launch-bound step's cost on a GPU. Inputs are copied into
    static buffers before each replay; the outputs are static tensors that the next replay
    overwrites (the caller reads them before the next step, as ``after_batch`` does).

    Capture records kernels without running them, but the warm-up it needs (a few eager
    steps on a side stream, so that autograd and the allocator settle) trains: the pack's
    parameters, buffers and optimiser state are copied before and put back after, in place
    (the graph holds their addresses)."""

    WARMUP = 3

    def __init__(self, step: Callable, inputs: tuple[torch.Tensor, ...], state: list[torch.Tensor]):
        self.static = [x.clone() for x in inputs]
        saved = [t.detach().clone() for t in state]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                step(*self.static)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = step(*self.static)
        with torch.no_grad():
            for tensor, value in zip(state, saved):
                tensor.copy_(value)

    def __call__(self, *inputs: torch.Tensor):
        for buffer, value in zip(self.static, inputs):
            buffer.copy_(value)
        self.graph.replay()
        return self.outputs
