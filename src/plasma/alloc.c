/*
 * The heap inside the segment: no malloc per object, every piece of
 * bookkeeping in the segment itself, all of it under the store lock.
 *
 * Large objects (> 64 KiB) get a block of their own. Blocks carry a 64-byte
 * header with their size and the size of the block before them, which lets
 * a freed block merge with free neighbours on both sides at once: freeing
 * everything always gives back one block the size of the heap. Blocks are
 * multiples of 4 KiB, placed so that their payloads are 4 KiB aligned:
 * spilling writes a large object with O_DIRECT straight from its block.
 * Free blocks sit in 64 lists by log2 of their size, with a bitmap of the
 * non-empty ones, so finding a block is a few instructions.
 *
 * Small objects (<= 64 KiB) take a slot in a slab: a block cut into equal
 * slots of one size class (64 B .. 64 KiB, four classes per doubling from
 * 256 B up), with a bitmap of taken slots. A header per object would double
 * the size of a 64-byte object. Slabs that empty are given back to the
 * heap, except one per class kept for the next object (a put/delete loop
 * would otherwise split and merge a block every time); those are given back
 * too before an allocation is refused.
 */
#include "plasma/store_internal.h"

#include <string.h>

#include "base/log.h"
#include "base/status.h"

static const uint32_t rh_class_size[RH_SLAB_CLASSES] = {
    64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096,
    6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536
};

static inline rh_block_t *rh_block_at(const rh_store_t *s, uint64_t off)
{
    return (rh_block_t *)rh_store_at(s, off);
}

static inline rh_slab_t *rh_slab_at(const rh_store_t *s, uint64_t off)
{
    return (rh_slab_t *)rh_store_at(s, off);
}

static inline uint64_t rh_heap_end(const rh_store_t *s)
{
    return s->hdr->heap_off + s->hdr->heap_size;
}

static inline uint64_t rh_align64(uint64_t v)
{
    return (v + RH_STORE_ALIGN - 1) & ~(uint64_t)(RH_STORE_ALIGN - 1);
}

/* ---- free lists ---------------------------------------------------------- */

static inline unsigned rh_bin_of(uint64_t size)
{
    return 63u - (unsigned)__builtin_clzll(size / RH_STORE_ALIGN);
}

static void rh_bin_insert(rh_store_t *s, uint64_t off)
{
    rh_store_hdr_t *h = s->hdr;
    rh_block_t *b = rh_block_at(s, off);
    unsigned bin = rh_bin_of(b->size);

    b->prev_free = 0;
    b->next_free = h->bins[bin];
    if (h->bins[bin] != 0) {
        rh_block_at(s, h->bins[bin])->prev_free = off;
    }
    h->bins[bin] = off;
    h->bin_map |= 1ull << bin;
}

static void rh_bin_remove(rh_store_t *s, uint64_t off)
{
    rh_store_hdr_t *h = s->hdr;
    rh_block_t *b = rh_block_at(s, off);
    unsigned bin = rh_bin_of(b->size);

    if (b->prev_free != 0) {
        rh_block_at(s, b->prev_free)->next_free = b->next_free;
    } else {
        h->bins[bin] = b->next_free;
    }
    if (b->next_free != 0) {
        rh_block_at(s, b->next_free)->prev_free = b->prev_free;
    }
    if (h->bins[bin] == 0) {
        h->bin_map &= ~(1ull << bin);
    }
}

/* ---- blocks -------------------------------------------------------------- */

static void rh_block_init(rh_store_t *s, uint64_t off, uint64_t size,
                          uint64_t prev_size, uint32_t flags)
{
    rh_block_t *b = rh_block_at(s, off);

    memset(b, 0, sizeof(*b));
    b->magic = RH_BLOCK_MAGIC;
    b->flags = flags;
    b->size = size;
    b->prev_size = prev_size;
}

/* Tells the block after off (if any) how big off's block now is. */
static void rh_block_link_next(rh_store_t *s, uint64_t off)
{
    uint64_t next = off + rh_block_at(s, off)->size;

    if (next < rh_heap_end(s)) {
        rh_block_at(s, next)->prev_size = rh_block_at(s, off)->size;
    }
}

void rh_alloc_init(rh_store_t *s)
{
    rh_store_hdr_t *h = s->hdr;

    h->bin_map = 0;
    memset(h->bins, 0, sizeof(h->bins));
    memset(h->classes, 0, sizeof(h->classes));
    h->used = h->object_bytes = 0;
    rh_block_init(s, h->heap_off, h->heap_size, 0, RH_BLOCK_FREE);
    rh_bin_insert(s, h->heap_off);
    h->heap_free = h->heap_size;
}

uint64_t rh_alloc_max_object(const rh_store_t *s)
{
    return s->hdr->heap_size - RH_BLOCK_HDR;
}

/* First fit among the first few blocks of the size's own list, else any
 * block of a bigger list (all of them fit), else the rest of the own list:
 * bounded work in the common case, never a false "full". */
static uint64_t rh_block_find(rh_store_t *s, uint64_t size)
{
    rh_store_hdr_t *h = s->hdr;
    unsigned bin = rh_bin_of(size);
    uint64_t off = h->bins[bin], higher;
    int looked = 0;

    for (; off != 0 && looked < 32; looked++) {
        if (rh_block_at(s, off)->size >= size) {
            return off;
        }
        off = rh_block_at(s, off)->next_free;
    }
    higher = bin < 63 ? h->bin_map & ~((2ull << bin) - 1) : 0;
    if (higher != 0) {
        return h->bins[__builtin_ctzll(higher)];
    }
    for (; off != 0; off = rh_block_at(s, off)->next_free) {
        if (rh_block_at(s, off)->size >= size) {
            return off;
        }
    }
    return 0;
}

/* A used block of at least size bytes (header included), or 0. */
static uint64_t rh_block_alloc(rh_store_t *s, uint64_t size, uint32_t flags)
{
    uint64_t off = rh_block_find(s, size), rest;
    rh_block_t *b;

    if (off == 0) {
        return 0;
    }
    rh_bin_remove(s, off);
    b = rh_block_at(s, off);
    if (b->size - size >= RH_BLOCK_MIN) {
        rest = off + size;
        rh_block_init(s, rest, b->size - size, size, RH_BLOCK_FREE);
        b->size = size;
        rh_block_link_next(s, rest);
        rh_bin_insert(s, rest);
    }
    b->flags = flags;
    s->hdr->heap_free -= b->size;
    return off;
}

static void rh_block_free(rh_store_t *s, uint64_t off)
{
    rh_block_t *b = rh_block_at(s, off), *n, *p;
    uint64_t next = off + b->size;

    s->hdr->heap_free += b->size;
    b->flags = RH_BLOCK_FREE;
    if (next < rh_heap_end(s) &&
        ((n = rh_block_at(s, next))->flags & RH_BLOCK_FREE)) {
        rh_bin_remove(s, next);
        b->size += n->size;
        n->magic = 0;
    }
    if (b->prev_size != 0 &&
        ((p = rh_block_at(s, off - b->prev_size))->flags & RH_BLOCK_FREE)) {
        rh_bin_remove(s, off - b->prev_size);
        p->size += b->size;
        b->magic = 0;
        off -= b->prev_size;
    }
    rh_block_link_next(s, off);
    rh_bin_insert(s, off);
}

void rh_alloc_hold(rh_store_t *s, uint64_t off)
{
    rh_block_t *b = rh_block_at(s, off);

    if (b->magic != RH_BLOCK_MAGIC || b->flags != RH_BLOCK_FREE) {
        return;
    }
    rh_bin_remove(s, off);
    b->flags = RH_BLOCK_HELD;
    s->hdr->heap_free -= b->size;
}

void rh_alloc_unhold(rh_store_t *s, uint64_t off)
{
    rh_block_t *b = rh_block_at(s, off);

    if (b->magic != RH_BLOCK_MAGIC || b->flags != RH_BLOCK_HELD) {
        rh_error("store: giving back a held block at offset %llu that is "
                 "not held: segment corrupt?", (unsigned long long)off);
        return;
    }
    rh_block_free(s, off);
}

uint64_t rh_alloc_largest_free(const rh_store_t *s)
{
    const rh_store_hdr_t *h = s->hdr;
    uint64_t best = 0;

    if (h->bin_map == 0) {
        return 0;
    }
    for (uint64_t off = h->bins[63 - __builtin_clzll(h->bin_map)]; off != 0;
         off = rh_block_at(s, off)->next_free) {
        if (rh_block_at(s, off)->size > best) {
            best = rh_block_at(s, off)->size;
        }
    }
    return best - RH_BLOCK_HDR;
}

uint64_t rh_alloc_next_block(const rh_store_t *s, uint64_t off,
                             uint64_t *size, int *is_free)
{
    const rh_block_t *b;

    off = off == 0 ? s->hdr->heap_off : off + rh_block_at(s, off)->size;
    if (off >= rh_heap_end(s)) {
        return 0;
    }
    b = rh_block_at(s, off);
    *size = b->size;
    *is_free = (b->flags & RH_BLOCK_FREE) != 0;
    return off;
}

int64_t rh_alloc_slab_used(const rh_store_t *s, uint64_t off)
{
    const rh_slab_t *sl;

    if (!(rh_block_at(s, off)->flags & RH_BLOCK_SLAB)) {
        return -1;
    }
    sl = rh_slab_at(s, off + RH_BLOCK_HDR);
    return (int64_t)sl->nobj - (int64_t)sl->nfree;
}

/* ---- slabs --------------------------------------------------------------- */

static unsigned rh_class_of(uint64_t size)
{
    unsigned k = 0;

    while (rh_class_size[k] < size) {
        k++;
    }
    return k;
}

/* A slab holds at least 16 objects of its class and is a multiple of 64 KiB,
 * at most RH_SLAB_MAX_OBJS objects. */
static uint64_t rh_slab_block_size(unsigned k)
{
    uint64_t want = RH_BLOCK_HDR + RH_SLAB_HDR + 16ull * rh_class_size[k];

    return (want + 65535) & ~65535ull;
}

static void rh_slab_list_push(rh_store_t *s, uint64_t *head, uint64_t off)
{
    rh_slab_t *sl = rh_slab_at(s, off);

    sl->prev = 0;
    sl->next = *head;
    if (*head != 0) {
        rh_slab_at(s, *head)->prev = off;
    }
    *head = off;
}

static void rh_slab_list_remove(rh_store_t *s, uint64_t *head, uint64_t off)
{
    rh_slab_t *sl = rh_slab_at(s, off);

    if (sl->prev != 0) {
        rh_slab_at(s, sl->prev)->next = sl->next;
    } else {
        *head = sl->next;
    }
    if (sl->next != 0) {
        rh_slab_at(s, sl->next)->prev = sl->prev;
    }
    sl->next = sl->prev = 0;
}

/* Bits past the last slot stay set, so that a search never hands them out. */
static uint64_t rh_slab_new(rh_store_t *s, unsigned k)
{
    uint64_t bsize = rh_slab_block_size(k);
    uint64_t blk = rh_block_alloc(s, bsize, RH_BLOCK_SLAB);
    uint64_t nobj;
    rh_slab_t *sl;

    if (blk == 0) {
        return 0;
    }
    nobj = (rh_block_at(s, blk)->size - RH_BLOCK_HDR - RH_SLAB_HDR) /
           rh_class_size[k];
    if (nobj > RH_SLAB_MAX_OBJS) {
        nobj = RH_SLAB_MAX_OBJS;
    }
    sl = rh_slab_at(s, blk + RH_BLOCK_HDR);
    memset(sl, 0, sizeof(*sl));
    sl->magic = RH_SLAB_MAGIC;
    sl->klass = (uint16_t)k;
    sl->nobj = (uint16_t)nobj;
    sl->nfree = (uint32_t)nobj;
    for (uint64_t i = nobj; i < RH_SLAB_MAX_OBJS; i++) {
        sl->bitmap[i / 64] |= 1ull << (i % 64);
    }
    s->hdr->classes[k].slabs++;
    return blk + RH_BLOCK_HDR;
}

static void rh_slab_destroy(rh_store_t *s, uint64_t off)
{
    rh_slab_t *sl = rh_slab_at(s, off);

    s->hdr->classes[sl->klass].slabs--;
    sl->magic = 0;
    rh_block_free(s, off - RH_BLOCK_HDR);
}

/* Gives every class's spare empty slab back to the heap; 1 if any was. */
static int rh_slab_release_spares(rh_store_t *s)
{
    int any = 0;

    for (unsigned k = 0; k < RH_SLAB_CLASSES; k++) {
        rh_slab_class_t *c = &s->hdr->classes[k];

        if (c->spare != 0) {
            rh_slab_destroy(s, c->spare);
            c->spare = 0;
            any = 1;
        }
    }
    return any;
}

void rh_alloc_release_spares(rh_store_t *s)
{
    (void)rh_slab_release_spares(s);
}

/* A slab of class k with a free slot (now on the partial list), or 0. */
static uint64_t rh_slab_with_room(rh_store_t *s, unsigned k)
{
    rh_slab_class_t *c = &s->hdr->classes[k];
    uint64_t off = c->partial;

    if (off != 0) {
        return off;
    }
    if (c->spare != 0) {
        off = c->spare;
        c->spare = 0;
    } else {
        off = rh_slab_new(s, k);
        if (off == 0) {
            return 0;
        }
    }
    rh_slab_list_push(s, &c->partial, off);
    return off;
}

static uint64_t rh_slab_take_slot(rh_store_t *s, uint64_t off)
{
    rh_slab_t *sl = rh_slab_at(s, off);
    unsigned words = (sl->nobj + 63u) / 64u, w = sl->hint % words;
    uint64_t bit;

    while (sl->bitmap[w] == ~0ull) {
        w = (w + 1) % words;
    }
    bit = (uint64_t)__builtin_ctzll(~sl->bitmap[w]);
    sl->bitmap[w] |= 1ull << bit;
    sl->hint = w;
    if (--sl->nfree == 0) {
        rh_slab_list_remove(s, &s->hdr->classes[sl->klass].partial, off);
    }
    return off + RH_SLAB_HDR + (w * 64u + bit) * rh_class_size[sl->klass];
}

static void rh_slab_free_slot(rh_store_t *s, uint64_t off, uint64_t obj)
{
    rh_slab_t *sl = rh_slab_at(s, off);
    rh_slab_class_t *c = &s->hdr->classes[sl->klass];
    uint64_t rel = obj - off - RH_SLAB_HDR;
    uint64_t i = rel / rh_class_size[sl->klass % RH_SLAB_CLASSES];

    if (sl->magic != RH_SLAB_MAGIC || obj < off + RH_SLAB_HDR ||
        rel % rh_class_size[sl->klass % RH_SLAB_CLASSES] != 0 ||
        i >= sl->nobj ||
        !(sl->bitmap[i / 64] & (1ull << (i % 64)))) {
        rh_error("store: freeing object at offset %llu that its slab does "
                 "not hold: segment corrupt?", (unsigned long long)obj);
        return;
    }
    sl->bitmap[i / 64] &= ~(1ull << (i % 64));
    sl->hint = (uint32_t)(i / 64);
    if (sl->nfree++ == 0) {
        rh_slab_list_push(s, &c->partial, off);
    }
    if (sl->nfree < sl->nobj) {
        return;
    }
    rh_slab_list_remove(s, &c->partial, off);
    if (c->spare == 0) {
        c->spare = off;
    } else {
        rh_slab_destroy(s, off);
    }
}

/* ---- objects ------------------------------------------------------------- */

uint64_t rh_alloc_footprint(const rh_store_t *s, uint64_t alloc,
                            uint16_t klass)
{
    if (klass == RH_KLASS_NONE) {
        return 0;
    }
    if (klass == RH_KLASS_LARGE) {
        return rh_block_at(s, alloc)->size;
    }
    return klass < RH_SLAB_CLASSES ? rh_class_size[klass] : 0;
}

static rh_status_t rh_alloc_small(rh_store_t *s, uint64_t size,
                                  uint64_t *offset, uint64_t *alloc,
                                  uint16_t *klass)
{
    unsigned k = rh_class_of(size);
    uint64_t slab = rh_slab_with_room(s, k);

    if (slab == 0 && rh_slab_release_spares(s)) {
        slab = rh_slab_with_room(s, k);
    }
    if (slab == 0) {
        return RH_ERR_STORE_FULL;
    }
    *offset = rh_slab_take_slot(s, slab);
    *alloc = slab;
    *klass = (uint16_t)k;
    s->hdr->used += rh_class_size[k];
    return RH_OK;
}

static rh_status_t rh_alloc_large(rh_store_t *s, uint64_t size,
                                  uint64_t *offset, uint64_t *alloc,
                                  uint16_t *klass)
{
    uint64_t bsize = (rh_align64(size) + RH_BLOCK_HDR + RH_BLOCK_UNIT - 1) &
                     ~(uint64_t)(RH_BLOCK_UNIT - 1), blk;

    blk = rh_block_alloc(s, bsize, 0);
    if (blk == 0 && rh_slab_release_spares(s)) {
        blk = rh_block_alloc(s, bsize, 0);
    }
    if (blk == 0) {
        return RH_ERR_STORE_FULL;
    }
    *offset = blk + RH_BLOCK_HDR;
    *alloc = blk;
    *klass = RH_KLASS_LARGE;
    s->hdr->used += rh_block_at(s, blk)->size;
    return RH_OK;
}

/* A small object whose class has no slab and no room for one may still fit
 * in a block of its own: a small store is never full while bytes remain. */
rh_status_t rh_alloc_object(rh_store_t *s, uint64_t size, uint64_t *offset,
                            uint64_t *alloc, uint16_t *klass)
{
    rh_status_t status = RH_ERR_STORE_FULL;

    if (size == 0) {
        *offset = RH_STORE_ZERO_OFF;
        *alloc = 0;
        *klass = RH_KLASS_NONE;
        return RH_OK;
    }
    if (size <= RH_SMALL_MAX) {
        status = rh_alloc_small(s, size, offset, alloc, klass);
    }
    if (status != RH_OK) {
        status = rh_alloc_large(s, size, offset, alloc, klass);
    }
    if (status == RH_OK) {
        s->hdr->object_bytes += size;
    }
    return status;
}

void rh_alloc_free_object(rh_store_t *s, uint64_t offset, uint64_t alloc,
                          uint16_t klass, uint64_t size)
{
    rh_block_t *b;

    if (klass == RH_KLASS_NONE) {
        return;
    }
    s->hdr->object_bytes -= size;
    if (klass != RH_KLASS_LARGE) {
        s->hdr->used -= rh_class_size[klass];
        rh_slab_free_slot(s, alloc, offset);
        return;
    }
    b = rh_block_at(s, alloc);
    if (b->magic != RH_BLOCK_MAGIC || (b->flags & RH_BLOCK_FREE) ||
        alloc + RH_BLOCK_HDR != offset) {
        rh_error("store: freeing a block at offset %llu that is not in use: "
                 "segment corrupt?", (unsigned long long)alloc);
        return;
    }
    s->hdr->used -= b->size;
    rh_block_free(s, alloc);
}

/* ---- checking ------------------------------------------------------------ */

static rh_status_t rh_slab_check(const rh_store_t *s, uint64_t off,
                                 uint64_t *taken)
{
    const rh_slab_t *sl = rh_slab_at(s, off);
    uint64_t used = 0;

    if (sl->magic != RH_SLAB_MAGIC || sl->klass >= RH_SLAB_CLASSES) {
        return rh_error_set(RH_ERR_MALFORMED, "slab at %llu has a bad header",
                            (unsigned long long)off);
    }
    for (unsigned i = 0; i < sl->nobj; i++) {
        used += (sl->bitmap[i / 64] >> (i % 64)) & 1;
    }
    if (used + sl->nfree != sl->nobj) {
        return rh_error_set(RH_ERR_MALFORMED, "slab at %llu counts %u free "
                            "slots, its bitmap %llu", (unsigned long long)off,
                            sl->nfree, (unsigned long long)(sl->nobj - used));
    }
    *taken += used;
    return RH_OK;
}

/* Every block in address order: sizes chain up, no two free blocks touch,
 * the free bytes add up. */
static rh_status_t rh_block_walk(const rh_store_t *s, uint64_t *nfree,
                                 uint64_t *slab_objects, uint64_t *slabs)
{
    uint64_t off = s->hdr->heap_off, prev = 0, free_bytes = 0;
    int prev_free = 0;
    rh_status_t status;

    while (off < rh_heap_end(s)) {
        const rh_block_t *b = rh_block_at(s, off);
        int is_free = (b->flags & RH_BLOCK_FREE) != 0;

        if (b->magic != RH_BLOCK_MAGIC || b->size < RH_BLOCK_MIN ||
            b->size % RH_BLOCK_UNIT != 0 ||
            (off + RH_BLOCK_HDR) % RH_BLOCK_UNIT != 0 ||
            b->size > rh_heap_end(s) - off || b->prev_size != prev) {
            return rh_error_set(RH_ERR_MALFORMED, "heap block at %llu is "
                                "damaged", (unsigned long long)off);
        }
        if (is_free && prev_free) {
            return rh_error_set(RH_ERR_MALFORMED, "free blocks at %llu and "
                                "before were not merged",
                                (unsigned long long)off);
        }
        if (is_free) {
            free_bytes += b->size;
            (*nfree)++;
        } else if (b->flags & RH_BLOCK_SLAB) {
            status = rh_slab_check(s, off + RH_BLOCK_HDR, slab_objects);
            if (status != RH_OK) {
                return status;
            }
            (*slabs)++;
        }
        prev_free = is_free;
        prev = b->size;
        off += b->size;
    }
    if (free_bytes != s->hdr->heap_free) {
        return rh_error_set(RH_ERR_MALFORMED, "free blocks hold %llu bytes, "
                            "the header says %llu",
                            (unsigned long long)free_bytes,
                            (unsigned long long)s->hdr->heap_free);
    }
    return RH_OK;
}

static rh_status_t rh_bins_check(const rh_store_t *s, uint64_t nfree)
{
    uint64_t listed = 0;

    for (unsigned bin = 0; bin < RH_BINS; bin++) {
        uint64_t prev = 0;

        if (!!(s->hdr->bin_map & (1ull << bin)) != (s->hdr->bins[bin] != 0)) {
            return rh_error_set(RH_ERR_MALFORMED, "free-list bitmap wrong "
                                "for list %u", bin);
        }
        for (uint64_t off = s->hdr->bins[bin]; off != 0;
             off = rh_block_at(s, off)->next_free) {
            const rh_block_t *b = rh_block_at(s, off);

            if (!(b->flags & RH_BLOCK_FREE) || rh_bin_of(b->size) != bin ||
                b->prev_free != prev || ++listed > nfree) {
                return rh_error_set(RH_ERR_MALFORMED, "free list %u is "
                                    "damaged at %llu", bin,
                                    (unsigned long long)off);
            }
            prev = off;
        }
    }
    if (listed != nfree) {
        return rh_error_set(RH_ERR_MALFORMED, "%llu free blocks, %llu listed",
                            (unsigned long long)nfree,
                            (unsigned long long)listed);
    }
    return RH_OK;
}

/* After a process died holding the store lock, possibly in the middle of
 * a split, a merge or a free-list update: the heap is walked by the
 * blocks' sizes (which every step writes before it unlinks anything), the
 * back links are set again, free neighbours merged, and the free lists and
 * the free byte count rebuilt from what the walk found. A block left off
 * its list would otherwise stay lost, and with it, when it was the heap's
 * big free block, every later create on the node. */
rh_status_t rh_alloc_repair(rh_store_t *s)
{
    rh_store_hdr_t *h = s->hdr;
    uint64_t off = h->heap_off, prev = 0, last_free = 0, free_bytes = 0;

    while (off < rh_heap_end(s)) {
        rh_block_t *b = rh_block_at(s, off);

        if (b->magic != RH_BLOCK_MAGIC || b->size < RH_BLOCK_MIN ||
            b->size % RH_BLOCK_UNIT != 0 ||
            b->size > rh_heap_end(s) - off) {
            return rh_error_set(RH_ERR_MALFORMED, "heap block at %llu is "
                                "damaged beyond repair",
                                (unsigned long long)off);
        }
        b->prev_size = prev;
        if ((b->flags & RH_BLOCK_FREE) && last_free != 0) {
            rh_block_t *p = rh_block_at(s, last_free);

            p->size += b->size;   /* free neighbours: one block */
            b->magic = 0;
            off = last_free + p->size;
            prev = p->size;
            continue;
        }
        last_free = (b->flags & RH_BLOCK_FREE) ? off : 0;
        prev = b->size;
        off += b->size;
    }
    h->bin_map = 0;
    memset(h->bins, 0, sizeof(h->bins));
    for (off = h->heap_off; off < rh_heap_end(s);
         off += rh_block_at(s, off)->size) {
        rh_block_t *b = rh_block_at(s, off);

        if (b->flags & RH_BLOCK_FREE) {
            b->flags = RH_BLOCK_FREE;
            rh_bin_insert(s, off);
            free_bytes += b->size;
        }
    }
    h->heap_free = free_bytes;
    return RH_OK;
}

rh_status_t rh_alloc_check(const rh_store_t *s, uint64_t *slab_objects)
{
    uint64_t nfree = 0, slabs = 0, counted = 0;
    rh_status_t status;

    *slab_objects = 0;
    status = rh_block_walk(s, &nfree, slab_objects, &slabs);
    if (status != RH_OK) {
        return status;
    }
    for (unsigned k = 0; k < RH_SLAB_CLASSES; k++) {
        counted += s->hdr->classes[k].slabs;
    }
    if (counted != slabs) {
        return rh_error_set(RH_ERR_MALFORMED, "%llu slabs in the heap, the "
                            "classes count %llu", (unsigned long long)slabs,
                            (unsigned long long)counted);
    }
    return rh_bins_check(s, nfree);
}
