#include "suites.h"
Suite *dataset_suite(void) { return suite_create("dataset"); }
