/* The owner's object directory holds as many objects as it is given (the
 * table grows) and lists each object's copies once. No rank is up here, so
 * every copy counts as one of a dead rank: sources still lists them. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "core/directory.h"

Test(directory, far_more_objects_than_a_fixed_table_keep_their_copies)
{
    enum { N = 200000 };

    for (uint64_t c = 1; c <= N; c++) {
        rh_object_id_t id = rh_object_id_make(0, c, 0);

        cr_assert_eq(rh_dir_add(id, (int)(c % 8)), RH_OK);
        cr_assert_eq(rh_dir_add(id, 8 + (int)(c % 5)), RH_OK);
        cr_assert_eq(rh_dir_add(id, (int)(c % 8)), RH_OK, "again");
    }
    for (uint64_t c = 1; c <= N; c++) {
        rh_object_id_t id = rh_object_id_make(0, c, 0);
        int ranks[8];

        cr_assert_eq(rh_dir_sources(id, ranks, 8), 2, "object %lu",
                     (unsigned long)c);
        cr_assert_eq(ranks[0], (int)(c % 8));
        cr_assert_eq(ranks[1], 8 + (int)(c % 5));
    }
    for (uint64_t c = 1; c <= N; c += 2) {
        rh_dir_forget(rh_object_id_make(0, c, 0));
    }
    for (uint64_t c = 1; c <= N; c++) {
        int ranks[8];

        cr_assert_eq(rh_dir_sources(rh_object_id_make(0, c, 0), ranks, 8),
                     c % 2 ? 0 : 2);
    }
    rh_dir_teardown();
    {
        int ranks[8];

        cr_assert_eq(rh_dir_sources(rh_object_id_make(0, 2, 0), ranks, 8),
                     0);
    }
}

Test(directory, an_object_copied_to_many_nodes_lists_them_all)
{
    rh_object_id_t id = rh_object_id_make(3, 77, 1);
    int ranks[64];

    for (int r = 0; r < 40; r++) {
        cr_assert_eq(rh_dir_add(id, r), RH_OK);
    }
    /* dead ranks come last, at most 16 of them */
    cr_assert_eq(rh_dir_sources(id, ranks, 64), 16);
    cr_assert_eq(rh_dir_sources(id, ranks, 3), 3);
    rh_dir_forget(id);
    cr_assert_eq(rh_dir_sources(id, ranks, 64), 0);
    rh_dir_teardown();
}
