from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from bodhi_shared.crypto import (
    PRIVATE_KEY_FILE,
    PrivateKey,
    PublicKey,
    SealedSecret,
    SecretUnreadable,
    generate_key_pair,
    key_hint,
    keyring,
    load_or_create_key_pair,
    load_private_keys,
    open_sealed,
    rewrap,
    seal,
    write_key_pair,
)

SECRET = "sk-live-" + "s3cr3t" * 6  # planted: must never show up outside open_sealed's return value
ROW = "0b7c6a1e-3f1d-4a57-9d55-2f0c1f6b9e10"


def new_private_key() -> PrivateKey:
    return generate_key_pair()[0]


def test_round_trip() -> None:
    private_key, public_key = generate_key_pair()
    sealed = seal(SECRET, public_key=public_key, binding=ROW)

    assert sealed.key_id == public_key.key_id == private_key.key_id
    assert open_sealed(sealed, private_keys=keyring(private_key), binding=ROW) == SECRET


def test_each_seal_uses_a_fresh_nonce_and_data_key() -> None:
    _, public_key = generate_key_pair()
    first = seal(SECRET, public_key=public_key, binding=ROW)
    second = seal(SECRET, public_key=public_key, binding=ROW)

    assert first.nonce != second.nonce
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext


def test_a_secret_moved_to_another_row_does_not_open() -> None:
    private_key, public_key = generate_key_pair()
    sealed = seal(SECRET, public_key=public_key, binding=ROW)

    with pytest.raises(SecretUnreadable):
        open_sealed(sealed, private_keys=keyring(private_key), binding="another-row")


@pytest.mark.parametrize("offset", [0, 1, 9, 40, 89, 95, 101, -1])
def test_altered_bytes_do_not_open(offset: int) -> None:
    private_key, public_key = generate_key_pair()
    data = bytearray(seal(SECRET, public_key=public_key, binding=ROW).to_bytes())
    data[offset] ^= 0x01

    with pytest.raises(SecretUnreadable):
        open_sealed(SealedSecret.from_bytes(bytes(data)), private_keys=keyring(private_key), binding=ROW)


def test_truncated_bytes_are_unreadable() -> None:
    _, public_key = generate_key_pair()
    data = seal(SECRET, public_key=public_key, binding=ROW).to_bytes()

    with pytest.raises(SecretUnreadable):
        SealedSecret.from_bytes(data[:110])


def test_only_the_matching_private_key_opens() -> None:
    _, public_key = generate_key_pair()
    stranger = new_private_key()
    sealed = seal(SECRET, public_key=public_key, binding=ROW)

    assert not hasattr(public_key, "open")  # a public key holder (the API) has no way to decrypt
    with pytest.raises(SecretUnreadable):
        open_sealed(sealed, private_keys={sealed.key_id: stranger}, binding=ROW)


def test_an_unknown_key_id_is_unreadable_without_revealing_anything() -> None:
    private_key, public_key = generate_key_pair()
    stranger = new_private_key()
    sealed = seal(SECRET, public_key=public_key, binding=ROW)

    with pytest.raises(SecretUnreadable) as caught:
        open_sealed(sealed, private_keys=keyring(stranger), binding=ROW)

    error = caught.value
    assert error.status_code == 500
    assert error.code == "secret_unreadable"
    assert sealed.key_id in error.message
    rendered = error.to_json().decode() + repr(error)
    for material in (SECRET, stranger.to_pem(), private_key.to_pem(), sealed.ciphertext.hex()):
        assert material not in rendered


def test_rewrap_moves_a_secret_to_the_new_key_pair() -> None:
    old_private, old_public = generate_key_pair()
    new_private, new_public = generate_key_pair()
    sealed = seal(SECRET, public_key=old_public, binding=ROW)

    rewrapped = rewrap(sealed, private_keys=keyring(old_private), new_public_key=new_public, binding=ROW)

    assert rewrapped.key_id == new_public.key_id != sealed.key_id
    assert open_sealed(rewrapped, private_keys=keyring(new_private), binding=ROW) == SECRET
    assert open_sealed(sealed, private_keys=keyring(old_private), binding=ROW) == SECRET
    both = keyring(new_private, old_private)
    assert open_sealed(sealed, private_keys=both, binding=ROW) == open_sealed(rewrapped, private_keys=both, binding=ROW)
    with pytest.raises(SecretUnreadable):
        rewrap(sealed, private_keys=keyring(old_private), new_public_key=new_public, binding="another-row")


def test_sealed_secret_survives_bytes_without_carrying_the_plaintext() -> None:
    _, public_key = generate_key_pair()
    sealed = seal(SECRET, public_key=public_key, binding=ROW)
    data = sealed.to_bytes()

    assert SealedSecret.from_bytes(data) == sealed
    assert SECRET.encode() not in data
    assert b"s3cr3t" not in data
    assert len(data) == 1 + 8 + 80 + 12 + len(SECRET) + 16


def test_key_hint_masks_long_and_short_keys() -> None:
    assert key_hint("sk-proj-abcdefghijklmnop1234") == "sk-...1234"
    assert key_hint("abcdefghijkl") == "abc...ijkl"
    assert key_hint("abcdefghijk") == "...jk"
    assert key_hint("abcd") == "****"
    assert key_hint("") == "****"


def test_private_key_file_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    private_path, public_path = write_key_pair(tmp_path / "keys")

    assert private_path.name == PRIVATE_KEY_FILE
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    private_key = PrivateKey.load(private_path.read_text())
    assert PublicKey.load(public_path.read_text()).key_id == private_key.key_id
    with pytest.raises(FileExistsError):
        write_key_pair(tmp_path / "keys")
    assert PrivateKey.load(private_path.read_text()).key_id == private_key.key_id
    assert [p.name for p in sorted((tmp_path / "keys").iterdir())] == [
        "worker_private_key.pem",
        "worker_public_key.pem",
    ]


def test_load_or_create_key_pair_creates_once_then_reuses(tmp_path: Path) -> None:
    private_key, public_key = load_or_create_key_pair(tmp_path)
    again, _ = load_or_create_key_pair(tmp_path)

    assert again.key_id == private_key.key_id == public_key.key_id
    assert stat.S_IMODE((tmp_path / PRIVATE_KEY_FILE).stat().st_mode) == 0o600


def test_keys_load_from_pem_or_base64_and_repr_hides_them() -> None:
    private_key, public_key = generate_key_pair()
    raw_private = private_key._key.private_bytes_raw()

    assert PublicKey.load(public_key.to_pem()).key_id == public_key.key_id
    assert PublicKey.load(public_key.to_base64()).key_id == public_key.key_id
    assert PrivateKey.load(private_key.to_pem()).key_id == private_key.key_id
    assert PrivateKey.load(base64.b64encode(raw_private).decode()).key_id == private_key.key_id
    assert repr(private_key) == f"PrivateKey(key_id={private_key.key_id!r})"
    with pytest.raises(ValueError, match="not an X25519 private key") as caught:
        PrivateKey.load("not-a-key")
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    with pytest.raises(ValueError, match="not an X25519 private key"):
        PrivateKey.load(public_key.to_pem())
    assert raw_private.hex() not in repr(private_key)


def test_load_private_keys_takes_several_keys_from_env_text_and_files(tmp_path: Path) -> None:
    current, previous, oldest = (new_private_key() for _ in range(3))
    env_value = (current.to_pem() + previous.to_pem()).replace("\n", "\\n")  # as a one-line env var
    oldest_file = tmp_path / "oldest.pem"
    oldest_file.write_text(oldest.to_pem())

    keys = load_private_keys(text=env_value, paths=[oldest_file])

    assert set(keys) == {current.key_id, previous.key_id, oldest.key_id}
    sealed = seal(SECRET, public_key=previous.public_key, binding=ROW)
    assert open_sealed(sealed, private_keys=keys, binding=ROW) == SECRET


def test_load_private_keys_takes_base64_keys_and_refuses_none() -> None:
    current, previous = new_private_key(), new_private_key()
    raw = [base64.b64encode(key._key.private_bytes_raw()).decode() for key in (current, previous)]

    assert set(load_private_keys(text=f" {raw[0]}, {raw[1]}\n")) == {current.key_id, previous.key_id}
    with pytest.raises(ValueError, match="no worker private key"):
        load_private_keys(text="")
