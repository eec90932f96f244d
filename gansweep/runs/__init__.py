"""The run-dir lifecycle: what drives a run (``trainer``), its checkpoints and the rules for
continuing one (``checkpoint``, ``extend``), its summary, samples and loggers, the signals that
stop it, the checks at launch (``preflight``), dir names (``dirs``) and re-scoring a finished
run (``rescore``, ``gansweep-eval``)."""
