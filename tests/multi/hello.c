/* The smallest program: public API only. Prints what the rank sees.
 * HELLO_NO_FINALIZE=r: rank r returns from main without rh_finalize (with
 * HELLO_EXIT=s, it exits with status s). */
#include <stdio.h>
#include <stdlib.h>

#include "rayhpc.h"

int main(int argc, char **argv)
{
    rh_status_t status = rh_init(&argc, &argv, NULL);

    if (status != RH_OK) {
        fprintf(stderr, "rh_init: %s: %s\n", rh_status_string(status),
                rh_last_error());
        return 1;
    }
    printf("HELLO rank=%d size=%d node=%d nodes=%d\n", rh_rank(), rh_size(),
           rh_node_id(), rh_num_nodes());
    fflush(stdout);
    if (getenv("HELLO_NO_FINALIZE") != NULL &&
        atoi(getenv("HELLO_NO_FINALIZE")) == rh_rank()) {
        return getenv("HELLO_EXIT") != NULL ? atoi(getenv("HELLO_EXIT")) : 0;
    }
    status = rh_finalize();
    if (status != RH_OK) {
        fprintf(stderr, "rh_finalize: %s: %s\n", rh_status_string(status),
                rh_last_error());
        return 1;
    }
    return 0;
}
