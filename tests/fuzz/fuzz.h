/*
 * The libFuzzer entry point each harness in tests/fuzz/ defines. `make fuzz`
 * links them with clang's -fsanitize=fuzzer; replay.c gives them a main that
 * runs the committed corpus once, so `make test` replays it with any compiler.
 */
#ifndef RNND_FUZZ_H
#define RNND_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
