/* Polyhead plugin ABI: what the host offers a plugin.
 *
 * Rationale (after ONNX Runtime's OrtApi and SQLite's sqlite3_api_routines): the host
 * passes a table of its services INTO the plugin, so a plugin never links against the
 * host executable or its libraries (OpenBLAS, a JSON parser, an RNG). The same .so works
 * with any host of the same ABI major, and a plain C plugin needs nothing but this header.
 * The table only grows at its end; a plugin built against a newer minor checks
 * services->size before touching a field the host may not have.
 */
#ifndef POLYHEAD_HOST_H
#define POLYHEAD_HOST_H

#include "status.h"
#include "tensor.h"

PH_EXTERN_C_BEGIN

/* A host-owned random stream, one per component instance, seeded from the run's seed
 * and the instance's name so a run is reproducible. Thread rule: used by the thread
 * that is currently calling into its instance. */
typedef struct ph_rng ph_rng;

/* A host-owned, read-only parsed JSON value. Valid for the duration of the call it was
 * passed to; strings read from it are valid as long as the value. */
typedef struct ph_json ph_json;

#define PH_JSON_ABSENT (-1) /* json_type(NULL): a member or element that does not exist */
#define PH_JSON_NULL 0
#define PH_JSON_BOOL 1
#define PH_JSON_NUMBER 2
#define PH_JSON_STRING 3
#define PH_JSON_ARRAY 4
#define PH_JSON_OBJECT 5

#define PH_LOG_DEBUG 0
#define PH_LOG_INFO 1
#define PH_LOG_WARNING 2
#define PH_LOG_ERROR 3

#define PH_NO_TRANSPOSE 0
#define PH_TRANSPOSE 1

/* Where a plugin writes text (a decoded prediction). Host-owned, valid for the call it
 * was passed to; append() copies `length` bytes of UTF-8 (no NUL needed). */
typedef struct ph_text_sink {
    uint32_t size;
    void *context; /* host-owned */
    void (*append)(struct ph_text_sink *sink, const char *text, int64_t length);
} ph_text_sink;

/* Every function here is thread-safe unless noted, never throws, never aborts, and is
 * valid from ph_host's arrival in the entry function until the process exits. */
typedef struct ph_host_services {
    uint32_t size; /* sizeof(ph_host_services) of the host */

    /* Memory. 64-byte aligned, uninitialised; NULL when bytes <= 0 or memory is out.
     * The plugin owns the block until it passes it to release(). Rationale: a plugin
     * may have its own allocator; this one exists so C plugins get aligned memory the
     * host accounts for. */
    void *(*allocate)(int64_t bytes);
    void (*release)(void *block); /* NULL is accepted */

    /* One log line (no newline) at PH_LOG_*; `source` names the component, may be NULL.
     * Both strings are copied before return. */
    void (*log)(int32_t level, const char *source, const char *message);

    /* Row-major single-precision GEMM through the host's OpenBLAS:
     * C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n], op = transpose or not.
     * lda/ldb/ldc are row strides in elements of A, B, C as stored. Rationale: one BLAS
     * (and one thread pool) per process, and plugins stay free of BLAS link flags. */
    void (*sgemm)(int32_t transpose_a, int32_t transpose_b, int64_t m, int64_t n, int64_t k,
                  float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                  float beta, float *c, int64_t ldc);

    /* Random numbers from a host stream: 64 random bits; `count` floats uniform in
     * [0, 1); `count` floats from N(0, 1). Deterministic for a given seed and call order. */
    uint64_t (*rng_next)(ph_rng *rng);
    void (*rng_uniform)(ph_rng *rng, float *out, int64_t count);
    void (*rng_normal)(ph_rng *rng, float *out, int64_t count);

    /* Reading host-parsed JSON (configs, labels). Every function accepts NULL and then
     * reports PH_JSON_ABSENT / PH_STATUS_NOT_FOUND / 0, so lookups chain without checks.
     * Rationale: a C plugin should not need a JSON parser, and every plugin reads configs
     * with the host's exact parsing rules. */
    int32_t (*json_type)(const ph_json *value);                       /* PH_JSON_* */
    ph_status (*json_bool)(const ph_json *value, int32_t *out);       /* 0 or 1 */
    ph_status (*json_number)(const ph_json *value, double *out);
    ph_status (*json_string)(const ph_json *value, const char **out); /* UTF-8, NUL-terminated */
    int64_t (*json_count)(const ph_json *value);                      /* array elements or object members */
    const ph_json *(*json_element)(const ph_json *array, int64_t index);
    const ph_json *(*json_member)(const ph_json *object, const char *key);
    const char *(*json_key)(const ph_json *object, int64_t index);     /* name of member `index` */
} ph_host_services;

/* The host's offer, passed to the entry function.
 * Ownership: host-owned, valid until the process exits (the plugin may keep the pointer
 * and the services pointer). */
typedef struct ph_host {
    uint32_t size;      /* sizeof(ph_host) of the host; frozen prefix: size, abi_major, abi_minor */
    uint16_t abi_major; /* the host speaks abi_major.0 ... abi_major.abi_minor */
    uint16_t abi_minor;
    const char *host_version;    /* "polyhead 0.1.0" */
    const char *swift_toolchain; /* the host's ph_swift_toolchain() */
    const ph_host_services *services;
} ph_host;

PH_EXTERN_C_END

#endif /* POLYHEAD_HOST_H */
