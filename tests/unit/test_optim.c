#include "suites.h"
Suite *optim_suite(void) { return suite_create("optim"); }
