"""Reading the rich gRPC status (``google.rpc.Status``) that the Fabric gateway attaches to its errors.

The gateway puts ``gateway.ErrorDetail`` messages in the status details, sent as the
``grpc-status-details-bin`` trailing metadata. ``google.rpc.Status`` is not shipped by protobuf or the
Fabric protos, so it is declared here in a private descriptor pool (code=1, message=2, details=3 repeated
google.protobuf.Any).
"""

from __future__ import annotations

import grpc
from fabric_protos.gateway import gateway_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

from .errors import ErrorDetail

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _build_status_class():
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    f = descriptor_pb2.FileDescriptorProto(
        name="fedcommittee/google_rpc_status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    msg = f.message_type.add(name="Status")
    fdp = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="code", number=1, type=fdp.TYPE_INT32, label=fdp.LABEL_OPTIONAL)
    msg.field.add(name="message", number=2, type=fdp.TYPE_STRING, label=fdp.LABEL_OPTIONAL)
    msg.field.add(
        name="details",
        number=3,
        type=fdp.TYPE_MESSAGE,
        label=fdp.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


RpcStatus = _build_status_class()


def encode_status(code: grpc.StatusCode, message: str, details: list[gateway_pb2.ErrorDetail]) -> bytes:
    """Serialize a google.rpc.Status with ErrorDetail entries (used by tests' fake gateway)."""
    st = RpcStatus(code=code.value[0], message=message)
    for d in details:
        a = st.details.add()
        a.Pack(d)
    return st.SerializeToString()


def error_details(err: grpc.RpcError) -> tuple[ErrorDetail, ...]:
    """Extract the gateway ErrorDetail entries from a failed call; empty when there are none or on garbage."""
    try:
        trailers = err.trailing_metadata() or ()
    except Exception:  # not a grpc.Call (e.g. a channel-level failure)
        return ()
    out: list[ErrorDetail] = []
    for key, value in trailers:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        st = RpcStatus()
        try:
            st.ParseFromString(value)
        except Exception:
            continue
        for any_msg in st.details:
            d = gateway_pb2.ErrorDetail()
            if any_msg.Is(gateway_pb2.ErrorDetail.DESCRIPTOR) and any_msg.Unpack(d):
                out.append(ErrorDetail(address=d.address, msp_id=d.msp_id, message=d.message))
    return tuple(out)


def status_code(err: grpc.RpcError) -> grpc.StatusCode:
    try:
        return err.code()
    except Exception:
        return grpc.StatusCode.UNKNOWN


def status_message(err: grpc.RpcError) -> str:
    try:
        return err.details() or ""
    except Exception:
        return str(err)
