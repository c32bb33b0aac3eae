// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). Every GEMM in Polyhead goes through it.
#include <cblas.h>
