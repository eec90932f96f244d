"""``gansweep-bench``: how fast is one training step, and how close to the machine's peak?

    gansweep-bench                                  # both gan_types x both impls
    gansweep-bench --steps 30 --warmup 5 --json outputs/bench/mine.json
    gansweep-bench --impls fast --gan-types coulomb -o trainer.threads=2
    gansweep-bench --peer keras --impls fast --threads 2   # the seed's step in Keras 3 beside ours
    gansweep-bench --impls fast --profile 10        # + per-op table: where a step's time goes

For every (gan_type, model.impl) pair it builds a ``gansweep.runs.trainer.Run`` from the composed
Hydra config (output under a temp dir) and times the trainer's own step, interleaved with the
other pairs' and reported as medians after warm-up; the loop's logging and checkpoint costs
are added as an estimate per step. Also: GFLOP per step and its ratio to a matrix-product
peak measured in the same process in the steps' arithmetic, peak memory of a full-MNIST run,
FID feature throughput, the cost of each evaluation metric. ``--peer keras`` (``pip install
'gansweep[keras-peer]'``) adds the seed's step rebuilt in Keras 3 (``gansweep.bench.keras_peer``)
to the same rounds.

- ``measure``: each measurement on its own;
- ``cli``: the command (arguments, the interleaved rounds, the JSON report);
- ``report``: the report as markdown tables.
"""
