/* The accessors are static inline in the header; SwiftPM needs one source per C target. */
#include "ffi_shims.h"
