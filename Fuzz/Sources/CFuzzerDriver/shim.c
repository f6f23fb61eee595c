// Present so that SwiftPM builds the module; the driver itself is in libFuzzer.
#include "CFuzzerDriver.h"
