"""The client's conversions: every enum value crosses the wire by name, and answers it cannot read fail loudly."""

from __future__ import annotations

import enum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from clients import _convert as c
from clients import models as m
from clients.errors import TransportError
from clients.wallet.v1 import wallet_pb2 as pb

PAIRS: list[tuple[EnumTypeWrapper, type[enum.Enum]]] = [
    (pb.AccountStatus, m.AccountStatus), (pb.Purpose, m.Purpose), (pb.TransactionStatus, m.TransactionStatus),
    (pb.StakeState, m.StakeState), (pb.CancelOutcome, m.CancelOutcome), (pb.FenceOutcome, m.FenceOutcome),
    (pb.ClawbackPolicy, m.ClawbackPolicy), (pb.Resolution, m.Resolution),
]


@pytest.mark.parametrize(("proto_enum", "model"), PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_client_enum_value_goes_out_and_comes_back(proto_enum: EnumTypeWrapper, model: type[enum.Enum]) -> None:
    wrapper = pb.DESCRIPTOR.enum_types_by_name[model.__name__]
    for value in model:
        name = c.enum_out(proto_enum, value)
        number = wrapper.values_by_name[name].number
        assert c.enum_in(proto_enum, number, model) is value


def test_a_transaction_the_core_left_without_purpose_or_status_is_refused() -> None:
    with pytest.raises(TransportError, match="Purpose"):
        c.transaction(pb.Transaction(transaction_id="t-1", amount="1", status="TRANSACTION_STATUS_APPLIED"))
    with pytest.raises(TransportError, match="TransactionStatus"):
        c.transaction(pb.Transaction(transaction_id="t-1", amount="1", purpose="PURPOSE_STAKE"))


def test_the_optional_enums_stay_optional() -> None:
    read = c.transaction(pb.Transaction(transaction_id="t-1", amount="1", purpose="PURPOSE_DEPOSIT",
                                        status="TRANSACTION_STATUS_APPLIED"))
    assert read.purpose is m.Purpose.DEPOSIT and read.stake_state is None


def test_an_operator_reason_travels_as_call_metadata() -> None:
    spec = c.get_balance(m.AccountRef("fanteam", "1", "EUR"))
    assert c.with_reason(spec, None) is spec
    audited = c.with_reason(spec, "goodwill, ticket 42")
    assert audited.metadata == ((c.REASON_METADATA, b"goodwill, ticket 42"),)
    assert (audited.method, audited.request, audited.parse) == (spec.method, spec.request, spec.parse)
