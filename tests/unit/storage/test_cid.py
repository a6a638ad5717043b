import pytest

from fedcommittee.storage.errors import InvalidCid
from fedcommittee.storage.ipfs import is_valid_cid, validate_cid

from .fakes import raw_cid

VALID = [
    # CIDv0 (dag-pb, sha2-256), e.g. the classic IPFS readme directory.
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
    # CIDv1 base32 as printed by Kubo 0.42 (raw leaf, and a dag-pb file of several blocks).
    "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
    "bafybeihmngsxnn55b3x5jspoglp6qgh47wh74wagtlajlk5w4lrsapae2i",
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    # identity multihash (inline data) CIDv1
    "bafkqaaa",
]

INVALID = [
    "",
    "Qm",
    "Qm123",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd0",  # '0' is not base58btc
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdGG",  # 47 characters
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdl",  # 'l' is not base58btc
    "BAFYBEIGDYRZT5SFP7UDM7HU76UH7Y26NF3EFUYLQABF3OCLGTQY55FBZDI",  # upper-case base32
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd",  # truncated digest
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdiaa",  # trailing bytes
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd1",  # '1' not in base32
    "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7",  # base58 CIDv1: refused by policy
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi&arg=x",  # query injection
    "../../etc/passwd",
    " bafkqaaa",
    "baaaaaaa",  # version 0 inside a v1 multibase string
    "b" + "a" * 600,
]


@pytest.mark.parametrize("cid", VALID)
def test_accepts_real_cids(cid):
    assert validate_cid(cid) == cid
    assert is_valid_cid(cid)


@pytest.mark.parametrize("cid", INVALID)
def test_rejects_bad_cids(cid):
    assert not is_valid_cid(cid)
    with pytest.raises(InvalidCid, match="invalid CID"):
        validate_cid(cid)


@pytest.mark.parametrize("value", [None, 42, b"bafkqaaa"])
def test_rejects_non_strings(value):
    with pytest.raises(InvalidCid, match="expected str"):
        validate_cid(value)


def test_invalid_cid_is_a_value_error():
    with pytest.raises(ValueError):
        validate_cid("nope")


def test_fake_raw_cid_matches_kubo():
    # Kubo 0.42 `add --cid-version=1 --raw-leaves` of b"hello world"
    assert raw_cid(b"hello world") == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
