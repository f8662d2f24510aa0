// C library functions the Swift overlay does not export.
#include <malloc.h>
