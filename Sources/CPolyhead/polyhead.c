/* Layout checks for ABI 1.0 on LP64 platforms, compiled into every build of the host and
 * of each Swift plugin. Rationale: fields are only ever appended; if an edit moves one of
 * these offsets, plugins built against an earlier header would read garbage, so the build
 * fails here instead (ONNX Runtime guards its API table the same way). */
#include "polyhead/polyhead.h"

#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
#define PH_CHECK_OFFSET(type, field, offset) \
    _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved: ABI break")

/* The frozen prefixes every ABI major shares. */
PH_CHECK_OFFSET(ph_host, abi_major, 4);
PH_CHECK_OFFSET(ph_host, abi_minor, 6);
PH_CHECK_OFFSET(ph_plugin, abi_major, 4);
PH_CHECK_OFFSET(ph_plugin, abi_minor, 6);

/* ABI 1.0 layouts. */
PH_CHECK_OFFSET(ph_host, services, 24);
PH_CHECK_OFFSET(ph_host_services, json_key, 120);
PH_CHECK_OFFSET(ph_plugin, extensions, 64);
PH_CHECK_OFFSET(ph_tensor, shape, 24);
PH_CHECK_OFFSET(ph_tensor, strides, 56);
PH_CHECK_OFFSET(ph_parameter_spec, b, 64);
PH_CHECK_OFFSET(ph_component_descriptor, example_config, 40);
PH_CHECK_OFFSET(ph_create_args, sites, 96);
PH_CHECK_OFFSET(ph_component, adapter, 56);
PH_CHECK_OFFSET(ph_head_input, word_ids, 24);
PH_CHECK_OFFSET(ph_head_layout, reserved, 28);
PH_CHECK_OFFSET(ph_head_methods, decode, 64);
PH_CHECK_OFFSET(ph_router_methods, release_saved, 32);
PH_CHECK_OFFSET(ph_adapter_methods, merge, 40);
PH_CHECK_OFFSET(ph_extension_function, function, 32);
PH_CHECK_OFFSET(ph_error_sink, report, 16);
PH_CHECK_OFFSET(ph_text_sink, append, 16);
PH_CHECK_OFFSET(ph_linear_site, out_features, 24);
#endif
