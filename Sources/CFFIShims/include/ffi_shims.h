/* Accessors for libffi's type descriptors. Swift 6 refuses `&ffi_type_pointer` (a mutable
 * C global), so the host reaches them through these functions. */
#ifndef POLYHEAD_FFI_SHIMS_H
#define POLYHEAD_FFI_SHIMS_H

#include <ffi.h>

static inline ffi_type *ph_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *ph_ffi_type_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *ph_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *ph_ffi_type_float(void) { return &ffi_type_float; }
static inline ffi_type *ph_ffi_type_double(void) { return &ffi_type_double; }
static inline ffi_type *ph_ffi_type_pointer(void) { return &ffi_type_pointer; }
static inline ffi_abi ph_ffi_default_abi(void) { return FFI_DEFAULT_ABI; }
/* Bytes libffi may write for a return value: at least sizeof(ffi_arg). */
static inline size_t ph_ffi_return_capacity(void) { return sizeof(ffi_arg) > 8 ? sizeof(ffi_arg) : 8; }

#endif
