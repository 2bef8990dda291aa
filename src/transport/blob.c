#include "transport/blob.h"

#include <stdlib.h>
#include <string.h>

#include "base/status.h"

typedef struct rh_blob_entry {
    uint16_t key;
    uint16_t reserved;
    uint32_t len;
} rh_blob_entry_t;

void rh_blob_init(rh_blob_t *b)
{
    b->buf = NULL;
    b->len = b->cap = 0;
}

void rh_blob_free(rh_blob_t *b)
{
    free(b->buf);
    rh_blob_init(b);
}

static rh_status_t rh_blob_reserve(rh_blob_t *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 256;
    uint8_t *buf;

    while (cap < b->len + more) {
        cap *= 2;
    }
    if (cap == b->cap) {
        return RH_OK;
    }
    buf = realloc(b->buf, cap);
    if (buf == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "bootstrap blob of %zu bytes",
                            cap);
    }
    b->buf = buf;
    b->cap = cap;
    return RH_OK;
}

rh_status_t rh_blob_add(rh_blob_t *b, uint16_t key, const void *val,
                        uint32_t len)
{
    rh_blob_entry_t e = { key, 0, len };
    uint32_t magic = RH_BLOB_MAGIC;
    rh_status_t status;

    status = rh_blob_reserve(b, sizeof(magic) + sizeof(e) + len);
    if (status != RH_OK) {
        return status;
    }
    if (b->len == 0) {
        memcpy(b->buf, &magic, sizeof(magic));
        b->len = sizeof(magic);
    }
    memcpy(b->buf + b->len, &e, sizeof(e));
    if (len != 0) {
        memcpy(b->buf + b->len + sizeof(e), val, len);
    }
    b->len += sizeof(e) + len;
    return RH_OK;
}

rh_status_t rh_blob_add_str(rh_blob_t *b, uint16_t key, const char *s)
{
    return rh_blob_add(b, key, s, (uint32_t)strlen(s) + 1);
}

rh_status_t rh_blob_find(const void *blob, size_t len, uint16_t key,
                         const void **val, uint32_t *vlen)
{
    const uint8_t *p = blob;
    size_t off = sizeof(uint32_t);
    uint32_t magic;

    if (blob == NULL || len < sizeof(magic)) {
        return rh_error_set(RH_ERR_MALFORMED, "bootstrap blob too short");
    }
    memcpy(&magic, p, sizeof(magic));
    if (magic != RH_BLOB_MAGIC) {
        return rh_error_set(RH_ERR_MALFORMED, "bootstrap blob has a bad "
                            "magic word (another library version?)");
    }
    while (off < len) {
        rh_blob_entry_t e;

        if (len - off < sizeof(e)) {
            return rh_error_set(RH_ERR_MALFORMED, "bootstrap blob truncated");
        }
        memcpy(&e, p + off, sizeof(e));
        off += sizeof(e);
        if (e.len > len - off) {
            return rh_error_set(RH_ERR_MALFORMED, "bootstrap blob entry %u "
                                "runs past the end", (unsigned)e.key);
        }
        if (e.key == key) {
            *val = p + off;
            *vlen = e.len;
            return RH_OK;
        }
        off += e.len;
    }
    return RH_ERR_INVALID_PARAM;
}

rh_status_t rh_blob_set_parse(rh_blob_set_t *set, uint8_t *data, size_t len,
                              int n)
{
    size_t off = 0;

    set->n = n;
    set->data = data;
    set->off = calloc((size_t)n, sizeof(size_t));
    set->len = calloc((size_t)n, sizeof(size_t));
    if (set->off == NULL || set->len == NULL) {
        rh_blob_set_free(set);
        return rh_error_set(RH_ERR_NO_MEMORY, "blob table of %d ranks", n);
    }
    for (int r = 0; r < n; r++) {
        uint32_t l;

        if (len - off < sizeof(l)) {
            rh_blob_set_free(set);
            return rh_error_set(RH_ERR_MALFORMED, "exchange answer truncated "
                                "at rank %d", r);
        }
        memcpy(&l, data + off, sizeof(l));
        off += sizeof(l);
        if (l > len - off) {
            rh_blob_set_free(set);
            return rh_error_set(RH_ERR_MALFORMED, "blob of rank %d runs past "
                                "the exchange answer", r);
        }
        set->off[r] = off;
        set->len[r] = l;
        off += l;
    }
    return RH_OK;
}

void rh_blob_set_free(rh_blob_set_t *set)
{
    free(set->data);
    free(set->off);
    free(set->len);
    memset(set, 0, sizeof(*set));
}
