"""Property tests of the weights loader (``fedcommittee.ml.serialize``), which treats its input as hostile.

* arbitrary bytes never load: ``loads`` raises WeightsError, never anything else;
* random valid states round-trip bit for bit, with a stable sha256;
* a single-byte change of a valid file either fails with WeightsError or gives another sha256, and a
  change in the tensor data is never silently dropped;
* arbitrary JSON headers (names right, entries anything): WeightsError or a state of the right layout
  (these once raised TypeError / RecursionError; the loader now type-checks entries, bounds the
  header size and catches RecursionError).
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fedcommittee.ml import models
from fedcommittee.ml.serialize import WeightsError, dumps, loads, state_hash

MODEL = "mlp"
LAYOUT = models.state_layout(MODEL)
GOOD = dumps(models.initial_state(MODEL, 0))
HEADER_END = 8 + struct.unpack("<Q", GOOD[:8])[0]

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_with_header(header: object, payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


def assert_layout(state: dict) -> None:
    assert list(state) == sorted(LAYOUT)
    for name, (shape, dtype) in LAYOUT.items():
        assert tuple(state[name].shape) == shape and state[name].dtype == dtype


# ------------------------------------------------------------------------------------------ random bytes


@PROPS
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x80\x04\x95")  # pickle protocol 4 opening
@example(b"PK\x03\x04" + b"\x00" * 60)  # torch.save's zip
def test_random_bytes_never_load(data):
    with pytest.raises(WeightsError):
        loads(data, MODEL)


@PROPS
@given(st.binary(max_size=2048))
def test_random_bytes_behind_a_fitting_header_length_never_load(body):
    """The length prefix fits, so the loader gets as far as parsing the header."""
    with pytest.raises(WeightsError):
        loads(struct.pack("<Q", len(body)) + body, MODEL)


# ------------------------------------------------------------------------------------------ round trips

finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def valid_states(draw):
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 1e3, 1e30]))
    state = {
        name: torch.randn(shape, generator=gen, dtype=dtype) * scale
        for name, (shape, dtype) in LAYOUT.items()
    }
    # A few exact values anywhere, extremes and signed zeros included.
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(sorted(LAYOUT)))
        flat = state[name].view(-1)
        flat[draw(st.integers(0, flat.numel() - 1))] = draw(finite32)
    return state


@PROPS
@given(valid_states())
def test_valid_states_round_trip(state):
    data = dumps(state)
    back = loads(data, MODEL)
    assert_layout(back)
    for name in LAYOUT:
        # bit for bit (torch.equal would call -0.0 equal to 0.0)
        assert back[name].view(torch.int32).equal(state[name].view(torch.int32)), name
    assert dumps(back) == data
    assert state_hash(back) == state_hash(state) == sha(data)


# ------------------------------------------------------------------------------------------ mutations


@PROPS
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
@example(0, 1)  # header length
@example(HEADER_END - 1, 0x09)  # header padding: a space becomes a tab
@example(HEADER_END, 0x01)  # first tensor byte
@example(len(GOOD) - 1, 0x80)  # last tensor byte: sign bit of the last float
def test_single_byte_mutations_fail_or_change_the_hash(pos, delta):
    mutated = bytearray(GOOD)
    mutated[pos] ^= delta
    mutated = bytes(mutated)
    try:
        back = loads(mutated, MODEL)
    except WeightsError:
        return
    assert sha(mutated) != sha(GOOD)
    assert_layout(back)
    if pos >= HEADER_END:  # a change in the tensor data must show in the loaded tensors
        original = loads(GOOD, MODEL)
        changed = [n for n in LAYOUT if not back[n].view(torch.int32).equal(original[n].view(torch.int32))]
        assert len(changed) == 1, changed


# ------------------------------------------------------------------------------------------ hostile headers

json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | finite32 | st.text(max_size=6)
json_value = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=6,
)
dtype_names = st.sampled_from(["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "f32", ""])
shapes = st.lists(st.integers(-2, 70), max_size=3) | st.sampled_from([list(s) for s, _ in LAYOUT.values()])
offsets = st.lists(st.integers(-10, 20000), min_size=2, max_size=2)
entries = st.fixed_dictionaries(
    {"dtype": dtype_names | json_value, "shape": shapes | json_value, "data_offsets": offsets | json_value}
)


@settings(PROPS, report_multiple_bugs=False)
@given(st.fixed_dictionaries({name: entries | json_value for name in LAYOUT}), st.binary(max_size=512))
@example({name: {"dtype": "F32", "shape": 5, "data_offsets": [0, 4]} for name in LAYOUT}, b"\x00" * 64)
def test_arbitrary_headers_give_weights_error_or_a_valid_state(header, payload):
    try:
        state = loads(file_with_header(header, payload), MODEL)
    except WeightsError:
        return
    assert_layout(state)


@pytest.mark.parametrize(
    "entry",
    [{"dtype": ["F32"], "shape": [10]}, {"dtype": {}, "shape": [10]}, {"dtype": "F32", "shape": None}],
    ids=["dtype-list", "dtype-object", "shape-null"],
)
def test_malformed_header_entries_give_weights_error(entry):
    with pytest.raises(WeightsError):
        loads(file_with_header(dict.fromkeys(LAYOUT, entry), b"\x00" * 64), MODEL)


def test_deeply_nested_header_gives_weights_error():
    body = b"[" * 100_000
    with pytest.raises(WeightsError):
        loads(struct.pack("<Q", len(body)) + body, MODEL)
