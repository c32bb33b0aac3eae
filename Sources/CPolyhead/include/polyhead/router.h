/* Polyhead plugin ABI: shared routers.
 *
 * A router sits between the encoder and several task heads; ONE instance serves every
 * task that names it (e.g. a multi-gate mixture of experts: shared experts, one gate per
 * task). It maps packed token features [T, H] to task-specific features [T, H'] that the
 * task's head then receives. Rationale: sharing is the point, so the host creates one
 * instance, tells it the task names at create, and passes the task index on every call.
 * Thread rule and ownership as for heads (head.h).
 */
#ifndef POLYHEAD_ROUTER_H
#define POLYHEAD_ROUTER_H

#include "head.h"

PH_EXTERN_C_BEGIN

typedef struct ph_router_methods {
    uint32_t size;

    /* H', the width of the features the router produces (what its heads see as H). */
    ph_status (*output_width)(ph_instance *instance, int64_t *out_width, ph_error_sink *errors);

    /* outputs: F32 [T, H'], written entirely. task_index < args->task_count. Saved state as
     * for heads: one per call, released by the host exactly once. */
    ph_status (*forward)(ph_instance *instance, int32_t task_index, const ph_head_input *input,
                         ph_tensor *outputs, ph_saved **out_saved, ph_error_sink *errors);

    /* Writes d_features (F32 [T, H], overwritten) and ADDS parameter gradients. */
    ph_status (*backward)(ph_instance *instance, ph_saved *saved, const ph_head_input *input,
                          const ph_tensor *d_outputs, ph_tensor *d_features, ph_error_sink *errors);

    void (*release_saved)(ph_instance *instance, ph_saved *saved);
} ph_router_methods;

PH_EXTERN_C_END

#endif /* POLYHEAD_ROUTER_H */
