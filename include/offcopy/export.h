/* offcopy/export.h: what the shared library exports. Shared by the C++ headers and offcopy.h.
 *
 * liboffcopy is built with -fvisibility=hidden: only declarations marked OFFCOPY_API are in its
 * dynamic symbol table. C++ names live in the inline namespace offcopy::v0, which is part of every
 * mangled name: an ABI break renames it (v1) together with the SONAME (liboffcopy.so.1), so a
 * program built against v0 never binds to v1 symbols. Additions keep both. See
 * docs/architecture.md, "The public boundary". */
#ifndef OFFCOPY_EXPORT_H
#define OFFCOPY_EXPORT_H

#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#define OFFCOPY_API [[gnu::visibility("default")]] /* also after [[nodiscard]] in a class head */
#elif defined(__GNUC__) || defined(__clang__)
#define OFFCOPY_API __attribute__((visibility("default")))
#else
#define OFFCOPY_API
#endif

/* Not exported although its class is (private members that name internal types). */
#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#define OFFCOPY_HIDDEN [[gnu::visibility("hidden")]]
#else
#define OFFCOPY_HIDDEN
#endif

/* The ABI generation: the inline namespace (v0) and the SONAME's number (liboffcopy.so.0). */
#define OFFCOPY_ABI_VERSION 0

#endif /* OFFCOPY_EXPORT_H */
