/* Polyhead plugin ABI: placeholder until the plugin-ABI issue lands. */
#ifndef POLYHEAD_H
#define POLYHEAD_H
#include <stdint.h>
#endif
