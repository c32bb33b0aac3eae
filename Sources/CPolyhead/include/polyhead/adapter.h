/* Polyhead plugin ABI: encoder adapters.
 *
 * An adapter hooks the encoder's linear layers (the sites listed in create_args): for each
 * hooked site the encoder computes y = x W^T + b as usual and then lets the adapter ADD its
 * own term (LoRA: y += scale * (x A^T) B^T). Rationale: adding to y, rather than replacing
 * the layer, keeps the encoder's fast path intact and lets the frozen base weight stay in
 * the host. Thread rule and ownership as for heads (head.h).
 */
#ifndef POLYHEAD_ADAPTER_H
#define POLYHEAD_ADAPTER_H

#include "head.h"

PH_EXTERN_C_BEGIN

typedef struct ph_adapter_methods {
    uint32_t size;

    /* 1 when the adapter hooks site `site_index`, else 0. Fixed after create. */
    int32_t (*hooks_site)(ph_instance *instance, int64_t site_index);

    /* x: F32 [T, in]; y: F32 [T, out], the base layer's output, to which the adapter ADDS. */
    ph_status (*forward)(ph_instance *instance, int64_t site_index, int32_t training, const ph_tensor *x,
                         ph_tensor *y, ph_saved **out_saved, ph_error_sink *errors);

    /* d_y: F32 [T, out]. ADDS the adapter's contribution into d_x (F32 [T, in]) and ADDS
     * parameter gradients. */
    ph_status (*backward)(ph_instance *instance, ph_saved *saved, int64_t site_index, const ph_tensor *x,
                          const ph_tensor *d_y, ph_tensor *d_x, ph_error_sink *errors);

    void (*release_saved)(ph_instance *instance, ph_saved *saved);

    /* ADDS the adapter's effective weight delta into weight (F32 [out, in]), to export a
     * merged checkpoint. May be NULL when the adapter cannot be merged. */
    ph_status (*merge)(ph_instance *instance, int64_t site_index, ph_tensor *weight, ph_error_sink *errors);
} ph_adapter_methods;

PH_EXTERN_C_END

#endif /* POLYHEAD_ADAPTER_H */
