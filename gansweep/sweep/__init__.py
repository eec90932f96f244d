"""How a sweep's jobs are run: launchers (``packed``: compatible jobs trained as one fused
model in one process). Imported by Hydra's plugin scan: nothing here imports torch at module
level."""
