/* The integration test runner: every suite against a real rnnd serve. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    const char *b = getenv("RNND_BIN");
    if (!getcwd(project_root, sizeof project_root)) return 1;
    snprintf(rnnd_bin, sizeof rnnd_bin, "%s%s%s", b && b[0] == '/' ? "" : project_root,
             b && b[0] == '/' ? "" : "/", b && *b ? b : "build/rnnd");
    snprintf(models_src, sizeof models_src, "%s/tests/ref/models", project_root);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(http_suite());
    srunner_add_suite(sr, sessions_suite());
    srunner_add_suite(sr, abuse_suite());
    srunner_add_suite(sr, readme_suite());
    srunner_add_suite(sr, admin_suite());
    srunner_add_suite(sr, durable_suite());
    srunner_add_suite(sr, replicas_suite());
    srunner_add_suite(sr, launch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
