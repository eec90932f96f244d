"""Job identities are stable: the hash that names a job dir (gansweep.identity.identity_hash)
of the shipped presets is pinned, so moving a class, a module or a default can never orphan
existing runs (a relaunch would train again) or hand one config's dir to another. The values
are those of the release whose runs are in the field; a change here must say in its commit
how old dirs are handled."""

from __future__ import annotations

import pytest

from gansweep.identity import fingerprint, identity, identity_hash
from tests.helpers import compose_config

PINNED = {
    "+experiment=seed_standard": "321166a8",
    "+experiment=seed_coulomb_1": "9ccc3b32",
    "+experiment=seed_coulomb_1 trainer.epochs=5 fid=lenet fid.every_epochs=1 seed=1": "ff33dce5",
    "+experiment=mixture_coulomb": "39d57739",
    "+experiment=seed_coulomb_4 fid=inception fid.precision=bf16": "105fd37e",
    "+experiment=seed_standard trainer.precision=bf16": "188e4afa",
}


@pytest.mark.parametrize("overrides", sorted(PINNED))
def test_the_shipped_presets_keep_their_job_dir_hashes(overrides):
    assert identity_hash(compose_config(overrides.split())) == PINNED[overrides]


def test_what_does_not_change_the_numbers_is_not_in_the_identity():
    base = compose_config(["+experiment=seed_coulomb_1"])
    same = compose_config(["+experiment=seed_coulomb_1", "dataset.root=/elsewhere",
                           "model.impl=reference", "fid.batch_size=7", "trainer.threads=1",
                           "trainer.progress=off", "fid.cache_dir=/tmp/x",
                           "trainer.log_every=5"])
    assert identity(same) == identity(base)
    assert "trainer.epochs" in identity(base) and "trainer.epochs" not in fingerprint(base)


def test_placement_is_in_no_fingerprint_or_identity():
    """identity.PLACEMENT (a table never splits runs on them) must really be left out: each
    key is either in no fingerprint or identity group at all, or dropped from its group."""
    from gansweep import identity as ident
    covered = ident.FINGERPRINT_KEYS + ident.IDENTITY_KEYS
    dropped = {**ident.NOT_FINGERPRINTED, **ident.NOT_IN_IDENTITY}
    for key in ident.PLACEMENT:
        group, name = key.split(".", 1)
        assert key not in covered, key
        assert group not in covered or name in dropped.get(group, ()), key
