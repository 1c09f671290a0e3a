/*
 * A plain C loop of four-level guest page-table walks: the machine's limit
 * that refimpl.translate_batch is measured against (benchmarks/__main__.py
 * compiles it with `cc -O2 -shared -fPIC` and calls it through ctypes).
 *
 * It follows FNAME(walk_addr_generic) in arch/x86/kvm/mmu/paging_tmpl.h for
 * 64-bit entries, four levels, as refimpl.walker does:
 *   canonical check (#GP), then per level: entry address, "no memslot" if
 *   outside memory, rights ANDed with NX inverted, present, reserved bits
 *   (masks rsvd[bit 7][level - 1] from the caller), leaf at level 1 or
 *   bit 7; then the permission byte for the access (perm_byte, bit ACC
 *   set = fault), the gpa, and A (and D on a write) ORed into the entries
 *   of a successful walk. Protection keys are not modelled (the caller
 *   passes CR4.PKE=0).
 *
 * Outputs per address: gpa (0 on a fault), fault (0/1), vector (0, 13 or
 * 14), error code, level: the arrays of refimpl.batch.BatchResult.
 */
#include <stdint.h>
#include <stddef.h>

#define P_BIT   (1ull << 0)
#define W_BIT   (1ull << 1)
#define A_BIT   (1ull << 5)
#define D_BIT   (1ull << 6)
#define PS_BIT  (1ull << 7)
#define NX_BIT  (1ull << 63)
#define ADDR    0x000FFFFFFFFFF000ull

#define PFERR_P    1u
#define PFERR_W    2u
#define PFERR_U    4u
#define PFERR_RSVD 8u
#define PFERR_F    16u

int walk4(uint64_t *mem, uint64_t nwords, uint64_t cr3,
          const uint64_t rsvd[2][5], uint32_t perm_byte, uint32_t access,
          int has_pferr_fetch, int set_ad,
          const uint64_t *gva, size_t n,
          uint64_t *gpa_out, uint8_t *fault_out, uint8_t *vector_out,
          uint64_t *err_out, uint8_t *level_out)
{
    const uint64_t root = cr3 & ADDR;
    const int write = (access & PFERR_W) != 0;
    uint64_t extra = access & (PFERR_W | PFERR_U);
    if ((access & PFERR_F) && has_pferr_fetch)
        extra |= PFERR_F;

    for (size_t i = 0; i < n; i++) {
        uint64_t addr = gva[i];
        uint64_t top = addr >> 47;
        uint64_t table = root, pte = 0, pte_access = ~0ull;
        uint64_t slot[4];
        int level = 4, depth = 0;
        uint64_t err = 0;
        int ok = 0;

        gpa_out[i] = 0;
        err_out[i] = 0;
        if (top != 0 && top != 0x1FFFF) {          /* non-canonical: #GP */
            fault_out[i] = 1;
            vector_out[i] = 13;
            level_out[i] = 0;
            continue;
        }
        for (;;) {
            uint64_t idx = (table >> 3) + ((addr >> (12 + 9 * (level - 1))) & 511);
            if (idx >= nwords)                      /* no memslot */
                break;
            pte = mem[idx];
            slot[depth++] = idx;
            pte_access &= pte ^ NX_BIT;
            if (!(pte & P_BIT))                     /* not present */
                break;
            if (pte & rsvd[(pte >> 7) & 1][level - 1]) {
                err = PFERR_RSVD | PFERR_P;
                break;
            }
            if (level == 1 || (pte & PS_BIT)) {     /* leaf */
                uint64_t nat = pte_access ^ NX_BIT;
                unsigned acc = (unsigned)(nat & 7) ^ (unsigned)(nat >> 63);
                if ((perm_byte >> acc) & 1) {
                    err = PFERR_P;
                    break;
                }
                uint64_t off = (1ull << (12 + 9 * (level - 1))) - 1;
                uint64_t leaf_mask = ADDR & ~off;
                gpa_out[i] = (pte & leaf_mask) | (addr & off);
                ok = 1;
                break;
            }
            table = pte & ADDR;
            level--;
        }
        level_out[i] = (uint8_t)level;
        fault_out[i] = !ok;
        if (!ok) {
            vector_out[i] = 14;
            err_out[i] = err | extra;
            continue;
        }
        vector_out[i] = 0;
        if (set_ad) {
            for (int d = 0; d < depth; d++) {
                uint64_t bits = A_BIT;
                if (write && d == depth - 1)
                    bits |= D_BIT;
                mem[slot[d]] |= bits;
            }
        }
    }
    return 0;
}
