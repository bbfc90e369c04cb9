#include "suites.h"
Suite *gradcheck_suite(void) { return suite_create("gradcheck"); }
