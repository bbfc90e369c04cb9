#include "suites.h"
Suite *train_suite(void) { return suite_create("train"); }
