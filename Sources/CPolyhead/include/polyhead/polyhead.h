/* Polyhead plugin ABI 1.0: the whole contract between `polyhead` and a plugin.
 * A plugin includes this header and nothing else from Polyhead. See docs/abi.md. */
#ifndef POLYHEAD_H
#define POLYHEAD_H

#include "version.h"
#include "status.h"
#include "tensor.h"
#include "host.h"
#include "parameters.h"
#include "component.h"
#include "head.h"
#include "router.h"
#include "adapter.h"
#include "extension.h"
#include "plugin.h"

#endif /* POLYHEAD_H */
