/* Polyhead plugin ABI: extension functions.
 *
 * A plugin may publish plain C functions by name with a signature string; the host checks
 * the signature against a fixed alphabet when it loads the plugin and calls the function
 * through libffi when a run config or `polyhead plugins call PLUGIN.FUNCTION ARGS...`
 * names it. Rationale: new capabilities (a metric, a temperature setter) ship without an
 * ABI change, and the host can call a function whose argument list it learns at run time.
 *
 * Signature: one return letter, then the argument letters in parentheses, e.g. "d(tte)".
 *   v  void (return only)
 *   i  int32_t          l  int64_t          f  float          d  double
 *   s  const char *     UTF-8, NUL-terminated. As an argument: host-owned for the call.
 *                       As a return: plugin-owned static storage.
 *   t  const ph_tensor * host-owned view for the call (the CLI builds F32 tensors from JSON arrays)
 *   p  void *           opaque pointer (e.g. an instance); a config can pass one, the CLI cannot
 *   e  ph_error_sink *   supplied by the host, never by the caller; report() makes the call fail
 * At most PH_EXTENSION_MAX_ARGUMENTS arguments.
 */
#ifndef POLYHEAD_EXTENSION_H
#define POLYHEAD_EXTENSION_H

#include "status.h"

PH_EXTERN_C_BEGIN

#define PH_EXTENSION_MAX_ARGUMENTS 16

/* Cast to the real signature by the caller; never called through this type. */
typedef void (*ph_generic_function)(void);

/* Ownership: plugin-owned, static storage. Thread rule: the function may be called from
 * any thread; one that is not thread-safe must say so in its description. */
typedef struct ph_extension_function {
    uint32_t size;
    int32_t reserved;         /* 0 */
    const char *name;         /* [a-z0-9_]+, unique within the plugin */
    const char *signature;    /* see above */
    const char *description;  /* one line, including the meaning of each argument */
    ph_generic_function function;
} ph_extension_function;

PH_EXTERN_C_END

#endif /* POLYHEAD_EXTENSION_H */
