/* Runs every Check suite; `make test` calls this. CK_RUN_SUITE and
 * CK_RUN_CASE select a part, as with any Check runner. */
#include "suites.h"

#include <stdlib.h>

int main(void)
{
    SRunner *sr = srunner_create(ref_suite());
    srunner_add_suite(sr, gradcheck_suite());
    srunner_add_suite(sr, optim_suite());
    srunner_add_suite(sr, dataset_suite());
    srunner_add_suite(sr, train_suite());
    srunner_add_suite(sr, checkpoint_suite());
    srunner_add_suite(sr, controls_suite());
    srunner_add_suite(sr, series_suite());
    srunner_add_suite(sr, texts_suite());
    srunner_add_suite(sr, io_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
