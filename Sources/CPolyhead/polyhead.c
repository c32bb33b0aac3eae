#include "polyhead/polyhead.h"
