/* The smallest program: public API only. Prints what the rank sees. */
#include <stdio.h>

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
    status = rh_finalize();
    if (status != RH_OK) {
        fprintf(stderr, "rh_finalize: %s: %s\n", rh_status_string(status),
                rh_last_error());
        return 1;
    }
    return 0;
}
