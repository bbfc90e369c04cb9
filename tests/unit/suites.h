/* The Check suites of the unit test runner, one per engine module. */
#ifndef TEST_SUITES_H
#define TEST_SUITES_H

#include <check.h>

Suite *ref_suite(void);
Suite *gradcheck_suite(void);
Suite *train_suite(void);
Suite *dataset_suite(void);
Suite *optim_suite(void);
Suite *io_suite(void);
Suite *cli_suite(void);
Suite *checkpoint_suite(void);
Suite *controls_suite(void);
Suite *series_suite(void);
Suite *texts_suite(void);

#endif
