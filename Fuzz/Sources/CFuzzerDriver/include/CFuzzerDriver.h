// libFuzzer's entry point for programs that have their own main (compiler-rt, FuzzerInterface.h).
// SwiftPM links an executable target's main to `<Module>_main` on Linux, which would hide
// libFuzzer's main: each fuzz target defines that symbol and hands over to the driver.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
