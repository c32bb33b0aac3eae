/* Polyhead plugin ABI: parameters declared by the plugin, owned by the host.
 *
 * Rationale: if plugins allocated their own weights, the host's optimizer, gradient
 * clipping, weight decay groups, checkpoints and exports would each need a plugin hook
 * and would each be one more thing a plugin can get wrong. Instead a plugin declares each
 * parameter during create(); the host allocates all of them in one block, initialises
 * them, and binds views of the values and gradients back to the instance.
 */
#ifndef POLYHEAD_PARAMETERS_H
#define POLYHEAD_PARAMETERS_H

#include "status.h"
#include "tensor.h"

PH_EXTERN_C_BEGIN

#define PH_PARAMETER_TRAINABLE 1u /* the host's optimizer updates it; else a buffer (statistics) */
#define PH_PARAMETER_NO_DECAY 2u  /* excluded from weight decay (biases, norms) */

/* Initialisers, with a and b as noted. fan_in is shape[ndim-1] (a [out, in] matrix). */
#define PH_INIT_ZEROS 0
#define PH_INIT_ONES 1
#define PH_INIT_CONSTANT 2        /* every element = a */
#define PH_INIT_NORMAL 3          /* N(a = mean, b = standard deviation) */
#define PH_INIT_UNIFORM 4         /* U(a = low, b = high) */
#define PH_INIT_FAN_IN_UNIFORM 5  /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)); PyTorch's Linear default */
#define PH_INIT_XAVIER_UNIFORM 6  /* U(-r, r), r = sqrt(6 / (fan_in + fan_out)) */

/* Ownership: plugin-owned, needs to live only for the declare_parameter() call (the host
 * copies it). */
typedef struct ph_parameter_spec {
    uint32_t size;     /* sizeof(ph_parameter_spec) */
    uint32_t flags;    /* PH_PARAMETER_* */
    const char *name;  /* stable name: checkpoint key under the instance, e.g. "classifier.weight";
                        * [A-Za-z0-9_.] only, unique within the instance */
    int32_t ndim;      /* 1 ... PH_MAX_DIMS */
    int32_t initializer; /* PH_INIT_* */
    int64_t shape[PH_MAX_DIMS]; /* every used entry >= 1 */
    double a;
    double b;
} ph_parameter_spec;

/* Host-owned handle behind create_args->declare_parameter. */
typedef struct ph_parameter_declarer ph_parameter_declarer;

PH_EXTERN_C_END

#endif /* POLYHEAD_PARAMETERS_H */
