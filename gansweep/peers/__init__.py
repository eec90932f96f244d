"""Other frameworks' versions of the seed's training step, timed by ``gansweep-bench --peer``.

A peer is written by us from the seed's layer list (docs/study.md); it is a speed yardstick
run in the same process and the same rounds as our step, not a second implementation of the
study (its numerics are not compared).
"""
