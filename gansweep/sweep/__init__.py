"""How a sweep's jobs are chosen and run: the successive-halving sweeper (``halving``) and
the packed launcher (``packed``: compatible jobs trained as one fused model in one process).
Imported by Hydra's plugin scan: nothing here imports torch at module level."""
