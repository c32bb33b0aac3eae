/* Polyhead plugin ABI: status codes and the error sink.
 *
 * Rationale: nothing but a status code crosses the boundary on failure. A C++ exception,
 * a Swift error or a trap unwinding into the other side is undefined behaviour (and a
 * crash in practice), so every fallible function returns ph_status and explains itself
 * through the ph_error_sink it was given.
 */
#ifndef POLYHEAD_STATUS_H
#define POLYHEAD_STATUS_H

#include "version.h"

PH_EXTERN_C_BEGIN

typedef int32_t ph_status;

#define PH_STATUS_OK 0
#define PH_STATUS_ERROR 1            /* anything not covered below */
#define PH_STATUS_INVALID_ARGUMENT 2 /* bad config, shape, dtype, label, index */
#define PH_STATUS_OUT_OF_MEMORY 3
#define PH_STATUS_UNSUPPORTED 4      /* ABI version, feature or option not supported */
#define PH_STATUS_NOT_FOUND 5
#define PH_STATUS_NOT_FINITE 6       /* a NaN or infinity was produced or received */

/* Where a failing function explains why.
 *
 * The host owns the sink and passes it into each fallible call; it is valid only for the
 * duration of that call. The plugin calls report() at most once per failing call, with a
 * one-line UTF-8 message (no trailing newline) that says what is wrong and what to do,
 * e.g. "config key \"pooling\" must be one of cls, mean, max (got \"avg\")". The host
 * copies the message before report() returns, so the plugin may pass a stack buffer.
 * The host prefixes the plugin file and component id; the message should not.
 * Thread rule: the same thread that received the sink. */
typedef struct ph_error_sink {
    uint32_t size; /* sizeof(ph_error_sink), set by the host */
    void *context; /* host-owned; the plugin never touches it */
    void (*report)(struct ph_error_sink *sink, ph_status status, const char *message);
} ph_error_sink;

PH_EXTERN_C_END

#endif /* POLYHEAD_STATUS_H */
