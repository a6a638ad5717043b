import io
import json
import math
import pickle
import struct
import zipfile

import pytest
import torch
from safetensors.torch import load as st_load

from fedcommittee.ml import compress as cz
from fedcommittee.ml import models, serialize
from fedcommittee.ml.serialize import WeightsError

MODEL = "mlp"
LOSSY = [s for s in cz.SCHEMES if s != "float32"]


def make_delta(model: str = MODEL, seed: int = 0, scale: float = 0.01) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(shape, generator=g) * scale for k, (shape, _) in models.state_layout(model).items()
    }


@pytest.fixture(scope="module")
def delta():
    return make_delta()


def parts(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    (n,) = struct.unpack("<Q", data[:8])
    return dict(st_load(data)), json.loads(data[8 : 8 + n])["__metadata__"]


# ------------------------------------------------------------------------------------------ schemes


def test_scheme_names_and_parsing():
    assert set(cz.list_schemes()) >= {"float32", "float16", "int8", "topk:0.1", "int8+topk:0.1"}
    for name, s in cz.SCHEMES.items():
        assert s.name == name and cz.get_scheme(name) == s
    assert cz.get_scheme("topk:0.1+int8").name == "int8+topk:0.1"
    assert cz.get_scheme("float32+topk:0.10").name == "topk:0.1"
    assert cz.get_scheme(" INT8-affine ").name == "int8-affine"
    for bad in ["", "int4", "topk:0", "topk:1.5", "topk:nan", "topk:x", "int8+float16", "topk:0.1+topk:0.2"]:
        with pytest.raises(ValueError):
            cz.get_scheme(bad)
    s = cz.get_scheme("topk:0.1")
    assert [s.k(n) for n in (1, 9, 10, 11, 100, 101)] == [1, 1, 1, 2, 10, 11]


# --------------------------------------------------------------------------------------- round trips


def test_float32_is_todays_format(delta):
    data = cz.compress(delta, "float32")
    assert data == serialize.dumps(delta)
    back = cz.decompress(data, MODEL, scheme="float32")
    assert all(torch.equal(back[k], delta[k]) for k in delta)
    assert cz.scheme_of(data).name == "float32"


def test_float16_relative_error(delta):
    back = cz.roundtrip(delta, "float16", MODEL)
    for k in delta:
        assert back[k].dtype == torch.float32 and back[k].shape == delta[k].shape
        err = (back[k] - delta[k]).abs()
        assert bool((err <= delta[k].abs() * 2.0**-11 + 2.0**-24).all()), k


@pytest.mark.parametrize("scheme", ["int8", "int8-affine", "int8+topk:0.1", "int8-affine+topk:0.1"])
def test_int8_max_error_half_a_step(delta, scheme):
    data = cz.compress(delta, scheme)
    tensors, meta = parts(data)
    assert meta["scheme"] == scheme and meta["quant"] == scheme.split("+")[0]
    back = cz.decompress(data, MODEL)
    for k in delta:
        s = float(tensors[f"{k}/scale"][0])
        assert s > 0
        if "topk" in scheme:
            idx = tensors[f"{k}/indices"].long()
            err = (back[k].reshape(-1)[idx] - delta[k].reshape(-1)[idx]).abs().max()
        else:
            err = (back[k] - delta[k]).abs().max()
        assert float(err) <= s / 2 * (1 + 1e-5) + 1e-9, (k, float(err), s)
    if "affine" in scheme:  # zero is exactly representable
        assert all(0 <= int(tensors[f"{k}/zero_point"][0]) <= 255 for k in delta)


def test_int8_symmetric_scale_is_peak_over_127(delta):
    tensors, _ = parts(cz.compress(delta, "int8"))
    for k in delta:
        assert float(tensors[f"{k}/scale"][0]) == pytest.approx(float(delta[k].abs().max()) / 127, rel=1e-6)
        assert int(tensors[f"{k}/values"].abs().max()) == 127


@pytest.mark.parametrize("frac", [0.1, 0.01, 0.5, 1.0])
def test_topk_keeps_exactly_the_largest(delta, frac):
    scheme = f"topk:{frac}"
    data = cz.compress(delta, scheme)
    tensors, meta = parts(data)
    back = cz.decompress(data, MODEL, scheme=scheme)
    for name, t in delta.items():
        flat = t.reshape(-1)
        k = max(1, math.ceil(frac * flat.numel() - 1e-9))
        idx = tensors[f"{name}/indices"]
        assert idx.dtype == torch.int32 and idx.numel() == k
        want = set(torch.topk(flat.abs(), k).indices.tolist())
        assert set(idx.tolist()) == want
        b = back[name].reshape(-1)
        kept = torch.zeros(flat.numel(), dtype=torch.bool)
        kept[idx.long()] = True
        assert torch.equal(b[kept], flat[kept])  # float32 values are exact
        assert bool((b[~kept] == 0).all())
        if k < flat.numel():  # every dropped entry is no larger than every kept one
            assert float(flat[~kept].abs().max()) <= float(flat[kept].abs().min())


def test_topk_ties_are_deterministic():
    d = {k: torch.zeros(shape) for k, (shape, _) in models.state_layout(MODEL).items()}
    data = cz.compress(d, "int8+topk:0.1")
    tensors, _ = parts(data)
    assert tensors["fc2.bias/indices"].tolist() == [0]  # lowest index wins a tie
    back = cz.decompress(data, MODEL)
    assert all(bool((v == 0).all()) for v in back.values())


def test_non_float_parameters_pass_through():
    tensors = {"a": torch.randn(3, 4), "n": torch.tensor([7], dtype=torch.int64)}
    data = cz.compress(tensors, "int8+topk:0.5")
    got, meta = parts(data)
    assert torch.equal(got["n/values"], tensors["n"])
    assert json.loads(meta["tensors"])["n"] == {"dtype": "I64", "shape": [1]}


# -------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("scheme", LOSSY)
def test_bytes_are_deterministic(delta, scheme):
    a = cz.compress(delta, scheme)
    reordered = {k: delta[k].clone() for k in reversed(list(delta))}
    nc = dict(delta, **{"fc1.weight": delta["fc1.weight"].t().contiguous().t()})
    assert cz.compress(reordered, scheme) == a == cz.compress(nc, scheme)
    assert cz.compress(delta, cz.get_scheme(scheme)) == a
    assert len(a) == cz.encoded_size(MODEL, scheme) == cz.compressed_size(delta, scheme)


# sha256 of compress(fixed_delta(), scheme): pinned, so any change of the bytes across processes, hash
# seeds, machines or library versions fails here (the delta is exact in binary and full of |x| ties,
# which exercises the top-k tie-breaking). Checked identical under several PYTHONHASHSEED values.
GOLDEN = {
    "float32": "4b56dc354b01f770b8359a0b05c080c470ed9ff287a725ea011252e39bebc1c5",
    "float16": "1a6c15313ebad74aaf09d1576855f801712088e8ce70e65202c985d7d1c105b1",
    "int8": "79ff319540ce6a30e5971cda2281624a659ea1127f148bd1cea5494816609069",
    "int8-affine": "3588bd94f9123b901eeeae64021d4b303e38ec28d3cbc548b5a55c3f45e27208",
    "topk:0.1": "f5088eb1f3fc2c9323faa9d115d4cebe23c524ed2fd23998ab336866ca8e272a",
    "topk:0.01": "9e1930a7c6051595e7d68176fc6c8a5d069890147c407491f695a53f6ef8436d",
    "float16+topk:0.1": "50fe24e29220d0a2c6cd727149e33b4e43ca16ff4d15bacb75e47ae8309a06a9",
    "int8+topk:0.1": "e2bf1e9a0aa53c80f3c710a4fec8b956b07d5032a25353bd4c9b7e7eeda1a69a",
    "int8+topk:0.01": "b5df102b2e0ef0c89f10704752e9ec9fc9b2097e77d027d49df134947489aec7",
    "int8-affine+topk:0.1": "7c7db87ca34de271ff41480a42013c73ab1f20ff855fc74b39e1b8c9eb997485",
}


def fixed_delta() -> dict[str, torch.Tensor]:
    out = {}
    for j, (k, (shape, _)) in enumerate(models.state_layout(MODEL).items()):
        n = torch.Size(shape).numel()
        q = (torch.arange(n, dtype=torch.int64) * 7919 + 31 * j) % 1000 - 500
        out[k] = (q.float() / 4096).reshape(shape)
    return out


def test_sha256_is_pinned():
    d = fixed_delta()
    assert {s: serialize.sha256_hex(cz.compress(d, s)) for s in cz.SCHEMES} == GOLDEN


# ------------------------------------------------------------------------------------------ sizes


def test_size_ratios():
    m = "mlp-fmnist"  # ~100k parameters: header overhead is negligible
    assert cz.size_ratio(m, "float32") == 1.0
    assert cz.size_ratio(m, "float16") == pytest.approx(0.5, abs=0.01)
    assert cz.size_ratio(m, "int8") == pytest.approx(0.25, abs=0.01)
    assert cz.size_ratio(m, "int8-affine") == pytest.approx(0.25, abs=0.01)
    assert cz.size_ratio(m, "topk:0.1") == pytest.approx(0.2, abs=0.01)  # int32 index + float32 value
    assert cz.size_ratio(m, "int8+topk:0.1") == pytest.approx(0.125, abs=0.01)
    assert cz.size_ratio(m, "int8+topk:0.01") < 0.02


# ----------------------------------------------------------------------------------------- rejects


def rewrite(data: bytes, tensors=None, meta=None) -> bytes:
    t0, m0 = parts(data)
    return cz._write(t0 if tensors is None else tensors, m0 if meta is None else meta)


def test_garbage_pickle_zip_and_truncation(delta):
    data = cz.compress(delta, "int8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", b"x")
    for bad, msg in [
        (b"", "only 0 bytes"),
        (b"\x00" * 3, "only 3 bytes"),
        (pickle.dumps(delta), "pickle"),
        (buf.getvalue(), "pickle / zip"),
        (b"\x1f\x8b" + b"\x00" * 20, "gzip"),
        (struct.pack("<Q", 10**12) + b"{}", "does not fit"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (data[: len(data) - 7], "corrupt|canonical"),
        (data + b"\x00", "corrupt|canonical"),
    ]:
        with pytest.raises(WeightsError, match=msg):
            cz.decompress(bad, MODEL)
    with pytest.raises(WeightsError, match="expected bytes"):
        cz.decompress("text", MODEL)  # type: ignore[arg-type]


def test_rejects_wrong_model_and_scheme(delta):
    data = cz.compress(delta, "int8+topk:0.1")
    with pytest.raises(WeightsError, match="do not match cnn-small"):
        cz.decompress(data, "cnn-small")
    with pytest.raises(WeightsError, match="is required"):
        cz.decompress(data, MODEL, scheme="int8")
    with pytest.raises(WeightsError, match="is required"):
        cz.decompress(serialize.dumps(delta), MODEL, scheme="float16")


def test_rejects_oversize(delta):
    for scheme in ("float32", "int8"):
        data = cz.compress(delta, scheme)
        assert cz.decompress(data, MODEL, max_bytes=len(data))
        with pytest.raises(WeightsError, match="oversize"):
            cz.decompress(data, MODEL, max_bytes=len(data) - 1)


def test_rejects_tampered_names(delta):
    data = cz.compress(delta, "int8")
    t, _ = parts(data)
    renamed = dict(t)
    renamed["fc9.weight/values"] = renamed.pop("fc1.weight/values")
    with pytest.raises(WeightsError, match=r"missing \['fc1.weight/values'\].*fc9"):
        cz.decompress(rewrite(data, renamed), MODEL)
    dropped = {k: v for k, v in t.items() if k != "fc2.bias/scale"}
    with pytest.raises(WeightsError, match="missing"):
        cz.decompress(rewrite(data, dropped), MODEL)
    with pytest.raises(WeightsError, match="unexpected"):
        cz.decompress(rewrite(data, dict(t, extra=torch.zeros(1))), MODEL)
    missing_param = {k: v for k, v in delta.items() if k != "fc2.bias"}
    with pytest.raises(WeightsError, match="declared tensors"):
        cz.decompress(cz.compress(missing_param, "int8"), MODEL)


def test_rejects_wrong_dtype_and_shape(delta):
    data = cz.compress(delta, "int8")
    t, _ = parts(data)
    with pytest.raises(WeightsError, match="dtype"):  # float16 values claimed as int8 scheme
        cz.decompress(rewrite(data, dict(t, **{"fc2.bias/values": t["fc2.bias/values"].half()})), MODEL)
    with pytest.raises(WeightsError, match="shape"):
        cz.decompress(rewrite(data, dict(t, **{"fc2.bias/values": t["fc2.bias/values"][:9]})), MODEL)
    with pytest.raises(WeightsError, match="declared tensors"):  # metadata lies about the original shape
        bad = cz.compress(dict(delta, **{"fc2.bias": torch.zeros(11)}), "int8")
        cz.decompress(bad, MODEL)
    with pytest.raises(WeightsError, match="declared tensors"):
        cz.decompress(cz.compress(dict(delta, **{"fc2.bias": delta["fc2.bias"].double()}), "int8"), MODEL)


def test_rejects_tampered_metadata(delta):
    data = cz.compress(delta, "int8")
    _, meta = parts(data)
    with pytest.raises(WeightsError, match="fields \\['quant'\\]"):
        cz.decompress(rewrite(data, meta=dict(meta, quant="float16")), MODEL)
    with pytest.raises(WeightsError, match="unsupported encoding"):
        cz.decompress(rewrite(data, meta=dict(meta, encoding="other/9")), MODEL)
    with pytest.raises(WeightsError, match="not canonical"):
        cz.decompress(rewrite(data, meta=dict(meta, scheme="INT8")), MODEL)
    with pytest.raises(WeightsError, match="bad scheme"):
        cz.decompress(rewrite(data, meta=dict(meta, scheme="int3")), MODEL)
    with pytest.raises(WeightsError, match="fields"):
        cz.decompress(rewrite(data, meta=dict(meta, note="hi")), MODEL)
    with pytest.raises(WeightsError, match="metadata"):
        cz.decompress(rewrite(data, meta={}), MODEL)


def test_rejects_bad_topk_indices(delta):
    data = cz.compress(delta, "topk:0.1")
    t, _ = parts(data)
    idx = t["fc1.weight/indices"]
    numel = delta["fc1.weight"].numel()
    for bad, msg in [
        (torch.cat([idx[:-1], torch.tensor([numel], dtype=torch.int32)]), "out of range"),
        (torch.cat([torch.tensor([-1], dtype=torch.int32), idx[1:]]), "out of range"),
        (torch.cat([idx[:1], idx[:-1]]), "strictly increasing"),
        (idx.flip(0).contiguous(), "strictly increasing"),
        (idx.long(), "dtype"),
        (idx[:-1].contiguous(), "shape"),
    ]:
        with pytest.raises(WeightsError, match=msg):
            cz.decompress(rewrite(data, dict(t, **{"fc1.weight/indices": bad})), MODEL)


@pytest.mark.parametrize("scheme", ["float16", "topk:0.1", "float16+topk:0.1"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_rejects_non_finite_values(delta, scheme, bad):
    data = cz.compress(delta, scheme)
    t, _ = parts(data)
    v = t["fc1.bias/values"].clone()
    v[0] = bad
    with pytest.raises(WeightsError, match="NaN or Inf"):
        cz.decompress(rewrite(data, dict(t, **{"fc1.bias/values": v})), MODEL)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_rejects_bad_scale(delta, bad):
    data = cz.compress(delta, "int8-affine")
    t, _ = parts(data)
    with pytest.raises(WeightsError, match="scale"):
        cz.decompress(rewrite(data, dict(t, **{"fc1.bias/scale": torch.tensor([bad])})), MODEL)


def test_rejects_overflowing_decode_and_int8_min(delta):
    data = cz.compress(delta, "int8")
    t, _ = parts(data)
    huge = dict(t, **{"fc1.bias/scale": torch.tensor([3e38])})
    with pytest.raises(WeightsError, match="decodes to NaN or Inf"):
        cz.decompress(rewrite(data, huge), MODEL)
    v = t["fc1.bias/values"].clone()
    v[0] = -128
    with pytest.raises(WeightsError, match="-128"):
        cz.decompress(rewrite(data, dict(t, **{"fc1.bias/values": v})), MODEL)


def test_rejects_non_canonical_bytes(delta):
    for scheme in ("float32", "int8"):
        data = cz.compress(delta, scheme)
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        head = json.dumps(header, indent=1).encode()  # same content, different formatting
        head += b" " * (-len(head) % 8)
        with pytest.raises(WeightsError, match="not canonical"):
            cz.decompress(struct.pack("<Q", len(head)) + head + data[8 + n :], MODEL)


def test_compress_refuses_unrepresentable(delta):
    with pytest.raises(WeightsError, match="NaN or Inf"):
        cz.compress(dict(delta, **{"fc1.bias": torch.full((64,), float("nan"))}), "int8")
    with pytest.raises(WeightsError, match="float16"):
        cz.compress(dict(delta, **{"fc1.bias": torch.full((64,), 1e6)}), "float16")


# --------------------------------------------------------------------------------- error feedback


def test_error_feedback_conserves_mass():
    ef = cz.ErrorFeedback("int8+topk:0.01", MODEL)
    deltas = [make_delta(seed=s) for s in range(3)]
    sent = [cz.decompress(ef.compress(d), MODEL) for d in deltas]
    for k in deltas[0]:
        total_in = sum(d[k].double() for d in deltas)
        total_out = sum(s[k].double() for s in sent) + ef.residual[k].double()
        assert torch.allclose(total_in, total_out, atol=1e-6)
