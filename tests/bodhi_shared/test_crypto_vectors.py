"""Known-answer tests of the key sealing: bytes sealed once and committed here must keep opening.

Stored provider keys are these bytes, in ``api_models.sealed_key``. A change to the format, the key derivation,
the associated data or the key id that would leave stored keys unreadable fails here first. The vectors were
made once with ``bodhi_shared.crypto.seal`` (and ``rebind_legacy``) and the fixed private key below; never
regenerate them to make a failing test pass: write a migration path for the old bytes instead.
"""

from __future__ import annotations

import base64

import pytest

from bodhi_shared.crypto import (
    LEGACY_VERSION,
    REBOUND_VERSION,
    PrivateKey,
    SealedSecret,
    SecretUnreadable,
    key_binding,
    keyring,
    open_bound,
    open_sealed,
    seal,
)

# A fixed X25519 private key: the raw bytes 0x01..0x20, base64 (the form BODHI_WORKER_PRIVATE_KEY accepts).
PRIVATE_KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
KEY_ID = "aaa8fff703b50b22"
ROW = "5f0c1f6b-9e10-4a57-9d55-0b7c6a1e3f1d"
BASE_URL = "https://api.provider.example/v1"
SECRET = "sk-known-answer-0123456789abcdef"

# Version 2: seal(SECRET, public_key=..., binding=key_binding(ROW, BASE_URL)).
SEALED_V2 = (
    "Aqqo//cDtQsiekzFZHkuonQ+B7f87EdCYkeFtQn7mt8j4TAkXm1sKmS9fyO7IDNzAZ6ypr5zSXy2n4FCVPM0otPg5EhvwdrekiJmaDYZM4RD"
    "7emMg8z4z3+hXm74oYpbCYLdFaj8QTAGhGYjCZ8JZDkSXOTgI0EEWz9uCkriWebl4Y1K3ugdOWgZENkRIczyIvQbq+0="
)
# Version 1 (legacy, bound to the row alone): seal(SECRET, public_key=..., binding=ROW, version=LEGACY_VERSION).
SEALED_V1 = (
    "Aaqo//cDtQsifuj8kvu/DUcWUsrBRadWs2qAhec1TJHUvKzgSigbcCeKcphxmph89NWZxgJkRhVigEPd9jAj00tJ4au8ivbEERcCuYPrpo0N"
    "dQUPp3hSBjaf5Zxdr99ni7ymIkmGBWCajwt95pUELmgeYHFvDmZLffNL0ud7Zfh+aaWpGfzxC/RExcUrqSU0pMNq9W4="
)
# Version 3: rebind_legacy(SEALED_V1, public_key=..., row=ROW, base_url=BASE_URL), as the API re-binds old rows.
SEALED_V3 = (
    "A6qo//cDtQsiedX6zsG4pWWHaWMOfLbntgvkKgokCZnCIFc03koxzWIfWIm5z0TRMExw5gvED+XJ4O9mPSzlMGeigVgDbIk3mzH1CrisYEjW"
    "oDL5pGfT3aBbbVHw9hefHiOw0i711fTMp3Bk8dYJU1/TAAXM/eUaEZR+IRBMRQrrbi73G/CLi5JiQebDXdgbohDO9YZmQ+NAiHO89KW7Ngvl"
    "uPJkF2jYgUIQ1EhJEYs63oPOpq29NJKyG6c90HRc+SIjpPmkuno0JeEda5IyWOEtk5COxl71uY72zgaqeDf70VFluVu6NgwY81IbTz/GEEHL"
    "6K1oC/8gb8bH8PoUfMLAPIHgzbrUJcC81sPEWZy21MkmJ1J4vMiLzB8F23jZ+ZKciijX05Q3/0BkEqSkyt14Y/nWpIs0WVqMBeU="
)


def private_key() -> PrivateKey:
    return PrivateKey.load(PRIVATE_KEY)


def stored(vector: str) -> SealedSecret:
    return SealedSecret.from_bytes(base64.b64decode(vector))


def test_the_fixed_private_key_has_its_key_id() -> None:
    # Each stored secret names the key that opens it by this id: a change in how it is derived orphans them all.
    assert private_key().key_id == private_key().public_key.key_id == KEY_ID


@pytest.mark.parametrize(("vector", "version"), [(SEALED_V1, LEGACY_VERSION), (SEALED_V2, 2), (SEALED_V3, 3)])
def test_stored_bytes_parse_and_serialize_unchanged(vector: str, version: int) -> None:
    sealed = stored(vector)

    assert sealed.version == version
    assert sealed.key_id == KEY_ID
    assert sealed.to_bytes() == base64.b64decode(vector)


def test_a_version_2_key_opens_for_its_row_and_url() -> None:
    keys = keyring(private_key())

    assert open_bound(stored(SEALED_V2), private_keys=keys, row=ROW, base_url=BASE_URL) == SECRET
    assert open_sealed(stored(SEALED_V2), private_keys=keys, binding=key_binding(ROW, BASE_URL)) == SECRET


def test_a_version_2_key_does_not_open_for_another_url_or_row() -> None:
    keys = keyring(private_key())

    with pytest.raises(SecretUnreadable):
        open_bound(stored(SEALED_V2), private_keys=keys, row=ROW, base_url="https://attacker.example/v1")
    with pytest.raises(SecretUnreadable):
        open_bound(stored(SEALED_V2), private_keys=keys, row="another-row", base_url=BASE_URL)


def test_a_legacy_version_1_key_opens_for_its_row_and_is_refused_bare_by_open_bound() -> None:
    keys = keyring(private_key())

    assert open_sealed(stored(SEALED_V1), private_keys=keys, binding=ROW) == SECRET
    with pytest.raises(SecretUnreadable, match="not yet bound"):
        open_bound(stored(SEALED_V1), private_keys=keys, row=ROW, base_url=BASE_URL)


def test_a_rebound_version_3_key_opens_for_its_row_and_url() -> None:
    keys = keyring(private_key())

    assert open_bound(stored(SEALED_V3), private_keys=keys, row=ROW, base_url=BASE_URL) == SECRET
    with pytest.raises(SecretUnreadable):
        open_bound(stored(SEALED_V3), private_keys=keys, row=ROW, base_url="https://attacker.example/v1")


def test_what_is_sealed_today_has_the_stored_layout() -> None:
    # Not a fixed vector (every seal is fresh), but today's output must look like the stored ones, byte for byte
    # where they are not random: version, key id, and the lengths of each part.
    fresh = seal(SECRET, public_key=private_key().public_key, binding=key_binding(ROW, BASE_URL)).to_bytes()
    known = base64.b64decode(SEALED_V2)

    assert len(fresh) == len(known)
    assert fresh[:9] == known[:9]  # version 2, then the 8 bytes of the key id
    assert base64.b64decode(SEALED_V3)[0] == REBOUND_VERSION
