/* ruletest.h: `trailwatch test`: the test events each rule carries.
 *
 * A detection rule's test says whether one event matches the rule (with its
 * filters); a correlation's (or a throttled rule's) test feeds a list of
 * events through the whole pipeline -- decoding, every loaded rule,
 * correlation, throttling -- and counts this rule's alerts.  Each test starts
 * from empty correlation state.  Prints one line per failure and the closing
 * "N passed, N failed".  This is a boundary module: it prints.
 */
#ifndef TRAILWATCH_RULETEST_H
#define TRAILWATCH_RULETEST_H

#include <stdio.h>

#include "trailwatch/config.h"
#include "trailwatch/rules.h"

/* Returns the exit status: 0 when every test passed. */
int ruletest_run(const struct config *cfg, const struct ruleset *rs, FILE *out);

#endif
