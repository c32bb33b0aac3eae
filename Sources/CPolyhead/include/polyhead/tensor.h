/* Polyhead plugin ABI: tensor views (after DLPack's DLTensor, with the size field first).
 *
 * A ph_tensor never owns its data: it describes memory owned by whoever passed it, for
 * the duration of the call it is passed to (unless a function says otherwise).
 * Rationale: views instead of owning tensors mean no allocator ever crosses the boundary
 * implicitly and no deleter has to be called on the right side.
 */
#ifndef POLYHEAD_TENSOR_H
#define POLYHEAD_TENSOR_H

#include "version.h"

PH_EXTERN_C_BEGIN

#define PH_DTYPE_F32 1
#define PH_DTYPE_I32 2
#define PH_DTYPE_I64 3
#define PH_DTYPE_U8 4

#define PH_MAX_DIMS 4

/* Tensors are always passed by pointer, never embedded in another struct or laid out in
 * an array, so a later minor version can append fields to ph_tensor. */
typedef struct ph_tensor {
    uint32_t size;  /* sizeof(ph_tensor) of the side that filled it */
    int32_t dtype;  /* PH_DTYPE_* */
    int32_t ndim;   /* 0 ... PH_MAX_DIMS; unused shape/stride entries are 0 */
    int32_t reserved; /* 0 */
    void *data;     /* first element; NULL only where a function says "may be absent" */
    int64_t shape[PH_MAX_DIMS];
    int64_t strides[PH_MAX_DIMS]; /* in elements, not bytes. The host always passes
                                   * row-major contiguous tensors in ABI 1.x. */
} ph_tensor;

/* Number of elements (1 for a scalar). */
static inline int64_t ph_tensor_count(const ph_tensor *tensor) {
    int64_t count = 1;
    for (int32_t dimension = 0; dimension < tensor->ndim; dimension++) count *= tensor->shape[dimension];
    return count;
}

/* 1 when the tensor has the given dtype, rank and is row-major contiguous, else 0. */
static inline int32_t ph_tensor_is(const ph_tensor *tensor, int32_t dtype, int32_t ndim) {
    if (tensor == NULL || tensor->data == NULL || tensor->dtype != dtype || tensor->ndim != ndim) return 0;
    int64_t expected = 1;
    for (int32_t dimension = ndim - 1; dimension >= 0; dimension--) {
        if (tensor->shape[dimension] < 0) return 0;
        if (tensor->shape[dimension] > 1 && tensor->strides[dimension] != expected) return 0;
        expected *= tensor->shape[dimension];
    }
    return 1;
}

PH_EXTERN_C_END

#endif /* POLYHEAD_TENSOR_H */
