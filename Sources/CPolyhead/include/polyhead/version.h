/* Polyhead plugin ABI: versions, export macro, toolchain identity.
 *
 * Rationale: the version pair is the only thing a host and a plugin of different
 * generations are guaranteed to read in each other's structs, so ph_host and ph_plugin
 * both begin with { uint32_t size; uint16_t abi_major; uint16_t abi_minor; } forever.
 */
#ifndef POLYHEAD_VERSION_H
#define POLYHEAD_VERSION_H

#include <stddef.h>
#include <stdint.h>

/* Major: bumped when a struct or function changes incompatibly (never happens within a
 * major). Minor: bumped when fields are appended to a struct or a function is added. */
#define PH_ABI_MAJOR 1
#define PH_ABI_MINOR 0

/* Marks the single exported function of a plugin. Everything else in a plugin should be
 * hidden (-fvisibility=hidden) so two plugins never interpose each other's symbols. */
#if defined(_WIN32)
#define PH_EXPORT __declspec(dllexport)
#else
#define PH_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
#define PH_EXTERN_C_BEGIN extern "C" {
#define PH_EXTERN_C_END }
#else
#define PH_EXTERN_C_BEGIN
#define PH_EXTERN_C_END
#endif

#define PH_STRINGIFY_(x) #x
#define PH_STRINGIFY(x) PH_STRINGIFY_(x)

#if defined(__swift__)
/* The Swift toolchain compiling the code that includes this header, e.g.
 * "swift 60301 clang 21.0.0 (https://github.com/swiftlang/llvm-project.git 1167...)".
 * The Swift compiler's embedded clang defines __swift__ and its own __clang_version__, so
 * the string names the exact compiler build. Rationale: Swift has no stable ABI on Linux
 * and a process holds one Swift runtime, so a Swift plugin must come from the host's
 * toolchain; both sides call this function and the host compares the strings.
 * Returns a string literal (static storage). */
static inline const char *ph_swift_toolchain(void) {
    return "swift " PH_STRINGIFY(__swift__) " clang " __clang_version__;
}
#endif

#endif /* POLYHEAD_VERSION_H */
