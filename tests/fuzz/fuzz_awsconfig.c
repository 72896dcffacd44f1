/* fuzz_awsconfig: the shared AWS config / credentials file parser on arbitrary text.
 * The first byte chooses the flavour (config or credentials); the rest is the file.  A few
 * lookups follow a successful parse, and a failed one must leave a message. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const profiles[] = { "default", "prod", "a", "profile a", "" };
	static const char *const keys[] = { "aws_access_key_id", "aws_secret_access_key", "role_arn",
					    "source_profile", "s3", "region", "" };
	struct creds_profiles *ps = NULL;
	char msg[256];
	bool config_file;
	int r;

	if (size == 0)
		return 0;
	config_file = data[0] & 1;
	msg[0] = '\0';
	r = creds_profiles_parse("fuzz", (const char *)data + 1, size - 1, config_file, &ps, msg,
				 sizeof(msg));
	if (r < 0) {
		if (msg[0] == '\0' && r != -ENOMEM)
			abort();
		return 0;
	}
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		bool has = creds_profiles_has(ps, profiles[i]);
		for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
			const char *v = creds_profiles_get(ps, profiles[i], keys[j]);
			if (v && (!has || strlen(v) >= size))
				abort();
		}
	}
	creds_profiles_free(ps);
	return 0;
}
