// libffi (Debian: libffi-dev): calls plugin-declared functions whose signature is known only at run time.
#include <ffi.h>
