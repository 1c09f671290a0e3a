"""Public records (dataclasses) and issue 10's argument contract.

A record a caller builds and passes in validates its fields on
construction; a record the model returns is an output and is listed, with
a reason, in ``OUTPUT_RECORDS`` (``tests/api_surface.py``). The rule is
stated in :mod:`refimpl.errors`.
"""

from __future__ import annotations

import dataclasses

import pytest

from api_surface import (
    INPUT_RECORDS, OUTPUT_RECORDS, UNVALIDATED_LAYOUTS, public_records, unclassified_records,
)
from refimpl.host import mmu, vm
from refimpl.layouts import workload
from refimpl.viz import svg

RECORDS = public_records()


class _Wrong:
    """A value no field accepts: not an int, bool, str, tuple or model object."""

    def __repr__(self) -> str:
        return "<wrong>"


def test_every_public_record_is_validated_or_listed():
    assert unclassified_records(RECORDS) == []


def test_the_classification_check_can_fail():
    @dataclasses.dataclass
    class Unchecked:
        x: int

    @dataclasses.dataclass
    class Checked:
        x: int

        def __post_init__(self) -> None:
            pass

    got = unclassified_records({"fake.Unchecked": Unchecked, "fake.Checked": Checked})
    assert got == ["fake.Unchecked"]


def test_the_lists_name_real_records_once():
    listed = list(OUTPUT_RECORDS) + list(UNVALIDATED_LAYOUTS) + list(INPUT_RECORDS)
    assert len(listed) == len(set(listed))
    assert set(listed) <= set(RECORDS)
    for key in INPUT_RECORDS:
        assert "__post_init__" in vars(RECORDS[key]), key
    for key in OUTPUT_RECORDS:  # an output with a check belongs elsewhere
        assert "__post_init__" not in vars(RECORDS[key]), key


@pytest.mark.parametrize("key", sorted(INPUT_RECORDS))
def test_input_record_rejects_a_wrong_typed_field(key):
    good = INPUT_RECORDS[key]()
    cls = RECORDS[key]
    assert type(good) is cls
    dataclasses.replace(good)  # the good instance rebuilds
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        with pytest.raises(TypeError) as info:
            dataclasses.replace(good, **{f.name: _Wrong()})
        assert f"{cls.__name__}.{f.name}" in str(info.value), (key, f.name, str(info.value))


# Out-of-range values of the right type, each worked out from the
# structure KVM models (arch/x86/kvm/mmu/mmu.c, virt/kvm/kvm_main.c).
@pytest.mark.parametrize("make, field", [
    (lambda: vm.Memslot(0, 0, 0x10, 0, 0x100), "npages"),       # a slot holds >= 1 page
    (lambda: vm.Memslot(0, 2, 0x10, 1, 0x100), "as_id"),        # SMM is address space 1
    (lambda: vm.Memslot(0, 0, -1, 1, 0x100), "base_gfn"),
    (lambda: vm.Vcpu(-1), "vcpu_id"),
    (lambda: mmu.RootInfo(-0x1000, 0), "hpa"),
    (lambda: mmu.MmuKind(True, mmu.tdp_kind(_fmt()).spte_format,
                         mmu.tdp_kind(_fmt()).shadow_zero_check, 6), "root_level"),
    (lambda: workload.Event(-2, "cr0", (1,)), "vcpu"),          # -1 is the VM itself
    (lambda: svg.Box("a", 0, 0, 0, "A"), "w"),
    (lambda: svg.Diagram(0, 10), "width"),
])
def test_input_record_rejects_an_out_of_range_field(make, field):
    with pytest.raises(ValueError, match=rf"\.{field} must be in"):
        make()


def _fmt():
    from api_surface import _fmt as fmt
    return fmt()


def test_valid_records_are_unchanged():
    # Validation neither normalises nor copies: the fields are the values given.
    slot = vm.Memslot(3, 1, 0x10, 0x20, 0x100, owns_frames=True)
    assert (slot.id, slot.as_id, slot.base_gfn, slot.npages, slot.host_pfn) == (3, 1, 0x10, 0x20, 0x100)
    lines = ("x",)
    assert svg.Box("k", 1, 2, 3, "t", lines).lines is lines
    assert mmu.RootInfo().hpa is None and not mmu.RootInfo().valid
