"""The GAN maths of a run: what a run *is* (``state.RunState``), apart from what drives it."""
