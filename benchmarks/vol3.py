"""volatility3's Intel32e layer over the same bytes as refimpl's GuestMemory.

volatility3 translates through a stack of layers: a physical *data* layer
holding the bytes (here its ``BufferDataLayer``), and on top of it the
``Intel32e`` translation layer, configured with ``page_map_offset`` (CR3) and
``memory_layer`` (the name of the physical layer), exactly as its automagic
configures it for an x86-64 memory image.

Two entry points are timed:

* ``layer._translate(addr)``, the walker itself (returns
  ``(gpa, page size, layer name)`` or raises
  ``PagedInvalidAddressException``);
* ``layer.translate(addr, ignore_errors=True)``, the public call, which goes
  through ``mapping()`` and also checks the target against the physical
  layer.

Both sit behind volatility3's per-page LRU cache (``_translate_entry``, 1024
pages) and its page-table cache (``_get_valid_table``, 1025 tables);
:func:`clear_caches` empties them so that every repeat does the same work.
"""

from __future__ import annotations

from typing import Callable


def available() -> bool:
    try:
        import volatility3.framework.layers.intel  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import volatility3.framework

    return volatility3.framework.constants.PACKAGE_VERSION


def make_layer(buffer: bytes, cr3: int):
    """An ``Intel32e`` layer over ``buffer`` (a bytes copy of guest memory)."""
    from volatility3.framework import contexts
    from volatility3.framework.layers import intel, physical

    ctx = contexts.Context()
    ctx.layers.add_layer(physical.BufferDataLayer(ctx, "bench.phys", "phys", bytes(buffer)))
    ctx.config["bench.virt.page_map_offset"] = cr3
    ctx.config["bench.virt.memory_layer"] = "phys"
    layer = intel.Intel32e(ctx, "bench.virt", "virt")
    ctx.layers.add_layer(layer)
    return layer


def clear_caches() -> None:
    from volatility3.framework.layers import intel

    intel.Intel._translate_entry.cache_clear()
    intel.Intel._get_valid_table.cache_clear()


def walker(layer) -> Callable[[int], int | None]:
    """``addr -> gpa or None`` through the layer's ``_translate``."""
    from volatility3.framework import exceptions

    tr = layer._translate
    exc = exceptions.InvalidAddressException

    def walk(addr: int) -> int | None:
        try:
            return tr(addr)[0]
        except exc:
            return None

    return walk


def public(layer) -> Callable[[int], int | None]:
    """``addr -> gpa or None`` through the public ``translate``."""
    tr = layer.translate

    def walk(addr: int) -> int | None:
        return tr(addr, ignore_errors=True)[0]

    return walk
