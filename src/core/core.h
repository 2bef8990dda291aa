/* Internal view of the core for the other modules and the tools. */
#ifndef RH_CORE_CORE_H
#define RH_CORE_CORE_H

int rh_core_initialized(void);

/* Node index of a rank (-1 when out of range). */
int rh_core_node_of(int rank);

#endif
