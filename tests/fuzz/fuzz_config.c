/* fuzz_config: the configuration loader on arbitrary text. */
#include <stdint.h>

#include "trailwatch/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	struct diag d;

	diag_init(&d);
	if (config_load_buffer("fuzz.yaml", (const char *)data, size, &c, &d) == 0)
		config_free(c);
	diag_free(&d);
	return 0;
}
