#include <criterion/criterion.h>
#include <string.h>

#include "core/registry.h"
#include "rayhpc.h"

static rh_status_t init_ok(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static rh_status_t m_noop(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    (void)ctx;
    return RH_OK;
}

static const rh_method_def_t zyx[] = {
    { "zeta", m_noop, 0, 1 }, { "alpha", m_noop, 2, 0 }, { "mid", m_noop, -1, 3 },
};

static rh_actor_class_t cls(const rh_method_def_t *m, int n)
{
    rh_actor_class_t c = { 0 };

    c.init = init_ok;
    c.init_nargs = 1;
    c.methods = m;
    c.num_methods = n;
    return c;
}

/* Classes and methods are numbered by name, whatever the order of
 * registration: equal tables number alike on every rank. */
Test(registry, classes_and_methods_are_numbered_by_name)
{
    rh_actor_class_t c = cls(zyx, 3);
    const rh_class_entry_t *a, *b;

    cr_assert_eq(rh_register_actor("Bee", &c), RH_OK);
    cr_assert_eq(rh_register_actor("Ant", &c), RH_OK);
    rh_registry_freeze();
    a = rh_registry_find_class("Ant");
    b = rh_registry_find_class("Bee");
    cr_assert(a != NULL && b != NULL);
    cr_expect_eq(a->id, 0);
    cr_expect_eq(b->id, 1);
    cr_expect_eq(rh_registry_class(1), b);
    cr_expect_null(rh_registry_class(2));
    cr_expect_eq(rh_registry_method(a, "alpha"), 0);
    cr_expect_eq(rh_registry_method(a, "mid"), 1);
    cr_expect_eq(rh_registry_method(a, "zeta"), 2);
    cr_expect_eq(rh_registry_method(a, "nope"), -1);
    cr_expect_str_eq(a->methods[1].name, "Ant.mid");
    cr_expect_eq(a->methods[1].nargs, -1);
    cr_expect_eq(a->methods[1].nreturns, 3);
    cr_expect(a->methods[1].method == m_noop && a->methods[1].fn == NULL);
}

Test(registry, bad_classes_are_refused_with_a_reason)
{
    rh_actor_class_t c = cls(zyx, 3);
    rh_method_def_t dup[2] = { { "same", m_noop, 0, 1 },
                               { "same", m_noop, 0, 1 } };
    rh_method_def_t dotted[1] = { { "a.b", m_noop, 0, 1 } };

    cr_expect_eq(rh_register_actor("A.B", &c), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_register_actor("", &c), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_register_actor("X", NULL), RH_ERR_INVALID_PARAM);
    c.init = NULL;
    cr_expect_eq(rh_register_actor("X", &c), RH_ERR_INVALID_PARAM);
    c = cls(dup, 2);
    cr_expect_eq(rh_register_actor("X", &c), RH_ERR_INVALID_PARAM);
    cr_expect(strstr(rh_last_error(), "two methods named same") != NULL);
    c = cls(dotted, 1);
    cr_expect_eq(rh_register_actor("X", &c), RH_ERR_INVALID_PARAM);
    c = cls(zyx, 3);
    c.field_mask = RH_ACTOR_CLASS_FIELD_FINI;
    cr_expect_eq(rh_register_actor("X", &c), RH_ERR_INVALID_PARAM);
    c.field_mask = 0;
    cr_expect_eq(rh_register_actor("X", &c), RH_OK);
    cr_expect_eq(rh_register_actor("X", &c), RH_ERR_BUSY);
}

/* A rank's description lists its classes and methods; another rank's that
 * differs in a class, a method or a count is reported. */
Test(registry, descriptions_compare_classes_and_methods)
{
    rh_actor_class_t c = cls(zyx, 3);
    char mine[2048], theirs[2048];
    char *p;

    cr_assert_eq(rh_register_actor("Ant", &c), RH_OK);
    rh_registry_freeze();
    rh_registry_describe(mine, sizeof(mine));
    cr_expect(strstr(mine, "@Ant:1:3\n") != NULL, "%s", mine);
    cr_expect(strstr(mine, "@Ant.mid:-1:3\n") != NULL, "%s", mine);
    cr_expect_eq(rh_registry_compare(mine, 1), 0);
    /* another argument count */
    strcpy(theirs, mine);
    p = strstr(theirs, "@Ant.mid:-1:3");
    memcpy(p, "@Ant.mid:+2:3", 13);
    cr_expect_eq(rh_registry_compare(theirs, 1), 1);
    /* a method we lack */
    strcpy(theirs, mine);
    strcat(theirs, "@Ant.extra:0:1\n");
    cr_expect_eq(rh_registry_compare(theirs, 1), 1);
    /* a class we lack, and ours missing there */
    cr_expect_eq(rh_registry_compare("@Bee:0:0\n", 1), 2);
}
