/* Polyhead plugin ABI: the plugin table and its one entry function.
 *
 * Rationale (after CLAP's clap_entry and the Vulkan loader's negotiation): a plugin file
 * exports exactly one symbol, polyhead_plugin_entry, a function. The host offers the ABI
 * version it speaks (ph_host); the plugin answers with the version it implements
 * (ph_plugin.abi_major/abi_minor). The host refuses a different major, or a minor newer
 * than its own, with a message naming both versions. A function rather than a data symbol,
 * because the plugin gets to see the host's offer (and its services) before answering.
 */
#ifndef POLYHEAD_PLUGIN_H
#define POLYHEAD_PLUGIN_H

#include "adapter.h"
#include "extension.h"
#include "head.h"
#include "router.h"

PH_EXTERN_C_BEGIN

#define PH_ENTRY_SYMBOL "polyhead_plugin_entry"

/* Ownership: plugin-owned, static storage (plugins are never unloaded). Arrays hold
 * pointers, not structs, so each struct can grow without changing the array's stride. */
typedef struct ph_plugin {
    uint32_t size;      /* sizeof(ph_plugin); frozen prefix: size, abi_major, abi_minor */
    uint16_t abi_major; /* the version the plugin implements: must equal the host's major, */
    uint16_t abi_minor; /* and be no newer than the host's minor */
    const char *id;          /* [a-z0-9_.-], e.g. "polyhead.heads.classification" */
    const char *version;     /* "MAJOR.MINOR.PATCH" of the plugin */
    const char *name;        /* human name */
    const char *swift_toolchain; /* ph_swift_toolchain() for a plugin that uses the Swift
                                  * runtime; NULL for C, C++, Rust, ... */
    int64_t component_count;
    const ph_component *const *components;
    int64_t extension_count;
    const ph_extension_function *const *extensions;
} ph_plugin;

/* The entry function. Called once per process, on the loading thread, before anything
 * else. On success writes *out_plugin and returns PH_STATUS_OK. It may refuse (reporting
 * through `errors`), e.g. when host->abi_major is not one it implements.
 * Ownership: host, services and errors are host-owned (host and services valid until exit,
 * errors for the call); *out_plugin is plugin-owned, static storage. */
typedef ph_status (*ph_entry_function)(const ph_host *host, const ph_plugin **out_plugin,
                                       ph_error_sink *errors);

#if !defined(__swift__)
/* Swift plugins export it with @_cdecl("polyhead_plugin_entry") instead. */
PH_EXPORT ph_status polyhead_plugin_entry(const ph_host *host, const ph_plugin **out_plugin,
                                          ph_error_sink *errors);
#endif

PH_EXTERN_C_END

#endif /* POLYHEAD_PLUGIN_H */
